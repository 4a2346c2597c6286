"""The store returns typed rows: each aggregate's frozen dataclass, never a dict.

These tests fill a real SQLite file through the store and check that every reading method
returns its aggregate's row type, with the values decoded (JSON lists and objects, booleans),
and that a row's ``to_protocol`` (the one place its RPC shape is built) accepts it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from clientlink.common.protocol import ConnectionStatus
from clientlink.daemon.store import (
    AuditRow,
    BankConnectionRow,
    ClientRow,
    GrantSummary,
    HistoryRow,
    InvitationRow,
    JobItemRow,
    JobRow,
    NotificationRow,
    Store,
    TemplateRow,
    TenantRow,
)

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def assert_row(row_type: type, row: object) -> None:
    """``row`` is a ``row_type`` (not a dict, not a subclass) and cannot be changed."""
    assert type(row) is row_type, f"expected a {row_type.__name__}, got {type(row).__name__}"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(row, "id" if hasattr(row, "id") else "at", None)


@pytest.fixture
async def store(short_tmp):
    store = await Store.open(short_tmp / "data" / "clientlink.db")
    try:
        yield store
    finally:
        await store.close()


async def test_every_row_the_store_returns_is_its_frozen_dataclass(store: Store):
    grant_id = await store.insert_grant(
        uid="g-1",
        provider="xero",
        auth_event_id="e-1",
        token_ciphertext=b"sealed",
        access_expires_at=NOW,
        refresh_expires_at=NOW,
        hard_expires_at=None,
        authorised_by="alice",
        now=NOW,
        tenants=[TenantRow("t-1", "Acme Pty Ltd", "ORGANISATION", "c-1", "e-1")],
    )
    client_id = await store.create_client(
        provider="xero",
        tenant_id="t-1",
        name="Acme Pty Ltd",
        legal_name="Acme Holdings Pty Ltd",
        abn="53004085616",
        grant_id=grant_id,
        status=ConnectionStatus.CONNECTED,
        now=NOW,
    )
    await store.update_client_details(
        client_id, NOW, email="acme@example.org", phone="+61400000000"
    )
    await store.set_client_status(client_id, ConnectionStatus.EXPIRING, "ends soon", NOW)

    clients = [
        await store.get_client(client_id),
        await store.find_client_by_tenant("xero", "t-1"),
        *(await store.clients_of_grant(grant_id)),
        *(
            await store.list_clients(
                statuses=None, provider=None, text=None, active=None, offset=0, limit=10
            )
        )[1],
    ]
    assert len(clients) == 4
    for client in clients:
        assert client is not None
        assert_row(ClientRow, client)
        assert client.active is True and client.status == "expiring"
        assert client.to_protocol().email == "acme@example.org"

    history = await store.client_history(client_id, 10)
    assert history and history[0].old_status == "connected"
    for line in history:
        assert_row(HistoryRow, line)
    assert history[0].to_protocol().status == "expiring"

    grants = await store.list_grants()
    assert [g.tenants for g in grants] == [["Acme Pty Ltd"]]
    assert_row(GrantSummary, grants[0])
    assert grants[0].to_protocol().clients == 1 and grants[0].unused is False

    job_id = await store.create_job(
        kind="reauth", params={"provider": "xero"}, actor="alice", client_ids=[client_id], now=NOW
    )
    jobs = [
        await store.get_job(job_id),
        *(await store.list_jobs(None, 10)),
        *(await store.jobs_in_states(("queued",))),
    ]
    assert len(jobs) == 3
    for job in jobs:
        assert job is not None
        assert_row(JobRow, job)
    assert jobs[0] is not None and jobs[0].params == {"provider": "xero"}

    claimed = await store.claim_item(job_id, NOW)
    assert claimed is not None and claimed.name == "Acme Pty Ltd"
    assert_row(JobItemRow, claimed)
    await store.finish_item(claimed, "done", NOW, result={"grant_id": grant_id})
    items = [
        *(await store.items_in_state(job_id, "done")),  # no client name joined
        *(await store.job_items(job_id, None, 0, 10)),
    ]
    assert len(items) == 2 and items[0].name is None  # no client name joined
    for item in items:
        assert_row(JobItemRow, item)
        assert item.result == {"grant_id": grant_id}
    assert items[1].to_protocol().name == "Acme Pty Ltd"

    template_id = await store.save_template(
        None, name="Banks", channel="email", subject="Your banks", body="{link}", now=NOW
    )
    templates = [await store.get_template(template_id), *(await store.list_templates())]
    for template in templates:
        assert template is not None
        assert_row(TemplateRow, template)
        assert (template.id, template.subject) == (template_id, "Your banks")

    invitation_id = await store.add_invitation(
        client_id=client_id,
        job_item_id=claimed.id,
        channel="email",
        template_id=str(template_id),
        bank_ids='["bank-1", "bank-2"]',
        state="sent",
        actor="alice",
        created_at="2026-03-01T09:30:00Z",
    )
    invitations = [
        await store.get_invitation(invitation_id),
        await store.invitation_for_item(claimed.id),
        *(await store.list_invitations(client_id, ("sent",), 10)),  # with the client's name
    ]
    assert len(invitations) == 3 and invitations[2] is not None
    assert invitations[2].client_name == "Acme Pty Ltd"
    for invitation in invitations:
        assert invitation is not None
        assert_row(InvitationRow, invitation)
        assert invitation.bank_ids == ["bank-1", "bank-2"]
    assert invitations[2].to_protocol().client_name == "Acme Pty Ltd"

    await store.set_bank_connection("conn-1", client_id, "bank-1", "connected", NOW)
    connections = await store.bank_connections(client_id)
    assert len(connections) == 1
    assert_row(BankConnectionRow, connections[0])
    assert connections[0].to_protocol("Bank One").needs_reconnect is False

    await store.add_notification(
        kind="expiring",
        title="Ends soon",
        body="Acme",
        client_ids=[client_id],
        desktop="pending",
        now=NOW,
    )
    notifications = [
        *(await store.list_notifications(False, 10)),
        *(await store.unread_notifications_for(client_id)),
    ]
    assert len(notifications) == 2
    for notification in notifications:
        assert_row(NotificationRow, notification)
        assert notification.client_ids == [client_id] and notification.read is False
        assert "desktop_id" not in notification.to_protocol().model_dump()

    await store.add_audit(
        actor="alice", action="client.update", client_id=client_id, detail={"email": "x"}, now=NOW
    )
    audit = await store.list_audit(client_id, 10)
    assert len(audit) == 1 and audit[0].detail == {"email": "x"}
    assert_row(AuditRow, audit[0])
    assert audit[0].to_protocol().detail == {"email": "x"}


async def test_alert_mails_are_rows_one_open_per_recipient_and_windows_apart(store: Store):
    from datetime import timedelta

    from clientlink.daemon.store import AlertItemRow, AlertMailRow

    grant_id = await store.insert_grant(
        uid="g-1", provider="xero", auth_event_id="e-1", token_ciphertext=b"sealed",
        access_expires_at=NOW, refresh_expires_at=NOW, hard_expires_at=None,
        authorised_by="alice", now=NOW,
        tenants=[TenantRow("t-1", "Acme Pty Ltd", "ORGANISATION", "c-1", "e-1")],
    )  # fmt: skip
    client_id = await store.create_client(
        provider="xero", tenant_id="t-1", name="Acme Pty Ltd", legal_name=None, abn=None,
        grant_id=grant_id, status=ConnectionStatus.NEEDS_REAUTH, now=NOW,
    )  # fmt: skip
    window = timedelta(minutes=30)

    async def queue(recipient: str, since: str, now: datetime, busy: tuple[int, ...] = ()) -> int:
        return await store.queue_alert(
            recipient=recipient, staff_login=None, client_id=client_id, status="needs_reauth",
            reason="revoked", since=since, window=window, now=now, busy=busy,
        )  # fmt: skip

    first = await queue("a@example.org", "2026-03-01T09:30:00Z", NOW)
    assert await queue("a@example.org", "2026-03-01T09:31:00Z", NOW) == first  # joins it
    other = await queue("b@example.org", "2026-03-01T09:30:00Z", NOW)
    assert other != first
    assert await queue("a@example.org", "2026-03-01T09:32:00Z", NOW, busy=(first,)) not in (
        first,
        other,
    )  # a mail being sent takes nobody new
    mail = await store.get_alert_mail(first)
    assert mail is not None
    assert_row(AlertMailRow, mail)
    assert (mail.state, mail.due_at) == ("queued", "2026-03-01T10:00:00Z")
    items = await store.alert_items(first)
    assert [i.since for i in items] == ["2026-03-01T09:30:00Z", "2026-03-01T09:31:00Z"]
    for item in items:
        assert_row(AlertItemRow, item)
    for row in (*await store.list_alert_mails(10), *await store.alert_mails_in("queued")):
        assert_row(AlertMailRow, row)
    assert mail.to_protocol([client_id]).client_ids == [client_id]

    # Sent an hour late (retries): b's next mail is due a window after that, not sooner.
    await store.update_alert_mail(other, state="sent", sent_at="2026-03-01T11:00:00Z")
    later = await store.get_alert_mail(
        await queue("b@example.org", "2026-03-01T10:45:00Z", NOW + timedelta(minutes=75))
    )
    assert later is not None and later.due_at == "2026-03-01T11:30:00Z"
    with pytest.raises(ValueError, match="not alert mail columns"):
        await store.update_alert_mail(first, recipient="x@example.org")
