"""Benchmark: the daemon watching 10,000 connections while it waits.

Builds a home with 10,000 grants (one client each) whose access tokens end at moments
spread over a day, starts a real ``clientlinkd`` on it, and measures:
- the time to rebuild the schedule at start (the daemon logs it),
- CPU (share of one core) and resident memory over a quiet period,
against a bare baseline measured in the same run: a Python process that only runs an
asyncio loop, and plain sqlite3 reading the same rows.

Run: .venv/bin/python bench/watcher_idle.py [--grants 10000] [--seconds 20]
Targets (issue 3): under 1% of a core and under 80 MB RSS while waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.config import load_config
from clientlink.common.paths import resolve_paths
from clientlink.common.protocol import ConnectionStatus
from clientlink.daemon.providers import TokenSet
from clientlink.daemon.store import Store, TenantRow
from clientlink.daemon.vault import Vault

PASSPHRASE = "benchmark passphrase"
CONFIG = """
[vault]
backend = "passphrase"

[providers.xero]
kind = "xero"
client_id = "bench"
authorize_url = "http://127.0.0.1:9/xero/identity/connect/authorize"
token_url = "http://127.0.0.1:9/xero/identity/connect/token"
connections_url = "http://127.0.0.1:9/xero/connections"
api_base = "http://127.0.0.1:9/xero/api.xro/2.0"
"""


async def populate(home: Path, grants: int) -> None:
    """Write ``grants`` grants and clients the way the daemon stores them."""
    paths = resolve_paths(home)
    paths.ensure()
    paths.config_file.write_text(CONFIG, encoding="utf-8")
    config = load_config(paths.config_file)
    store = await Store.open(paths.database)
    vault = await Vault.open(config.vault, store)
    now = datetime.now(UTC)
    rng = random.Random(7)
    async with store.transaction():
        for number in range(grants):
            # The earliest refresh moment stays past the measuring window.
            access_end = now + timedelta(minutes=15) + timedelta(seconds=rng.uniform(0, 86400))
            uid = secrets.token_hex(16)
            tokens = TokenSet(
                access_token=secrets.token_urlsafe(32),
                refresh_token=secrets.token_urlsafe(32),
                access_expires_at=access_end,
                refresh_expires_at=now + timedelta(days=60),
            )
            tenant = TenantRow(tenant_id=f"tenant-{number}", tenant_name=f"Client {number}")
            grant_id = await store.insert_grant(
                uid=uid,
                provider="xero",
                auth_event_id=None,
                token_ciphertext=vault.encrypt(tokens.secret_json(), f"grant-tokens:{uid}"),
                access_expires_at=tokens.access_expires_at,
                refresh_expires_at=tokens.refresh_expires_at,
                hard_expires_at=None,
                authorised_by="bench",
                now=now,
                tenants=[tenant],
            )
            await store.create_client(
                provider="xero",
                tenant_id=tenant.tenant_id,
                name=tenant.tenant_name,
                legal_name=None,
                abn=None,
                grant_id=grant_id,
                status=ConnectionStatus.CONNECTED,
                now=now,
            )
    await store.close()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pid: int, seconds: float) -> tuple[float, float]:
    """(share of one core, peak RSS in MB) over ``seconds``."""
    start_cpu, start = proc_cpu_seconds(pid), time.monotonic()
    peak = 0.0
    while time.monotonic() - start < seconds:
        peak = max(peak, proc_rss_mb(pid))
        time.sleep(0.5)
    cpu = (proc_cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)
    return cpu, peak


async def wait_ready(socket_path: Path, process: subprocess.Popen[bytes]) -> None:
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit("clientlinkd exited during start (see its log)")
        try:
            async with DaemonClient(socket_path) as client:
                await client.call(p.DAEMON_STATUS)
                return
        except Exception:
            await asyncio.sleep(0.05)
    raise SystemExit("clientlinkd did not become ready")


def bare_read_seconds(database: Path) -> float:
    """The floor for a rebuild: plain sqlite3 reading the same columns of the same rows."""
    code = f"""
import sqlite3, time
t = time.perf_counter()
db = sqlite3.connect({str(database)!r})
rows = db.execute("SELECT id, access_expires_at, refresh_expires_at, hard_expires_at, "
                  "next_check_at FROM grants WHERE state = 'active'").fetchall()
print(time.perf_counter() - t)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def bare_start_seconds(database: Path) -> float:
    """The floor for start to ready: a new Python process that reads the same rows and exits."""
    query = (
        "SELECT id, access_expires_at, refresh_expires_at, hard_expires_at, next_check_at "
        "FROM grants WHERE state = 'active'"
    )
    code = f"import sqlite3; sqlite3.connect({str(database)!r}).execute({query!r}).fetchall()"
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="200 grants, 3 s: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.grants, args.seconds = 200, 3.0
    env = dict(os.environ, CLIENTLINK_VAULT_PASSPHRASE=PASSPHRASE)
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="cl-bench-") as folder:
        home = Path(folder)
        started = time.perf_counter()
        asyncio.run(populate(home, args.grants))
        print(f"populated {args.grants} grants in {time.perf_counter() - started:.1f} s")

        log_path = home / "clientlinkd.log"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "clientlink.daemon.main", "--home", str(home)],
            stderr=log_path.open("w"),
            env=env,
        )
        baseline = subprocess.Popen(
            [sys.executable, "-c", "import asyncio; asyncio.run(asyncio.sleep(3600))"]
        )
        try:
            begun = time.perf_counter()
            asyncio.run(wait_ready(resolve_paths(home).socket, daemon))
            ready = time.perf_counter() - begun
            daemon_cpu, daemon_rss = measure(daemon.pid, args.seconds)
            base_cpu, base_rss = measure(baseline.pid, min(args.seconds, 5.0))
        finally:
            daemon.terminate()
            baseline.terminate()
            daemon.wait(timeout=30)
            baseline.wait()
        log = log_path.read_text()
        rebuilt = re.search(r"scheduled (\d+) grants in ([0-9.]+) s", log)
        rebuild_seconds = float(rebuilt.group(2)) if rebuilt else float("nan")
        bare = bare_read_seconds(resolve_paths(home).database)
        bare_start = bare_start_seconds(resolve_paths(home).database)

    print(
        f"start to ready:          {ready:6.2f} s   bare python + sqlite3 read {bare_start:5.2f} s"
    )
    print(
        f"schedule rebuild:        {rebuild_seconds:6.2f} s   bare sqlite3 read "
        f"{bare:5.2f} s   ratio {rebuild_seconds / bare:5.2f}x"
    )
    print(
        f"CPU while waiting:       {daemon_cpu * 100:6.2f} % of a core   bare loop "
        f"{base_cpu * 100:5.2f} %   (target < 1 %)"
    )
    print(
        f"RSS while waiting:       {daemon_rss:6.1f} MB   bare loop {base_rss:5.1f} MB   "
        f"ratio {daemon_rss / base_rss:5.2f}x   (target < 80 MB)"
    )
    if args.json:
        figures = {
            "grants": args.grants,
            "ready_s": ready,
            "bare_start_s": bare_start,
            "rebuild_s": rebuild_seconds,
            "bare_read_s": bare,
            "cpu_share": daemon_cpu,
            "bare_cpu_share": base_cpu,
            "rss_mb": daemon_rss,
            "bare_rss_mb": base_rss,
        }
        Path(args.json).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
