"""Benchmark: a well-behaved client's latency while other local clients flood the socket.

Builds a home with 1,000 clients (the way ``bench/watcher_idle.py`` does), starts a real
``clientlinkd`` on it, and measures one well-behaved client calling ``clients.list``
(a page of 50) one call at a time:
- idle: nobody else connected;
- flooded: ``--flooders`` other connections each keep ``--window`` calls outstanding
  (listings of 200 rows, ``daemon.status`` and malformed frames, mixed), reading their
  answers as they come so the daemon does not drop them as slow readers.
The daemon bounds the work in flight per connection, so a flooder waits for its own calls
and the well-behaved client's calls go in between.

Run: .venv/bin/python bench/rpc_fairness.py [--clients 1000] [--calls 400] [--quick]
Target (issue 8): the well-behaved client's p99 flooded under 2x its idle p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from watcher_idle import PASSPHRASE, populate, wait_ready

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.paths import resolve_paths
from clientlink.common.protocol import MAX_FRAME_BYTES

TARGET_RATIO = 2.0


def frame(request_id: int, method: str, params: dict | None = None) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    return json.dumps(body).encode() + b"\n"


FLOOD = [
    lambda n: frame(n, "clients.list", {"limit": 200, "offset": n % 800}),
    lambda n: frame(n, "daemon.status"),
    lambda n: frame(n, "clients.list", {"filter": {"text": "Client 1"}, "limit": 100}),
    lambda n: b'{"jsonrpc":"2.0","id":' + str(n).encode() + b',"method":"clients.get"}\n',
    lambda n: b"{not json at all\n",
]


async def flooder(socket_path: Path, window: int, stop: asyncio.Event) -> int:
    """Keep ``window`` calls outstanding until ``stop``; returns how many were answered."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=MAX_FRAME_BYTES + 1)
    writer.write(frame(0, "daemon.hello", {"protocol": 1, "client": "flood"}))
    await reader.readline()
    outstanding = asyncio.Semaphore(window)
    answered = 0

    async def read() -> None:
        nonlocal answered
        while line := await reader.readline():
            answered += 1
            outstanding.release()
            del line

    reading = asyncio.create_task(read())
    number = 1
    try:
        while not stop.is_set():
            await outstanding.acquire()
            writer.write(FLOOD[number % len(FLOOD)](number))
            number += 1
            if number % 32 == 0:
                await writer.drain()
    finally:
        writer.close()
        reading.cancel()
    return answered


async def latencies(client: DaemonClient, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        await client.call(p.CLIENTS_LIST, limit=50)
        seconds.append(time.perf_counter() - started)
    return seconds


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def run(socket_path: Path, calls: int, flooders: int, window: int) -> dict[str, float]:
    async with DaemonClient(socket_path, client_name="well-behaved") as client:
        await latencies(client, 50)  # warm up
        idle = await latencies(client, calls)
        stop = asyncio.Event()
        floods = [asyncio.create_task(flooder(socket_path, window, stop)) for _ in range(flooders)]
        await asyncio.sleep(0.5)  # let the flood reach its pace
        started = time.perf_counter()
        flooded = await latencies(client, calls)
        elapsed = time.perf_counter() - started
        stop.set()
        answered = sum(await asyncio.gather(*floods))
    ratio = p99(flooded) / p99(idle)
    print(f"idle:    p50 {statistics.median(idle) * 1000:7.2f} ms   p99 {p99(idle) * 1000:7.2f} ms")
    print(
        f"flooded: p50 {statistics.median(flooded) * 1000:7.2f} ms   "
        f"p99 {p99(flooded) * 1000:7.2f} ms   ({flooders} flooders x {window} outstanding, "
        f"{answered} flood frames answered, {answered / (elapsed + 0.5):.0f}/s)"
    )
    verdict = "PASS" if ratio < TARGET_RATIO else "MISS"
    print(f"p99 flooded / idle: {ratio:5.2f}x   (target < {TARGET_RATIO:.0f}x) {verdict}")
    return {"idle_p99_s": p99(idle), "flooded_p99_s": p99(flooded)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--flooders", type=int, default=3)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="fewer clients and calls")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.calls = 200, 100
    env = dict(os.environ, CLIENTLINK_VAULT_PASSPHRASE=PASSPHRASE)
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="cl-bench-") as folder:
        home = Path(folder)
        asyncio.run(populate(home, args.clients))
        log_path = home / "clientlinkd.log"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "clientlink.daemon.main", "--home", str(home)],
            stderr=log_path.open("w"),
            env=env,
        )
        socket_path = resolve_paths(home).socket
        try:
            asyncio.run(wait_ready(socket_path, daemon))
            print(f"{args.clients} clients; {args.calls} calls of clients.list (50 rows) each")
            figures = asyncio.run(run(socket_path, args.calls, args.flooders, args.window))
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
        if "Traceback" in log_path.read_text():
            raise SystemExit("clientlinkd logged a traceback during the benchmark")
    if args.json:
        Path(args.json).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
