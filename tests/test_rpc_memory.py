"""Slow and hostile clients cannot grow a real ``clientlinkd``'s memory without bound.

The daemon runs as a child process on a seeded practice, so its resident set size is its
own. Clients here write thousands of ``clients.list`` calls and never read an answer: the
daemon must keep at most a few MiB queued for each, drop them, and free what they held,
including when they hang up after they stopped reading.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clientlink.cli.demo import seed_practice
from tests.helpers import DaemonProcess

CALLS = 3000
GROWTH_LIMIT_MB = 50
SETTLED_LIMIT_MB = 25


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def settled_rss(pid: int, within: float = 30.0) -> tuple[float, float]:
    """Sample the RSS until it holds still; returns (the peak seen, the settled figure)."""
    samples = [rss_mb(pid)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        await asyncio.sleep(0.25)
        samples.append(rss_mb(pid))
        recent = samples[-6:]
        if len(recent) == 6 and max(recent) - min(recent) < 1.0:
            break
    return max(samples), samples[-1]


def frame(request_id: int, method: str, params: dict | None = None) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    return json.dumps(body).encode() + b"\n"


HELLO = frame(0, "daemon.hello", {"protocol": 1, "client": "never-reads"})


async def never_reads(socket_path: Path, *, subscribe: bool) -> asyncio.StreamWriter:
    """A connection that sends CALLS listings of every client and reads nothing."""
    _, writer = await asyncio.open_unix_connection(str(socket_path))
    payload = HELLO + (frame(1, "events.subscribe") if subscribe else b"")
    payload += b"".join(frame(n, "clients.list", {"limit": 1000}) for n in range(2, CALLS + 2))
    writer.write(payload)  # buffered here; the daemon reads it as fast as it likes
    return writer


@pytest.fixture
async def daemon_process(home, sandbox):
    process = DaemonProcess(home)
    client = await process.start()
    await seed_practice(client, sandbox.base_url)
    try:
        yield process, client
    finally:
        await client.close()
        await process.stop()


async def warm_up(client) -> float:
    for _ in range(20):
        await client.call_raw("clients.list", {"limit": 1000})
    return rss_mb(client_pid(client))


def client_pid(client) -> int:
    return client.hello["pid"]


@pytest.mark.timeout(240)
async def test_subscribers_that_never_read_stay_bounded(daemon_process):
    process, client = daemon_process
    pid = client_pid(client)
    await warm_up(client)
    _, start = await settled_rss(pid)
    stalled = [await never_reads(process.home.socket, subscribe=True) for _ in range(3)]
    peak, _ = await settled_rss(pid)
    assert (await client.call_raw("clients.list", {"limit": 1000}))["total"]
    for writer in stalled:
        writer.transport.abort()
    peak_after, end = await settled_rss(pid)
    print(f"\nnever-reading subscribers: RSS {start:.0f} -> peak {peak:.0f} -> {end:.0f} MB")
    assert max(peak, peak_after) - start < GROWTH_LIMIT_MB
    assert end - start < SETTLED_LIMIT_MB


@pytest.mark.timeout(240)
async def test_clients_that_stop_reading_then_hang_up_leave_nothing_behind(daemon_process):
    process, client = daemon_process
    pid = client_pid(client)
    await warm_up(client)
    _, start = await settled_rss(pid)
    peak = start
    for _ in range(3):
        stalled = [await never_reads(process.home.socket, subscribe=False) for _ in range(5)]
        round_peak, _ = await settled_rss(pid)
        for writer in stalled:
            writer.transport.abort()  # hang up without ever reading
        after_peak, _ = await settled_rss(pid)
        peak = max(peak, round_peak, after_peak)
        assert (await client.call_raw("clients.list", {"limit": 1000}))["total"]
    _, end = await settled_rss(pid)
    print(f"\nhang-ups after not reading: RSS {start:.0f} -> peak {peak:.0f} -> {end:.0f} MB")
    assert peak - start < GROWTH_LIMIT_MB
    assert end - start < SETTLED_LIMIT_MB
