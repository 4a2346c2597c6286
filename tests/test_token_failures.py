"""Provider failures classified once; lost token answers; racing and unused sign-ins.

Real sandbox over HTTP, real daemon on its socket and SQLite; time moved, never waited for.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ConnectionStatus, ErrorCode, Topic
from clientlink.common.timeutil import from_iso
from clientlink.daemon.clients import ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.events import EventBus
from clientlink.daemon.providers import OrganisationDetails
from clientlink.daemon.store import Store, TenantRow
from tests.helpers import advance_time, sandbox_delete, sandbox_get, sandbox_post

MINUTE = 60


async def refreshes(running, provider: str = "xero") -> int:
    stats = await sandbox_get(running.sandbox.base_url, "/_sandbox/stats")
    key = "token.refresh_token" if provider == "xero" else f"{provider}.token.refresh_token"
    return stats["calls"].get(key, 0)


# ---------------------------------------------------------------- one classification


async def test_a_wrong_app_secret_is_error_with_a_fix_in_the_watcher_and_in_check(practice):
    rpc = await practice.connect()
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="quickbooks", client_secret="wrong")
    await advance_time(practice, 61 * MINUTE)  # every QuickBooks grant must refresh now
    client_id = practice.seeded.quickbooks_ids[0]
    watched = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert watched.status == "error"
    assert "clientlink provider set-secret quickbooks" in watched.status_reason

    await rpc.call(p.CLIENTS_CHECK, client_ids=[client_id])
    checked = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert checked.status == "error"  # not needs_reauth: the grants are intact
    assert "set-secret" in checked.status_reason
    counts = (await rpc.call(p.CLIENTS_LIST, limit=1)).counts
    assert counts["needs_reauth"] == len(practice.client_ids_needing_reauth)


# ---------------------------------------------------------------- status events


async def test_status_changed_is_published_after_the_commit_and_never_on_rollback(short_tmp):
    """A subscriber reading the database (its own connection) sees the announced status."""
    path = short_tmp / "clientlink.db"
    store = await Store.open(path)
    clock = Clock()
    events = EventBus(clock)
    clients = ClientService(store, None, {}, events, clock)  # type: ignore[arg-type]
    tenant = TenantRow(tenant_id="t-1", tenant_name="Acme")
    grant_id = await store.insert_grant(
        uid="u1",
        provider="xero",
        auth_event_id=None,
        token_ciphertext=b"sealed",
        access_expires_at=clock.now() + timedelta(minutes=30),
        refresh_expires_at=None,
        hard_expires_at=None,
        authorised_by="test",
        now=clock.now(),
        tenants=[tenant],
    )
    client_id = await store.create_client(
        provider="xero",
        tenant_id="t-1",
        name="Acme",
        legal_name=None,
        abn=None,
        grant_id=None,
        status=ConnectionStatus.NEEDS_REAUTH,
        now=clock.now(),
    )
    seen: list[str] = []

    def read_from_outside(event: dict) -> None:
        with sqlite3.connect(path) as other:
            (status,) = other.execute(
                "SELECT status FROM clients WHERE id = ?", (client_id,)
            ).fetchone()
        seen.append(f"{event['status']}:{status}")

    events.subscribe(read_from_outside, {Topic.CLIENT_STATUS_CHANGED})
    details = OrganisationDetails(tenant_id="t-1", name="Acme", legal_name=None, abn=None)

    async def failing_item_outcome() -> None:
        raise RuntimeError("the job item's outcome could not be written")

    client = await store.get_client(client_id)
    with pytest.raises(RuntimeError):
        await clients.commit_reauthorisation(
            client, grant_id, details, "test", also=failing_item_outcome
        )
    assert seen == []  # rolled back: nothing to announce
    await clients.commit_reauthorisation(client, grant_id, details, "test")
    assert seen == ["connected:connected"]
    await store.close()


# ---------------------------------------------------------------- lost token answers


async def _lose_one_refresh_answer(practice, rpc) -> p.Client:
    """A forced refresh the sandbox processes (rotating the token) but answers too late."""
    practice.daemon.config.network.timeout_seconds = 0.2
    await practice.daemon.providers.build()
    client_id = practice.xero_connected_ids[-1]
    before = await refreshes(practice)
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "hang_after", "delay_seconds": 1.0, "target": "token", "count": 1},
    )
    await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert await refreshes(practice) == before + 1  # the provider rotated the token
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "503", "target": "token", "provider": "xero"},
    )
    return await rpc.call(p.CLIENTS_GET, client_id=client_id)


async def test_after_a_lost_answer_retries_fit_inside_the_grace_and_recover(practice):
    rpc = await practice.connect()
    client = await _lose_one_refresh_answer(practice, rpc)
    lost_at = practice.clock.now()
    for _ in range(7):  # 21 minutes of an outage, inside Xero's 30-minute grace
        client = await rpc.call(p.CLIENTS_GET, client_id=client.id)
        wait = from_iso(client.next_check_at) - practice.clock.now()
        assert wait <= timedelta(minutes=3), wait  # a tenth of the grace, not a backoff
        await advance_time(practice, 3 * MINUTE)
    await sandbox_delete(practice.sandbox.base_url, "/_sandbox/faults")
    await advance_time(practice, 3 * MINUTE)
    assert practice.clock.now() - lost_at < timedelta(minutes=30)
    client = await rpc.call(p.CLIENTS_GET, client_id=client.id)
    assert client.status == "connected"
    # The old refresh token, used inside its grace, brought a new pair that is stored.
    await advance_time(practice, 31 * MINUTE)
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)
    assert client.status == "connected"


async def test_a_grant_lost_past_the_grace_says_the_answers_never_arrived(practice):
    rpc = await practice.connect()
    client = await _lose_one_refresh_answer(practice, rpc)
    for _ in range(11):  # 33 minutes: past Xero's grace for the rotated token
        await advance_time(practice, 3 * MINUTE)
    await sandbox_delete(practice.sandbox.base_url, "/_sandbox/faults")
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client.id)
    assert client.status == "needs_reauth"
    assert "never arrived" in client.status_reason
    assert "not revoked" in client.status_reason


# ---------------------------------------------------------------- the redirect address


async def test_a_pasted_address_for_another_place_is_refused_and_the_session_waits(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    redirect = await practice.approve(session.authorize_url, [client.tenant_id])
    uri = session.redirect_uri
    _, query = redirect.split("?", 1)
    for wrong in (
        f"https://evil.example/callback?{query}",
        uri.replace("127.0.0.1", "192.0.2.7") + "?" + query,
        uri.replace(f":{session.callback_port}", ":1") + "?" + query,
        uri + "/elsewhere?" + query,
    ):
        with pytest.raises(RpcError) as caught:
            await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=wrong)
        assert caught.value.code == ErrorCode.AUTH_REDIRECT_INVALID
        assert "still waiting" in caught.value.message
        status = await rpc.call(p.AUTH_STATUS, session_id=session.session_id)
        assert status.state == "pending"
    result = await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert result.client_id == client_id


# ---------------------------------------------------------------- racing sign-ins


async def test_the_losing_one_of_two_racing_sign_ins_says_another_finished_first(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    first = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    second = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    first_redirect = await practice.approve(first.authorize_url, [client.tenant_id])
    second_redirect = await practice.approve(second.authorize_url, [client.tenant_id])
    await rpc.call(p.AUTH_COMPLETE, session_id=second.session_id, redirect_url=second_redirect)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=first.session_id, redirect_url=first_redirect)
    assert caught.value.code == ErrorCode.AUTH_CLIENT_NOT_SELECTED
    assert "Another sign-in" in caught.value.message and "finished first" in caught.value.message
    assert "(none)" not in caught.value.message
    after = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert after.status == "connected"


# ---------------------------------------------------------------- unused sign-ins


async def test_an_unused_sign_in_is_listed_watched_and_can_be_revoked(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    orgs = await sandbox_get(practice.sandbox.base_url, "/_sandbox/orgs")
    other = next(o for o in orgs if o["tenant_id"] != client.tenant_id)
    before = await rpc.call(p.DAEMON_STATUS)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    # Signed in as the colleague whose own Xero sign-ins were revoked: revoking this one at
    # Xero (which ends every connection of that Xero user) ends nobody else's.
    redirect = await practice.approve(
        session.authorize_url, [other["tenant_id"]], user=practice.seeded.revoked_user
    )
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    grant_id = caught.value.data["grant_id"]

    unused = (await rpc.call(p.GRANTS_LIST, unused_only=True)).items
    assert [g.id for g in unused] == [grant_id]
    assert unused[0].tenants == [other["name"]] and unused[0].clients == 0
    status = await rpc.call(p.DAEMON_STATUS)
    assert status.unused_sign_ins == 1
    assert status.watched_grants == before.watched_grants + 1

    # Watched like any other: its access token is refreshed before it ends.
    first_end = unused[0].access_expires_at
    await advance_time(practice, 26 * MINUTE)
    listed = {g.id: g for g in (await rpc.call(p.GRANTS_LIST)).items}
    assert listed[grant_id].access_expires_at > first_end

    used = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[-1])
    with pytest.raises(RpcError) as refused:  # a grant that clients use is not for this
        await rpc.call(p.GRANTS_REVOKE, grant_id=used.grant_id)
    assert refused.value.code == ErrorCode.CONFLICT
    result = await rpc.call(p.GRANTS_REVOKE, grant_id=grant_id)
    assert result.state == "revoked" and "Xero" in result.message
    status = await rpc.call(p.DAEMON_STATUS)
    assert status.unused_sign_ins == 0
    assert status.watched_grants == before.watched_grants
