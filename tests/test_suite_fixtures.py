"""The suite's own machinery: the injected clock's sleep, the sandbox's snapshot, and the
copied practice being what seeding makes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from clientlink.cli.demo import demo_config_text, seed_practice
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.config import load_config
from clientlink.common.paths import resolve_paths
from clientlink.daemon.clock import Clock
from clientlink.daemon.limits import LimitSpec, ProviderLimits, RateLimiter
from clientlink.daemon.service import Daemon
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.state import SandboxState
from tests.conftest import TEST_ORGS
from tests.helpers import finished, on_the_clock, sandbox_get, sandbox_post, wait_until

# --------------------------------------------------------------------------- Clock.sleep


async def test_a_clock_sleep_ends_when_the_clock_is_moved_past_it() -> None:
    clock = Clock()
    sleeper = asyncio.create_task(clock.sleep(3600))
    await asyncio.sleep(0.05)
    clock.advance(1800)
    await asyncio.sleep(0.05)
    assert not sleeper.done()  # half way is not there yet
    clock.advance(1800)
    await asyncio.wait_for(sleeper, 2)


async def test_a_clock_sleep_also_ends_in_real_time_and_yields_at_zero() -> None:
    clock = Clock()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(clock.sleep(0.1), 2)
    assert loop.time() - started >= 0.09
    ran: list[int] = []
    loop.call_soon(ran.append, 1)
    await clock.sleep(0)
    assert ran == [1]


async def test_a_cancelled_clock_sleep_leaves_nothing_waiting() -> None:
    clock = Clock()
    sleeper = asyncio.create_task(clock.sleep(60))
    await asyncio.sleep(0.01)
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)
    assert sleeper.cancelled()
    assert not clock._sleepers


async def test_the_clocks_monotonic_time_moves_with_advance_but_not_with_a_start_offset() -> None:
    behind = Clock(offset=timedelta(hours=-1))
    before = behind.monotonic()
    assert abs(before - Clock().monotonic()) < 1  # an offset given at the start is not a move
    behind.advance(90)
    assert behind.monotonic() - before >= 90


# --------------------------------------------------------------------------- the snapshot


async def test_a_sandbox_snapshot_restores_an_independent_copy_of_the_world(
    sandbox: SandboxServer,
) -> None:
    state = sandbox.state
    tenant = state.orgs[2].tenant_id
    state.rename_org(tenant, "Renamed Pty Ltd")
    state.faults.add({"kind": "500", "target": "token", "count": 1})
    state.calls["organisation"] += 3
    state.clock.advance(7200)
    snapshot = state.snapshot()
    moment = state.clock.now()

    other = SandboxState(org_count=TEST_ORGS)
    other.restore(snapshot)
    assert other.orgs == state.orgs and other.xero.orgs[tenant].name == "Renamed Pty Ltd"
    assert [rule.target for rule in other.faults.rules] == ["token"]
    assert other.calls["organisation"] == 3
    assert abs((other.clock.now() - moment).total_seconds()) < 5  # resumes where it was

    # The copy is its own: changing it changes neither the original nor the snapshot.
    other.rename_org(tenant, "Changed Again")
    other.faults.clear()
    other.calls["organisation"] += 1
    assert state.xero.orgs[tenant].name == "Renamed Pty Ltd"
    assert len(state.faults.rules) == 1
    third = SandboxState(org_count=TEST_ORGS)
    third.restore(snapshot)
    assert third.xero.orgs[tenant].name == "Renamed Pty Ltd"
    assert third.calls["organisation"] == 3
    assert third.xero.clock is third.clock and third.mail is not state.mail


async def test_a_restore_keeps_what_the_smtp_server_holds(sandbox: SandboxServer) -> None:
    mail, faults, calls = sandbox.state.mail, sandbox.state.faults, sandbox.state.calls
    sandbox.state.restore(SandboxState(org_count=TEST_ORGS).snapshot())
    assert sandbox.state.mail is mail and sandbox.state.faults is faults
    assert sandbox.state.calls is calls


# --------------------------------------------------------------------------- the practice


async def _listing(client: DaemonClient) -> list[tuple]:
    # Not by id: seeding imports concurrently, so ids fall to businesses in any order.
    items = (await client.call(p.CLIENTS_LIST, limit=1000)).items
    return sorted((item.name, item.provider, item.tenant_id, item.status) for item in items)


async def test_a_copied_practice_is_what_seeding_makes(practice, short_tmp) -> None:
    rpc = await practice.connect()
    copied = await _listing(rpc)
    # Clocks agree with each other, and with the moment seeding ended (a few seconds ago).
    sandbox_clock = await sandbox_get(practice.sandbox.base_url, "/_sandbox/clock")
    assert abs(sandbox_clock["offset_seconds"] - practice.clock.offset.total_seconds()) < 5
    status = await rpc.call(p.NOTIFICATIONS_LIST)
    assert status.unread == 0

    # Seed a practice afresh beside it, the way the fixture used to for every test.
    async with SandboxServer(org_count=TEST_ORGS) as server:
        paths = resolve_paths(short_tmp / "fresh")
        paths.ensure()
        paths.config_file.write_text(
            demo_config_text(server.base_url, smtp_port=server.smtp_port), encoding="utf-8"
        )
        fresh = Daemon(paths, load_config(paths.config_file), clock=Clock(), desktop=None)
        await fresh.start()
        client = DaemonClient(paths.socket, client_name="seed")
        try:
            await client.connect()
            seeded = await seed_practice(client, server.base_url)
            assert seeded.revoked_user == practice.seeded.revoked_user
            assert seeded.disconnected_tenants == practice.seeded.disconnected_tenants
            for ids in ("client_ids", "needs_reauth_ids", "quickbooks_ids"):
                assert len(getattr(seeded, ids)) == len(getattr(practice.seeded, ids))
            assert await _listing(client) == copied
        finally:
            await client.close()
            await fresh.stop()

    # The copy's grants are live at its own sandbox: a forced refresh rotates the tokens.
    client_id = practice.xero_connected_ids[0]
    refreshed = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert refreshed.status == "connected"
    await rpc.call(p.CLIENTS_CHECK)
    assert await _listing(rpc) == copied


# --------------------------------------------------------------------------- waits on the clock


async def test_a_rate_limit_wait_passes_when_the_clock_moves_on() -> None:
    clock = Clock()
    limiter = RateLimiter(ProviderLimits(app=LimitSpec(per_minute=1)), clock)
    async with limiter.slot(None):
        pass
    second = asyncio.create_task(limiter.slot(None).__aenter__())
    await asyncio.sleep(0.1)
    assert not second.done()  # the minute's one call is spent
    clock.advance(61)
    await asyncio.wait_for(second, 2)

    limiter.block(None, 3600)  # a Retry-After of an hour
    third = asyncio.create_task(limiter.slot(None).__aenter__())
    await asyncio.sleep(0.1)
    assert not third.done()
    clock.advance(3601)
    await asyncio.wait_for(third, 2)


async def test_the_digest_window_ends_on_the_daemons_clock(practice) -> None:
    rpc = await practice.connect()
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[0])
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/connections/disconnect",
        {"tenant_id": client.tenant_id},
    )
    await rpc.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)
    await asyncio.sleep(0.2)
    assert (await rpc.call(p.NOTIFICATIONS_LIST)).unread == 0  # still gathering
    practice.clock.advance(practice.daemon.config.notifications.digest_window_seconds)

    async def announced() -> bool:
        return (await rpc.call(p.NOTIFICATIONS_LIST)).unread == 1

    await wait_until(announced, within=2, what="the notification, once the window passed")


async def test_a_retry_backoff_ends_on_the_daemons_clock(practice) -> None:
    rpc = await practice.connect()
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "429", "target": "sms", "count": 1, "retry_after": 600},
    )
    started = await rpc.call(p.INVITES_SEND, client_id=practice.connected_ids[0], channel="sms")
    job = await on_the_clock(practice.clock, finished(rpc, started.job_id, within=10), step=30)
    assert job.done == 1 and job.items[0].attempts == 2
