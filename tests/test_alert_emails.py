"""Alert digest emails in the sandbox's SMTP outbox: one per person per window, naming the
clients still failing, why, since when and what to do; the opt-out honoured; a failing
server retried and recorded, a mail that may have left never resent, and one queued when
the daemon was killed sent once after its restart.

Connection owners: the practice is seeded by this test's own login (single-user mode), so
two of its Xero grants are handed to other staff logins in the database, standing in for
those people's own sign-ins (tests/test_alert_agent.py runs real users of a firm).
"""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any

import pytest

from clientlink.cli.demo import seed_practice
from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from tests.helpers import DaemonProcess, advance_time, sandbox_get, sandbox_post, wait_until
from tests.test_invitations import _email_settings

ALERT_ADDRESS = "alerts@harbourside.example"
WINDOW_MINUTES = 30


def _alerts_settings(home: Paths, **settings: Any) -> None:
    lines = [
        f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}"
        for key, value in settings.items()
    ]
    with home.config_file.open("a", encoding="utf-8") as config:
        config.write("\n[alerts]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def home(home: Paths) -> Paths:
    _alerts_settings(home, address=ALERT_ADDRESS, digest_minutes=WINDOW_MINUTES)
    return home


async def mails(base_url: str) -> list[dict[str, Any]]:
    return await sandbox_get(base_url, "/_sandbox/outbox?channel=email")


def to(mail: dict[str, Any]) -> str:
    (recipient,) = mail["rcpt_tos"]
    return recipient


async def break_grant(practice: Any, rpc: Any, client_id: int) -> list[p.Client]:
    """The person who signed in for the client revokes clientlink at the provider; a check
    finds every client resting on that sign-in needing re-authorisation. Returns them."""
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    listed = await rpc.call(p.CLIENTS_LIST, limit=1000)
    working = {
        c.id for c in listed.items if c.grant_id == client.grant_id and c.status == "connected"
    }
    base = practice.sandbox.base_url
    grants = await sandbox_get(base, "/_sandbox/grants")
    grant = next(
        g
        for g in grants
        if client.tenant_id in (*g["tenant_ids"], g["realm_id"]) and not g["revoked"]
    )
    await sandbox_post(base, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    listed = await rpc.call(p.CLIENTS_LIST, limit=1000)
    broken = [c for c in listed.items if c.id in working]
    assert broken and {c.status for c in broken} == {"needs_reauth"}
    return broken


async def reauthorise(practice: Any, rpc: Any, client: p.Client) -> None:
    session = await rpc.call(p.AUTH_BEGIN, provider=client.provider, client_id=client.id)
    redirect = await practice.approve(session.authorize_url, [client.tenant_id])
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert (await rpc.call(p.CLIENTS_GET, client_id=client.id)).status == "connected"


async def add_staff(practice: Any, login: str, name: str, email: str, **preferences: Any) -> None:
    services = practice.daemon.services
    await services.store.add_staff(
        login=login, display_name=name, email=email, role="staff", now=practice.clock.now()
    )
    if preferences:
        await services.store.update_staff(login, practice.clock.now(), preferences=preferences)
    await services.staff.reload()


async def hand_grant_to(practice: Any, grant_id: int, login: str) -> None:
    """The grant becomes ``login``'s, as if they had signed in for it."""
    async with practice.daemon.services.store.transaction() as db:
        await db.execute("UPDATE grants SET authorised_by = ? WHERE id = ?", (login, grant_id))


async def clients_by_grant(rpc: Any, practice: Any) -> list[list[p.Client]]:
    """The connected clients by the grant they rest on, the largest first."""
    by_grant: dict[int, list[p.Client]] = {}
    for client_id in practice.connected_ids:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert client.grant_id is not None
        by_grant.setdefault(client.grant_id, []).append(client)
    return sorted(by_grant.values(), key=len, reverse=True)


async def settled(rpc: Any) -> list[p.AlertMail]:
    """The alert mails once none is waiting any more."""

    async def nothing_queued() -> bool:
        return all(m.state != "queued" for m in (await rpc.call(p.ALERTS_LIST)).items)

    await wait_until(nothing_queued, what="every alert mail to be sent or dropped")
    return (await rpc.call(p.ALERTS_LIST)).items


async def test_one_digest_per_person_naming_only_the_clients_still_failing(practice) -> None:
    rpc = await practice.connect()
    base = practice.sandbox.base_url
    groups = await clients_by_grant(rpc, practice)
    alex_xero, sam_xero = [g for g in groups if g[0].provider == "xero"][:2]
    rita_qbo, alex_qbo = [g for g in groups if g[0].provider == "quickbooks"][:2]
    owner = alex_xero[0].authorised_by
    assert owner is not None and alex_qbo[0].authorised_by == owner
    await add_staff(practice, owner, "Alex Admin", "alex@harbourside.example")
    await add_staff(practice, "cltest_sam", "Sam Lee", "sam@harbourside.example")
    await add_staff(
        practice, "cltest_rita", "Rita Reed", "rita@harbourside.example", email_alerts=False
    )
    await hand_grant_to(practice, sam_xero[0].grant_id, "cltest_sam")
    await hand_grant_to(practice, rita_qbo[0].grant_id, "cltest_rita")
    before = len(await mails(base))

    recovered, *alex_broken = await break_grant(practice, rpc, alex_xero[0].id)
    sam_broken = await break_grant(practice, rpc, sam_xero[0].id)
    (rita_broken,) = await break_grant(practice, rpc, rita_qbo[0].id)
    await reauthorise(practice, rpc, recovered)  # before the window ends: left out

    await advance_time(practice, (WINDOW_MINUTES - 5) * 60)
    assert len(await mails(base)) == before, "nothing goes before the window ends"
    await advance_time(practice, 6 * 60)
    items = await settled(rpc)

    sent = {to(mail): mail for mail in (await mails(base))[before:]}
    assert sorted(sent) == [ALERT_ADDRESS, "alex@harbourside.example", "sam@harbourside.example"]
    alex_mail = sent["alex@harbourside.example"]["text"]
    for client in alex_broken:
        assert client.name in alex_mail
    assert recovered.name not in alex_mail
    assert sam_broken[0].name not in alex_mail and rita_broken.name not in alex_mail
    assert "Hello Alex Admin," in alex_mail
    assert sent["alex@harbourside.example"]["subject"] == (
        f"clientlink: {len(alex_broken)} client connections need attention"
    )
    # Which clients, why, since when, what to do.
    assert "Needs re-auth" in alex_mail
    assert alex_broken[0].status_reason and alex_broken[0].status_reason in alex_mail
    assert re.search(r"since \d\d \w{3} \d{4} \d\d:\d\d UTC", alex_mail)
    assert "press r on its row" in alex_mail and "b (Bulk" in alex_mail
    sam_mail = sent["sam@harbourside.example"]["text"]
    assert all(c.name in sam_mail for c in sam_broken)
    assert alex_broken[0].name not in sam_mail
    # The practice's address hears of everyone's, Rita's included (she opted out herself).
    practice_mail = sent[ALERT_ADDRESS]["text"]
    for client in (*alex_broken, *sam_broken, rita_broken):
        assert client.name in practice_mail
    assert recovered.name not in practice_mail
    states = {mail.recipient: mail.state for mail in items}
    assert "rita@harbourside.example" not in states  # opted out: never even queued
    assert set(states.values()) == {"sent"}

    # A second failure within Alex's next window waits for it: at most one mail per window.
    (again,) = await break_grant(practice, rpc, alex_qbo[0].id)
    await advance_time(practice, (WINDOW_MINUTES - 5) * 60)
    assert len(await mails(base)) == before + 3
    await advance_time(practice, 6 * 60)
    await settled(rpc)
    latest = {to(mail): mail for mail in (await mails(base))[before + 3 :]}
    assert sorted(latest) == [ALERT_ADDRESS, "alex@harbourside.example"]
    assert again.name in latest["alex@harbourside.example"]["text"]
    assert alex_broken[0].name not in latest["alex@harbourside.example"]["text"]


async def test_my_preferences_are_mine_to_set_and_opting_out_stops_my_mail(practice) -> None:
    rpc = await practice.connect()
    base = practice.sandbox.base_url
    groups = await clients_by_grant(rpc, practice)
    alex_qbo = next(g for g in groups if g[0].provider == "quickbooks")
    owner = alex_qbo[0].authorised_by
    with pytest.raises(RpcError) as refused:  # single-user mode, nobody on a staff list yet
        await rpc.call(p.STAFF_SET_PREFERENCES, email_alerts=False)
    assert refused.value.error_code == ErrorCode.NOT_FOUND
    assert "nothing was changed" in refused.value.message
    await add_staff(practice, owner, "Alex Admin", "alex@harbourside.example")
    mine = await rpc.call(p.STAFF_PREFERENCES)
    assert (mine.login, mine.firm, mine.on_staff_list) == (owner, False, True)
    assert mine.preferences == p.StaffPreferences(agent="mine", email_alerts=True)

    changed = await rpc.call(p.STAFF_SET_PREFERENCES, email_alerts=False)
    assert changed.preferences == p.StaffPreferences(agent="mine", email_alerts=False)
    changed = await rpc.call(p.STAFF_SET_PREFERENCES, agent="all")
    assert changed.preferences == p.StaffPreferences(agent="all", email_alerts=False)
    with pytest.raises(RpcError) as bad:
        await rpc.call_raw(p.STAFF_SET_PREFERENCES.name, {"agent": "everyone"})
    assert bad.value.error_code == ErrorCode.INVALID_PARAMS
    assert (await rpc.call(p.STAFF_PREFERENCES)).preferences.agent == "all"

    before = len(await mails(base))
    (broken,) = await break_grant(practice, rpc, alex_qbo[0].id)
    await advance_time(practice, (WINDOW_MINUTES + 1) * 60)
    await settled(rpc)
    (only,) = (await mails(base))[before:]
    assert to(only) == ALERT_ADDRESS and broken.name in only["text"]


async def test_a_failing_mail_server_is_retried_with_backoff_and_sends_once(practice) -> None:
    rpc = await practice.connect()
    base = practice.sandbox.base_url
    before = len(await mails(base))
    await sandbox_post(base, "/_sandbox/faults", {"kind": "smtp_4xx", "count": 2})
    (broken,) = await break_grant(practice, rpc, practice.seeded.quickbooks_ids[0])
    await advance_time(practice, (WINDOW_MINUTES + 1) * 60)

    async def tried(times: int) -> bool:
        (mail,) = (await rpc.call(p.ALERTS_LIST)).items
        return mail.attempts == times

    await wait_until(lambda: tried(1), what="the first try")
    (waiting,) = (await rpc.call(p.ALERTS_LIST)).items
    assert waiting.state == "queued" and "try later" in (waiting.error or "")
    assert len(await mails(base)) == before
    await advance_time(practice, 61)  # the first backoff: a minute
    await wait_until(lambda: tried(2), what="the second try")
    await advance_time(practice, 121)  # then two
    (mail,) = await settled(rpc)
    assert (mail.state, mail.attempts, mail.error) == ("sent", 3, None)
    assert mail.client_ids == [broken.id]
    (arrived,) = (await mails(base))[before:]
    assert to(arrived) == ALERT_ADDRESS and broken.name in arrived["text"]
    await advance_time(practice, 3 * 3600)
    assert len(await mails(base)) == before + 1
    audit = (await rpc.call(p.AUDIT_LIST)).items
    assert any(entry.action == "alert.sent" for entry in audit)


async def test_a_mail_that_may_have_left_is_uncertain_and_never_resent(practice) -> None:
    rpc = await practice.connect()
    base = practice.sandbox.base_url
    before = len(await mails(base))
    await sandbox_post(base, "/_sandbox/faults", {"kind": "smtp_drop_after_data", "count": 1})
    await break_grant(practice, rpc, practice.seeded.quickbooks_ids[0])
    await advance_time(practice, (WINDOW_MINUTES + 1) * 60)
    (mail,) = await settled(rpc)
    assert mail.state == "uncertain" and mail.error.startswith("Uncertain")
    await advance_time(practice, 3 * 3600)
    assert len(await mails(base)) == before + 1  # it did arrive: a resend would duplicate
    assert [m.state for m in (await rpc.call(p.ALERTS_LIST)).items] == ["uncertain"]


async def test_a_daemon_killed_before_its_alert_left_sends_it_once_after_restart(
    home, sandbox
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def never_greets(reader, writer):  # a mail server that accepts and says nothing
        held.append(writer)

    silent = await asyncio.start_server(never_greets, "127.0.0.1", 0)
    _email_settings(home, port=silent.sockets[0].getsockname()[1], timeout_seconds=120)
    # At once: a daemon in its own process keeps its own clock.
    text = home.config_file.read_text()
    home.config_file.write_text(
        text.replace(f"digest_minutes = {WINDOW_MINUTES}\n", "digest_minutes = 0\n")
    )
    process = DaemonProcess(home)
    try:
        rpc = await process.start()
        seeded = await seed_practice(rpc, sandbox.base_url)
        (client,) = await break_grant(
            SimpleNamespace(sandbox=sandbox), rpc, seeded.quickbooks_ids[0]
        )
        client_id = client.id

        async def waiting_for_the_server() -> bool:
            listed = (await rpc.call(p.ALERTS_LIST)).items
            mine = [m for m in listed if client_id in m.client_ids]
            return bool(held) and [m.state for m in mine] == ["queued"]

        # Seeding's own failures went first: they too wait, none has left.
        await wait_until(waiting_for_the_server, what="the alert waiting to connect")
        assert {m.state for m in (await rpc.call(p.ALERTS_LIST)).items} == {"queued"}
        process.kill()
        await process.process.wait()
        _email_settings(home, port=sandbox.smtp_port, timeout_seconds=30)
        rpc = await process.start()
        listed = await settled(rpc)
        assert {m.state for m in listed} == {"sent"}  # nothing was uncertain
        assert len([m for m in listed if client_id in m.client_ids]) == 1
        sent = [m for m in await mails(sandbox.base_url) if ALERT_ADDRESS in m["rcpt_tos"]]
        assert len(sent) == len(listed)  # each once
        assert len([m for m in sent if client.name in m["text"]]) == 1
        await rpc.close()
    finally:
        await process.stop()
        for writer in held:
            writer.close()
        silent.close()
