"""A daemon killed mid-refresh loses nothing: the provider's grace period covers it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

from clientlink.cli.demo import PASSPHRASE_ENV, seed_practice
from clientlink.common import protocol as p
from clientlink.common.client import DaemonUnavailable
from tests.helpers import DaemonProcess, sandbox_delete, sandbox_get, sandbox_post, wait_until


@pytest.fixture
async def daemon_process(home):
    process = DaemonProcess(home)
    yield process
    with contextlib.suppress(ProcessLookupError):
        await process.stop()


async def refresh_held_after_rotation(daemon_process, sandbox, hold_seconds: float):
    """Seed a practice, then start a forced refresh that the sandbox answers only after
    ``hold_seconds`` — having already rotated the refresh token. Returns once it rotated:
    (seeded practice, the client refreshed, the pending call)."""
    rpc = await daemon_process.start()
    seeded = await seed_practice(rpc, sandbox.base_url)
    quickbooks = set(seeded.quickbooks_ids)
    client_id = next(
        c for c in seeded.client_ids if c not in quickbooks and c not in seeded.needs_reauth_ids
    )
    stats = await sandbox_get(sandbox.base_url, "/_sandbox/stats")
    refreshes = stats["calls"].get("token.refresh_token", 0)
    await sandbox_post(
        sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "hang_after", "delay_seconds": hold_seconds, "target": "token", "count": 1},
    )
    pending = asyncio.ensure_future(rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True))

    async def rotated() -> bool:
        stats = await sandbox_get(sandbox.base_url, "/_sandbox/stats")
        return stats["calls"].get("token.refresh_token", 0) > refreshes

    await wait_until(rotated, what="the sandbox to rotate the refresh token")
    return seeded, client_id, pending


async def test_killed_after_the_provider_rotated_a_token_needs_no_reauthorisation(
    home, sandbox, daemon_process, monkeypatch
):
    assert os.environ[PASSPHRASE_ENV]
    seeded, client_id, pending = await refresh_held_after_rotation(daemon_process, sandbox, 30)
    daemon_process.kill()  # the new token never reached the database
    with pytest.raises(DaemonUnavailable):
        await pending
    await daemon_process.process.wait()
    await sandbox_delete(sandbox.base_url, "/_sandbox/faults")

    rpc = await daemon_process.start()
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "connected"
    # The refresh after the restart used the old token inside Xero's 30-minute grace and
    # committed the new pair: past the grace, the grant still works.
    await sandbox_post(sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 31 * 60})
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "connected"
    counts = (await rpc.call(p.CLIENTS_LIST, limit=1)).counts
    assert counts["needs_reauth"] == len(seeded.needs_reauth_ids)
    await rpc.close()


async def test_sigterm_waits_for_an_in_flight_refresh_and_commits_it(home, sandbox, daemon_process):
    _, client_id, pending = await refresh_held_after_rotation(daemon_process, sandbox, 2)
    daemon_process.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(daemon_process.process.wait(), 30) == 0
    with contextlib.suppress(DaemonUnavailable):
        await pending

    # Past the grace period only the rotated token works: it must have been committed.
    await sandbox_post(sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 31 * 60})
    rpc = await daemon_process.start()
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "connected"
    await rpc.close()
