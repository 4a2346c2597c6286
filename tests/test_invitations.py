"""Invitations: email over real SMTP, SMS through the gateway, links to the bank feeds."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from clientlink.cli.demo import seed_practice
from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from tests.helpers import (
    DaemonProcess,
    finished,
    on_the_clock,
    sandbox_get,
    sandbox_post,
    wait_until,
)

LINK = re.compile(r"https?://\S+/basiq/consent/\S+")


async def outbox(practice, channel: str) -> list[dict]:
    return await sandbox_get(practice.sandbox.base_url, f"/_sandbox/outbox?channel={channel}")


async def two_banks(rpc) -> list[p.Bank]:
    return (await rpc.call(p.BANKS_LIST)).items[1:3]


async def test_one_client_gets_the_default_email_with_a_personal_link(practice):
    rpc = await practice.connect()
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.connected_ids[0])
    banks = await two_banks(rpc)
    started = await rpc.call(
        p.INVITES_SEND, client_id=client.id, channel="email", bank_ids=[b.id for b in banks]
    )
    job = await finished(rpc, started.job_id)
    assert job.done == 1
    (mail,) = await outbox(practice, "email")
    assert mail["rcpt_tos"] == [client.email]
    assert mail["message_id"]
    assert client.name in mail["text"]
    assert banks[0].name in mail["text"] and banks[1].name in mail["text"]
    assert LINK.search(mail["text"])
    (invitation,) = (await rpc.call(p.INVITES_LIST, client_id=client.id)).items
    assert invitation.state == "sent" and invitation.channel == "email"
    assert invitation.actor == rpc.greeting.user


async def test_bulk_custom_template_reaches_each_client_and_follows_them_to_connected(practice):
    rpc = await practice.connect()
    template = await rpc.call(
        p.TEMPLATES_CREATE,
        name="New banks",
        channel="email",
        subject="{client_name}: please add {bank_names}",
        body="Hello {client_name}, {practice_name} asks you to add {bank_names}: {link}",
    )
    banks = await two_banks(rpc)
    clients = practice.connected_ids[:3]
    started = await rpc.call(
        p.JOBS_START,
        kind="invite",
        client_ids=clients,
        channel="email",
        template_id=template.id,
        bank_ids=[b.id for b in banks],
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.failed) == (3, 0)
    mails = await outbox(practice, "email")
    links = {LINK.search(mail["text"]).group(0) for mail in mails}
    assert len(mails) == 3 and len(links) == 3  # a personal link each
    assert all(mail["subject"].endswith(f"{banks[0].name} and {banks[1].name}") for mail in mails)

    users = await sandbox_get(practice.sandbox.base_url, "/_sandbox/basiq/users")
    opaque = users[0]["auth_link"]["opaque"]
    await sandbox_post(practice.sandbox.base_url, f"/_sandbox/basiq/consent/{opaque}/complete")
    await rpc.call(p.INVITES_FOLLOW_UP)
    states = sorted(i.state for i in (await rpc.call(p.INVITES_LIST)).items)
    assert states == ["connected", "sent", "sent"]


async def test_sms_invitation_is_delivered_and_an_invalid_number_is_refused(practice):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    started = await rpc.call(p.INVITES_SEND, client_id=client_id, channel="sms")
    await finished(rpc, started.job_id)
    (sms,) = await outbox(practice, "sms")
    assert LINK.search(sms["body"])
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 10})
    await rpc.call(p.INVITES_FOLLOW_UP)
    (invitation,) = (await rpc.call(p.INVITES_LIST, client_id=client_id)).items
    assert invitation.state == "delivered"

    with pytest.raises(RpcError) as caught:
        await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, phone="0491 57")
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, phone="(02) 9876 5432")
    before = await rpc.call(p.JOBS_LIST)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.INVITES_SEND, client_id=client_id, channel="sms")
    assert "+61298765432 is not a mobile number" in caught.value.message
    assert await rpc.call(p.JOBS_LIST) == before
    assert len(await outbox(practice, "sms")) == 1


async def test_missing_contact_or_wrong_template_is_refused_up_front(practice):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, email="")
    before = await rpc.call(p.JOBS_LIST)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.INVITES_SEND, client_id=client_id, channel="email")
    assert "no email address" in caught.value.message
    with pytest.raises(RpcError) as caught:
        await rpc.call(
            p.INVITES_SEND, client_id=client_id, channel="sms", template_id="default-email"
        )
    assert "is for email" in caught.value.message
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.INVITES_SEND, client_id=client_id, channel="sms", bank_ids=["AU99999"])
    assert "unknown bank" in caught.value.message
    assert await rpc.call(p.JOBS_LIST) == before


async def test_a_dropped_connection_after_data_is_uncertain_and_never_resent(practice):
    rpc = await practice.connect()
    await sandbox_post(
        practice.sandbox.base_url, "/_sandbox/faults", {"kind": "smtp_drop_after_data", "count": 1}
    )
    started = await rpc.call(p.INVITES_SEND, client_id=practice.connected_ids[0], channel="email")
    job = await finished(rpc, started.job_id)
    assert job.failed == 1 and job.items[0].error.startswith("Uncertain")
    assert job.items[0].attempts == 1
    (invitation,) = (await rpc.call(p.INVITES_LIST)).items
    assert invitation.state == "uncertain"
    assert len(await outbox(practice, "email")) == 1  # it did arrive: a resend would duplicate


async def test_a_client_who_has_not_acted_is_reminded_once(practice):
    rpc = await practice.connect()
    started = await rpc.call(p.INVITES_SEND, client_id=practice.connected_ids[0], channel="email")
    await finished(rpc, started.job_id)
    practice.clock.advance(4 * 24 * 3600)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 4 * 86400})
    assert (await rpc.call(p.INVITES_FOLLOW_UP)).reminded == 1

    async def two_mails():
        return len(await outbox(practice, "email")) == 2

    await wait_until(two_mails, what="the reminder")
    first, reminder = await outbox(practice, "email")
    assert reminder["subject"].startswith("Reminder: ")
    assert LINK.search(first["text"]).group(0) == LINK.search(reminder["text"]).group(0)
    assert (await rpc.call(p.INVITES_FOLLOW_UP)).reminded == 0


async def test_a_daemon_killed_mid_send_marks_it_uncertain_and_sends_nothing_twice(home, sandbox):
    from tests.test_jobs import seed_practice

    process = DaemonProcess(home)
    try:
        rpc = await process.start()
        seeded = await seed_practice(rpc, sandbox.base_url)
        await sandbox_post(
            sandbox.base_url,
            "/_sandbox/faults",
            {"kind": "hang_after", "delay_seconds": 30, "target": "sms", "count": 1},
        )
        started = await rpc.call(p.INVITES_SEND, client_id=seeded.client_ids[0], channel="sms")

        async def sent_by_gateway():
            return len(await sandbox_get(sandbox.base_url, "/_sandbox/outbox?channel=sms")) == 1

        await wait_until(sent_by_gateway, what="the gateway to accept the SMS")
        process.kill()
        await process.process.wait()
        rpc = await process.start()
        job = await finished(rpc, started.job_id)
        assert job.failed == 1 and job.items[0].error.startswith("Uncertain")
        (invitation,) = (await rpc.call(p.INVITES_LIST)).items
        assert invitation.state == "uncertain"
        assert len(await sandbox_get(sandbox.base_url, "/_sandbox/outbox?channel=sms")) == 1
        await rpc.close()
    finally:
        await process.stop()


async def test_a_broken_bank_connection_is_shown_as_needing_a_reconnect(practice):
    rpc = await practice.connect()
    await rpc.subscribe(["bank.connection_changed"])
    client_id = practice.connected_ids[0]
    bank = (await two_banks(rpc))[0]
    started = await rpc.call(
        p.INVITES_SEND, client_id=client_id, channel="email", bank_ids=[bank.id]
    )
    await finished(rpc, started.job_id)
    users = await sandbox_get(practice.sandbox.base_url, "/_sandbox/basiq/users")
    opaque = users[0]["auth_link"]["opaque"]
    await sandbox_post(practice.sandbox.base_url, f"/_sandbox/basiq/consent/{opaque}/complete")
    await rpc.call(p.INVITES_FOLLOW_UP)
    (connection,) = (await rpc.call(p.BANKS_CONNECTIONS, client_id=client_id)).items
    assert connection.bank_name == bank.name and not connection.needs_reconnect

    await sandbox_post(
        practice.sandbox.base_url, f"/_sandbox/basiq/connections/{connection.id}/invalidate"
    )
    await rpc.call(p.INVITES_FOLLOW_UP)
    (connection,) = (await rpc.call(p.BANKS_CONNECTIONS, client_id=client_id)).items
    assert connection.needs_reconnect and connection.status == "invalid"
    history = await rpc.call(p.CLIENTS_HISTORY, client_id=client_id)
    assert "reconnect" in history.items[0].reason


async def test_sms_busy_is_retried_and_an_unsubscribed_number_is_explained(practice):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    await sandbox_post(
        practice.sandbox.base_url, "/_sandbox/faults", {"kind": "429", "target": "sms", "count": 1}
    )
    started = await rpc.call(p.INVITES_SEND, client_id=client_id, channel="sms")
    job = await on_the_clock(practice.clock, finished(rpc, started.job_id, within=30))
    assert job.done == 1 and job.items[0].attempts == 2
    assert len(await outbox(practice, "sms")) == 1

    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, phone="+61491580012")
    started = await rpc.call(p.INVITES_SEND, client_id=client_id, channel="sms")
    job = await finished(rpc, started.job_id, within=30)
    assert "unsubscribed from SMS" in job.items[0].error
    assert "21610" in job.items[0].error
    timeline = (await rpc.call(p.INVITES_LIST, client_id=client_id)).items
    assert timeline[0].state == "failed"


async def test_resending_makes_a_new_link_and_the_old_one_stops_working(practice):
    import httpx

    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    started = await rpc.call(p.INVITES_SEND, client_id=client_id, channel="email")
    await finished(rpc, started.job_id)
    (invitation,) = (await rpc.call(p.INVITES_LIST)).items
    resent = await rpc.call(p.INVITES_RESEND, invitation_id=invitation.id)
    await finished(rpc, resent.job_id)
    first, second = await outbox(practice, "email")
    old, new = (LINK.search(m["text"]).group(0) for m in (first, second))
    assert old != new
    async with httpx.AsyncClient() as http:
        assert (await http.get(old)).status_code == 410
        assert (await http.get(new)).status_code == 200


def _email_settings(home, **settings) -> None:
    """Change keys of config.toml's [email] table (read at the daemon's next start)."""
    text = home.config_file.read_text()
    head, _, rest = text.partition("[email]\n")
    table, marker, tail = rest.partition("\n[")
    lines = [line for line in table.splitlines() if line.split(" = ")[0] not in settings]
    lines += [
        f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}"
        for key, value in settings.items()
    ]
    home.config_file.write_text(head + "[email]\n" + "\n".join(lines) + "\n" + marker + tail)


async def _states(rpc) -> list[str]:
    return sorted(i.state for i in (await rpc.call(p.INVITES_LIST)).items)


async def _assert_each_sent_once(rpc, sandbox, client_ids: list[int]) -> None:
    """Every client has one mail, one sent invitation and one bank-feed user."""
    emails = [(await rpc.call(p.CLIENTS_GET, client_id=c)).email for c in client_ids]
    mails = await sandbox_get(sandbox.base_url, "/_sandbox/outbox?channel=email")
    assert sorted(to for mail in mails for to in mail["rcpt_tos"]) == sorted(emails)
    assert await _states(rpc) == ["sent"] * len(client_ids)
    users = await sandbox_get(sandbox.base_url, "/_sandbox/basiq/users")
    assert sorted(user["email"] for user in users) == sorted(emails)
    # The link each client got is the one made before the kill, still its current one.
    for mail in mails:
        link = LINK.search(mail["text"]).group(0)
        async with httpx.AsyncClient() as http:
            assert (await http.get(link)).status_code == 200


async def test_killed_while_waiting_for_the_pace_nothing_is_uncertain_and_all_go_once(
    home, sandbox
):
    _email_settings(home, per_minute=3)
    process = DaemonProcess(home)
    try:
        rpc = await process.start()
        seeded = await seed_practice(rpc, sandbox.base_url)
        clients = seeded.client_ids[:6]
        started = await rpc.call(p.JOBS_START, kind="invite", client_ids=clients, channel="email")

        async def three_sent_three_waiting():
            states = await _states(rpc)  # the held ones are recorded, with their links
            return len(states) == 6 and states.count("sent") == 3

        await wait_until(three_sent_three_waiting, what="three mails out, three held by pace")
        process.kill()
        await process.process.wait()
        _email_settings(home, per_minute=600)
        rpc = await process.start()
        job = await finished(rpc, started.job_id)
        assert (job.done, job.failed) == (6, 0)
        await _assert_each_sent_once(rpc, sandbox, clients)
        await rpc.close()
    finally:
        await process.stop()


async def test_killed_while_waiting_for_an_smtp_connection_nothing_is_uncertain(home, sandbox):
    held: list[asyncio.StreamWriter] = []

    async def never_greets(reader, writer):  # a mail server that accepts and says nothing
        held.append(writer)

    silent = await asyncio.start_server(never_greets, "127.0.0.1", 0)
    _email_settings(home, port=silent.sockets[0].getsockname()[1], timeout_seconds=120)
    process = DaemonProcess(home)
    try:
        rpc = await process.start()
        seeded = await seed_practice(rpc, sandbox.base_url)
        clients = seeded.client_ids[:3]
        started = await rpc.call(p.JOBS_START, kind="invite", client_ids=clients, channel="email")

        async def all_waiting_for_the_server():
            return len(held) == 3 and len(await _states(rpc)) == 3

        await wait_until(all_waiting_for_the_server, what="three sends waiting to connect")
        process.kill()
        await process.process.wait()
        _email_settings(home, port=sandbox.smtp_port, timeout_seconds=30)
        rpc = await process.start()
        job = await finished(rpc, started.job_id)
        assert (job.done, job.failed) == (3, 0)
        await _assert_each_sent_once(rpc, sandbox, clients)
        await rpc.close()
    finally:
        await process.stop()
        for writer in held:
            writer.close()
        silent.close()


async def test_two_invitations_at_once_create_one_bank_feed_user(practice):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "delay", "delay_seconds": 0.3, "target": "banks", "count": 20},
    )
    first, second = await asyncio.gather(
        rpc.call(p.INVITES_SEND, client_id=client_id, channel="email"),
        rpc.call(p.INVITES_SEND, client_id=client_id, channel="sms"),
    )
    for started in (first, second):
        job = await finished(rpc, started.job_id)
        assert job.done == 1
    users = await sandbox_get(practice.sandbox.base_url, "/_sandbox/basiq/users")
    assert len(users) == 1
