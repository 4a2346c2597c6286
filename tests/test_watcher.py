"""The connection watcher: refresh ahead of expiry, keep idle grants alive, classify failures.

Time moves through the sandbox's admin clock and the daemon's injected clock, never by
waiting; APScheduler then runs whatever the moved clocks made due.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from clientlink.common import protocol as p
from clientlink.common.timeutil import from_iso
from tests.helpers import advance_time, sandbox_delete, sandbox_get, sandbox_post, wait_until

DAY = 24 * 3600


async def refresh_calls(running) -> int:
    stats = await sandbox_get(running.sandbox.base_url, "/_sandbox/stats")
    return stats["calls"].get("token.refresh_token", 0)


async def statuses(rpc) -> dict[str, int]:
    return (await rpc.call(p.CLIENTS_LIST, limit=1)).counts


async def test_every_watched_grant_is_scheduled_at_start(practice):
    rpc = await practice.connect()
    status = await rpc.call(p.DAEMON_STATUS)
    # Two Xero staff grants (the revoked one is no longer watched) and one per QBO company.
    assert status.watched_grants == 2 + len(practice.seeded.quickbooks_ids)
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[-1])
    next_check = from_iso(client.next_check_at)
    access_end = from_iso(client.access_expires_at)
    assert next_check is not None and access_end is not None
    assert access_end - timedelta(minutes=7) <= next_check <= access_end - timedelta(minutes=5)


async def test_access_tokens_are_refreshed_before_they_expire(practice):
    rpc = await practice.connect()
    client_id = practice.xero_connected_ids[-1]
    before = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    calls = await refresh_calls(practice)
    await advance_time(practice, 26 * 60)
    assert await refresh_calls(practice) == calls + 2
    after = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert after.access_expires_at > before.access_expires_at
    assert after.status == "connected"
    assert after.last_refresh_at > before.last_refresh_at


async def test_idle_grants_are_kept_alive_past_the_refresh_tokens_idle_end(practice):
    rpc = await practice.connect()
    for _ in range(3):  # 177 days: three times the 60-day idle life
        await advance_time(practice, 59 * DAY)
    counts = await statuses(rpc)
    assert counts["needs_reauth"] == len(practice.client_ids_needing_reauth)
    assert counts["connected"] == len(practice.seeded.client_ids) - counts["needs_reauth"]


async def test_an_unwatched_grant_dies_at_its_idle_end(practice):
    """The sandbox really ends idle refresh tokens: what the keep-alive prevents."""
    rpc = await practice.connect()
    await practice.daemon.watcher.stop()
    practice.clock.advance(61 * DAY)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 61 * DAY})
    client_id = practice.xero_connected_ids[-1]
    await rpc.call(p.CLIENTS_CHECK, client_ids=[client_id])
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "needs_reauth"


async def test_a_refused_refresh_marks_needs_reauth_with_reason_and_since(practice):
    rpc = await practice.connect()
    await rpc.subscribe(["client.status_changed"])
    grants = await sandbox_get(practice.sandbox.base_url, "/_sandbox/grants")
    sam = next(g for g in grants if g["user"].startswith("sam") and not g["revoked"])
    await sandbox_post(practice.sandbox.base_url, f"/_sandbox/grants/{sam['grant_id']}/revoke")
    await advance_time(practice, 26 * 60)
    listing = await rpc.call(p.CLIENTS_LIST, filter={"status": "needs_reauth"}, limit=1000)
    newly = [c for c in listing.items if c.id not in practice.client_ids_needing_reauth]
    assert len(newly) == len(sam["tenant_ids"])
    for client in newly:
        assert "refused" in client.status_reason
        assert from_iso(client.status_since) >= practice.clock.now() - timedelta(minutes=1)
    history = await rpc.call(p.CLIENTS_HISTORY, client_id=newly[0].id)
    assert history.items[0].kind == "status"
    assert history.items[0].old_status == "connected"


async def test_a_long_outage_never_marks_needs_reauth_and_recovers(practice):
    rpc = await practice.connect()
    await sandbox_post(
        practice.sandbox.base_url, "/_sandbox/faults", {"kind": "503", "target": "token"}
    )
    for _ in range(4):  # failures on four separate days
        await advance_time(practice, DAY)
    counts = await statuses(rpc)
    assert counts["needs_reauth"] == len(practice.client_ids_needing_reauth)
    assert counts["error"] == len(practice.seeded.client_ids) - counts["needs_reauth"]
    client = (await rpc.call(p.CLIENTS_LIST, filter={"status": "error"}, limit=1)).items[0]
    assert "failing since" in client.status_reason
    await sandbox_delete(practice.sandbox.base_url, "/_sandbox/faults")
    await advance_time(practice, 2 * 3600)
    counts = await statuses(rpc)
    assert counts["error"] == 0
    assert counts["connected"] == len(practice.seeded.client_ids) - counts["needs_reauth"]
    history = await rpc.call(p.CLIENTS_HISTORY, client_id=client.id)
    assert [h.status for h in history.items[:2]] == ["connected", "error"]


async def test_one_or_two_bad_days_do_not_mark_error(practice):
    rpc = await practice.connect()
    await sandbox_post(
        practice.sandbox.base_url, "/_sandbox/faults", {"kind": "500", "target": "token"}
    )
    await advance_time(practice, 26 * 60)
    await advance_time(practice, DAY)
    counts = await statuses(rpc)
    assert counts["error"] == 0 and counts["needs_reauth"] == len(
        practice.client_ids_needing_reauth
    )


async def test_timeouts_count_as_an_outage_not_a_verdict(practice):
    practice.daemon.config.network.timeout_seconds = 0.2
    await practice.daemon.providers.build()
    rpc = await practice.connect()
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "delay", "delay_seconds": 1.0, "target": "token", "count": 2},
    )
    await advance_time(practice, 26 * 60)
    grant_client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[-1])
    assert grant_client.status == "connected"
    status = await rpc.call(p.DAEMON_STATUS)
    assert status.clients_by_status["needs_reauth"] == len(practice.client_ids_needing_reauth)


async def test_rate_limited_refresh_waits_as_retry_after_says(practice):
    rpc = await practice.connect()
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "429", "target": "token", "retry_after": 600, "problem": "minute", "count": 2},
    )
    await advance_time(practice, 26 * 60)
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[-1])
    assert client.status == "connected"
    wait = from_iso(client.next_check_at) - practice.clock.now()
    assert timedelta(seconds=590) <= wait <= timedelta(seconds=600)


async def refresh_tokens_issued(running, tenant_id: str) -> int:
    grants = await sandbox_get(running.sandbox.base_url, "/_sandbox/grants")
    grant_ids = {g["grant_id"] for g in grants if tenant_id in g["tenant_ids"]}
    tokens = await sandbox_get(running.sandbox.base_url, "/_sandbox/tokens")
    return sum(1 for t in tokens if t["kind"] == "refresh" and t["grant_id"] in grant_ids)


async def test_two_simultaneous_refresh_triggers_make_one_refresh_call(practice):
    rpc = await practice.connect()
    other = await practice.connect("second")
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[-1])
    practice.clock.advance(26 * 60)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 26 * 60})
    issued = await refresh_tokens_issued(practice, client.tenant_id)
    await asyncio.gather(
        rpc.call(p.CLIENTS_REFRESH, client_id=client.id),
        other.call(p.CLIENTS_REFRESH, client_id=client.id),
    )
    assert await refresh_tokens_issued(practice, client.tenant_id) == issued + 1


async def test_a_business_disconnected_in_xero_needs_reauth_alone(practice):
    rpc = await practice.connect()
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[-1])
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/connections/disconnect",
        {"tenant_id": client.tenant_id},
    )
    await rpc.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)
    after = await rpc.call(p.CLIENTS_GET, client_id=client.id)
    assert after.status == "needs_reauth"
    assert "disconnected" in after.status_reason
    counts = await statuses(rpc)
    assert counts["needs_reauth"] == len(practice.client_ids_needing_reauth) + 1


async def test_refresh_of_a_never_authorised_or_unknown_client_is_a_clear_error(rpc):
    from clientlink.common.client import RpcError

    try:
        await rpc.call(p.CLIENTS_REFRESH, client_id=4242)
    except RpcError as exc:
        assert "4242" in exc.message
    else:
        raise AssertionError("expected an error")


async def test_wait_helper_is_bounded():
    flag = {"set": False}

    async def later():
        await asyncio.sleep(0.01)
        flag["set"] = True

    task = asyncio.ensure_future(later())
    await wait_until(lambda: flag["set"], within=2)
    await task


async def quickbooks_grant_of(practice, rpc, client_id):
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    grants = await sandbox_get(practice.sandbox.base_url, "/_sandbox/grants")
    grant = next(g for g in grants if g["realm_id"] == client.tenant_id)
    return client, grant


async def test_quickbooks_grants_refresh_before_their_hour_is_up(practice):
    rpc = await practice.connect()
    stats = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    before = stats["calls"].get("quickbooks.token.refresh_token", 0)
    await advance_time(practice, 26 * 60)  # Xero's half hour: QuickBooks tokens still good
    stats = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    assert stats["calls"].get("quickbooks.token.refresh_token", 0) == before
    await advance_time(practice, 30 * 60)
    stats = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    assert stats["calls"]["quickbooks.token.refresh_token"] == before + len(
        practice.seeded.quickbooks_ids
    )
    counts = await statuses(rpc)
    assert counts["error"] == 0 and counts["expiring"] == 0


async def test_a_hard_end_inside_the_warning_window_marks_expiring_then_needs_reauth(practice):
    rpc = await practice.connect()
    client_id = practice.seeded.quickbooks_ids[0]
    client, grant = await quickbooks_grant_of(practice, rpc, client_id)
    hard_end = practice.clock.now() + timedelta(days=10)
    await sandbox_post(
        practice.sandbox.base_url,
        f"/_sandbox/grants/{grant['grant_id']}/hard-end",
        {"at": hard_end.isoformat()},
    )
    await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "expiring"
    assert hard_end.strftime("%d %b %Y") in client.status_reason
    assert abs(from_iso(client.hard_expires_at) - hard_end) < timedelta(seconds=2)
    others = [i for i in practice.seeded.quickbooks_ids if i != client_id]
    for other in others:
        assert (await rpc.call(p.CLIENTS_GET, client_id=other)).status == "connected"

    for _ in range(11):  # day by day past the hard end
        await advance_time(practice, DAY)
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "needs_reauth"
    for other in others:
        assert (await rpc.call(p.CLIENTS_GET, client_id=other)).status == "connected"


async def test_a_wake_up_after_suspend_catches_up_what_became_due(practice):
    """Suspend: the wall clock jumps while the loop's timers stood still."""
    rpc = await practice.connect()
    client_id = practice.xero_connected_ids[-1]
    before = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    practice.clock.advance(3 * 3600)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 3 * 3600})
    assert practice.daemon.watcher.check_clock()  # what the heartbeat does every minute
    await wait_until(practice.daemon.watcher.idle, what="the catch-up")
    after = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert after.status == "connected"
    assert from_iso(after.access_expires_at) > from_iso(before.access_expires_at)
    assert not practice.daemon.watcher.check_clock()  # no jump since
