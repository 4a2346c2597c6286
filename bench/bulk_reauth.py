"""Benchmark: bulk re-authorisation of N clients through the real path, against a bare loop.

Starts the sandbox (``clientlink sandbox --orgs N``) and a real ``clientlinkd`` as child
processes, on a temporary home configured the way ``clientlink demo`` writes it. The demo
user signs in through the sandbox's pages (``sandbox.approve``) ticking the businesses and
``clients.import`` creates the N clients. Then the bulk re-authorisation: one sign-in
ticking the businesses, ``jobs.start {kind: "reauthorise"}``, timed from ``jobs.start`` to
its ``job.finished`` event.

The sandbox's sign-in form takes at most 999 ticks (Starlette parses at most 1,000 form
fields and one is the transaction id), so N > 999 clients take ceil(N / 999) sign-ins of
equal share; their jobs run one after the other and their times add up.

The bare baseline, measured in the same run against the same sandbox: a plain ``asyncio``
+ ``httpx.AsyncClient`` loop with its own token (its own PKCE code exchange for the same
user and app: a Xero token reaches every organisation its user connected) making the same
calls, one ``GET …/api.xro/2.0/Organisation`` with ``xero-tenant-id`` per client, at the job
engine's concurrency (``ReauthoriseJob.concurrency``), in the same chunks. It runs before
and after clientlink; the ratio is against their mean.

Why the sandbox is a child process and not in this process's loop: the daemon is a process
of its own, so an in-process sandbox would share one core and one GIL with the baseline
loop but not with the daemon, flattering clientlink. As a process it serves both the same
way, and its CPU time is measured on its own (a slow sandbox would hide the difference).

Default mode: the sandbox's rate limits are OFF (the bare loop does not pace itself).
``--limits``: the sandbox enforces Xero's limits (per tenant 5 concurrent, 60/min,
5,000/day; 10,000/min per app); reports the 429s it served (must be 0), the time, and the
bound the limits set. Setup calls would count against the same minute, so before the job
the daemon restarts (its limiter is in memory) and the sandbox's clock moves on a minute.

Run: /tmp/clvenv/bin/python bench/bulk_reauth.py [--clients 1000] [--limits] [--quick]
     [--profile]   (py-spy samples the daemon during the job; needs py-spy installed)
Targets (issue): clientlink ≤ 1.15x the bare loop; with limits, 0 429s and within 10 %
of max(bound, bare loop).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from clientlink.cli.demo import PASSPHRASE_ENV, demo_config_text
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.paths import Paths, resolve_paths
from clientlink.daemon.job_kinds import ReauthoriseJob
from clientlink.daemon.limits import XERO_LIMITS
from clientlink.sandbox.accounts import PUBLIC_CLIENT_ID
from clientlink.sandbox.approve import approve

CONSENT_TICKS = 999
"""Most businesses one sign-in can tick: Starlette reads at most 1,000 form fields."""

RATIO_TARGET = 1.15
LIMITS_TARGET = 1.10
APP_MINUTE = XERO_LIMITS.app.per_minute or 10_000
TENANT_MINUTE = XERO_LIMITS.tenant.per_minute or 60
CONCURRENCY = ReauthoriseJob.concurrency


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chunks(items: list[str], size: int) -> list[list[str]]:
    """``items`` in ceil(len / size) slices of (nearly) equal length."""
    count = max(1, math.ceil(len(items) / size))
    step = math.ceil(len(items) / count)
    return [items[start : start + step] for start in range(0, len(items), step)]


# --------------------------------------------------------------------------- processes


@dataclass
class World:
    """The sandbox and the daemon as child processes on one temporary home."""

    folder: Path
    orgs: int
    env: dict[str, str] = field(default_factory=dict)
    sandbox: subprocess.Popen[str] | None = None
    daemon: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def paths(self) -> Paths:
        return resolve_paths(self.folder / "home")

    def start_sandbox(self) -> None:
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "clientlink.sandbox", "--port", "0", "--orgs", str(self.orgs)],
            stdout=subprocess.PIPE,
            stderr=(self.folder / "sandbox.log").open("w"),
            text=True,
            env=self.env,
        )
        assert self.sandbox.stdout is not None
        for line in self.sandbox.stdout:
            if line.startswith("Sandbox listening on"):
                self.url = line.split()[-1].rstrip("/")
                break
        if not self.url:
            raise SystemExit(f"the sandbox did not start; see {self.folder / 'sandbox.log'}")
        threading.Thread(target=self.sandbox.stdout.read, daemon=True).start()

    def write_home(self) -> None:
        self.paths.ensure()
        self.paths.config_file.write_text(demo_config_text(self.url), encoding="utf-8")

    def spawn_daemon(self) -> subprocess.Popen[bytes]:
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "clientlink.daemon.main", "--home", str(self.folder / "home")],
            stderr=(self.folder / "clientlinkd.log").open("a"),
            env=self.env,
        )
        return self.daemon

    async def start_daemon(self) -> DaemonClient:
        """A new daemon, and a connection once it answers."""
        self.daemon = await asyncio.to_thread(self.spawn_daemon)
        for _ in range(600):
            if self.daemon.poll() is not None:
                raise SystemExit(f"clientlinkd exited; see {self.folder / 'clientlinkd.log'}")
            with contextlib.suppress(Exception):
                client = DaemonClient(self.paths.socket, client_name="bench")
                await client.connect()
                return client
            await asyncio.sleep(0.05)
        raise SystemExit("clientlinkd did not answer within 30 s")

    def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(timeout=60)
        self.daemon = None

    def stop(self) -> None:
        self.stop_daemon()
        if self.sandbox is not None and self.sandbox.poll() is None:
            self.sandbox.terminate()
            self.sandbox.wait(timeout=30)


async def admin(world: World, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=world.url, timeout=60) as http:
        response = await http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()


# --------------------------------------------------------------------------- clientlink


async def sign_in(rpc: DaemonClient, tenants: list[str]) -> p.AuthCompleteResult:
    """One sign-in through the sandbox's pages ticking ``tenants``; auth.complete's result."""
    session = await rpc.call(p.AUTH_BEGIN, provider="xero")
    redirect = await approve(session.authorize_url, orgs=tenants)
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def import_clients(rpc: DaemonClient, shares: list[list[str]]) -> None:
    for tenants in shares:
        grant = await sign_in(rpc, tenants)
        await rpc.call(p.CLIENTS_IMPORT, grant_id=grant.grant_id)


async def bulk_sign_ins(rpc: DaemonClient, shares: list[list[str]]) -> list[tuple[int, list[int]]]:
    """One sign-in per share; (grant id, client ids matched) for each."""
    grants = []
    for tenants in shares:
        result = await sign_in(rpc, tenants)
        client_ids = [t.client_id for t in result.tenants if t.client_id]
        if len(client_ids) != len(tenants):
            raise SystemExit(f"only {len(client_ids)} of {len(tenants)} tenants matched clients")
        grants.append((result.grant_id, client_ids))
    return grants


async def run_jobs(
    rpc: DaemonClient, grants: list[tuple[int, list[int]]]
) -> tuple[float, list[dict[str, Any]]]:
    """Each grant's re-authorisation job in turn; (summed seconds, job.finished events)."""
    await rpc.subscribe(["job.finished"])
    total = 0.0
    finished = []
    events = rpc.events()
    for grant_id, client_ids in grants:
        started = time.perf_counter()
        job = await rpc.call(
            p.JOBS_START, kind=p.JobKind.REAUTHORISE, grant_id=grant_id, client_ids=client_ids
        )
        async for event in events:
            if event["topic"] == "job.finished" and event["job_id"] == job.job_id:
                break
        total += time.perf_counter() - started
        finished.append(event)
    return total, finished


# --------------------------------------------------------------------------- baseline


async def own_access_token(world: World, tenants: list[str]) -> str:
    """A token of our own for the demo user and app: authorize with PKCE, exchange the code."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = "http://127.0.0.1:9/callback"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": "offline_access openid profile email accounting.settings.read",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )
    redirect = await approve(f"{world.url}/xero/identity/connect/authorize?{query}", orgs=tenants)
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            f"{world.url}/xero/identity/connect/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": PUBLIC_CLIENT_ID,
                "code_verifier": verifier,
            },
        )
        response.raise_for_status()
        return response.json()["access_token"]


async def bare_loop(world: World, token: str, shares: list[list[str]]) -> tuple[float, float]:
    """The same calls at the same concurrency, in the same chunks; (seconds, CPU seconds)."""
    url = f"{world.url}/xero/api.xro/2.0/Organisation"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with httpx.AsyncClient(timeout=60) as http:

        async def worker(queue: list[str]) -> None:
            while queue:
                tenant = queue.pop()
                response = await http.get(url, headers={**headers, "xero-tenant-id": tenant})
                response.raise_for_status()
                response.json()["Organisations"][0]["Name"]

        cpu, started = time.process_time(), time.perf_counter()
        for tenants in shares:
            queue = list(reversed(tenants))
            await asyncio.gather(*(worker(queue) for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, time.process_time() - cpu


# --------------------------------------------------------------------------- profile


def start_profiler(pid: int, folder: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy not found: pip install py-spy (profile skipped)")
        return None
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--threads",
            "--output",
            str(folder / "daemon.folded"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "py-spy.log").open("w"),
    )


def summarise_profile(folded: Path, top: int = 20) -> None:
    """Where the daemon spent its samples: per thread, own time by line, and inclusive time
    by function (line numbers dropped) for clientlink's own frames."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread")), "?")
        code = [f for f in frames if not f.startswith(("thread", "process"))]
        if not code:
            continue
        threads[thread] = threads.get(thread, 0) + count
        own[code[-1]] = own.get(code[-1], 0) + count
        for function in {f.rsplit(":", 1)[0] + ")" for f in code}:
            inclusive[function] = inclusive.get(function, 0) + count
    print(f"\ndaemon profile: {total} samples (200/s) while the jobs ran")
    for thread, count in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"  {count / total * 100:5.1f} %  {thread}")
    print("top own time (line)")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {count / total * 100:5.1f} %  {frame}")
    print("top inclusive time (function, clientlink's code)")
    ours = [(f, c) for f, c in inclusive.items() if "(daemon/" in f or "(common/" in f]
    for frame, count in sorted(ours, key=lambda kv: -kv[1])[:top]:
        print(f"  {count / total * 100:5.1f} %  {frame}")


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    world = World(folder, args.clients, env=dict(os.environ))
    world.env[PASSPHRASE_ENV] = secrets.token_urlsafe(24)
    world.start_sandbox()
    try:
        return await measure(world, args)
    finally:
        world.stop()


async def measure(world: World, args: argparse.Namespace) -> dict[str, Any]:
    n = args.clients
    world.write_home()
    await admin(world, "POST", "/_sandbox/limits", {"enforce": False})
    orgs = await admin(world, "GET", "/_sandbox/orgs")
    tenants = [org["tenant_id"] for org in orgs[:n]]
    shares = chunks(tenants, CONSENT_TICKS)

    setup = time.perf_counter()
    rpc = await world.start_daemon()
    await import_clients(rpc, shares)
    grants = await bulk_sign_ins(rpc, shares)
    await rpc.close()
    # A fresh daemon: its limiter forgets the setup's calls, as it would a day later.
    world.stop_daemon()
    token = await own_access_token(world, shares[0][:1])
    print(
        f"setup: {n} clients imported and {len(shares)} bulk sign-in(s) of "
        f"{len(shares[0])} in {time.perf_counter() - setup:.1f} s"
    )

    sandbox_pid = world.sandbox.pid  # type: ignore[union-attr]
    sandbox_cpu = proc_cpu_seconds(sandbox_pid)
    bare_first, bare_cpu_first = await bare_loop(world, token, shares)
    bare_sandbox_cpu = proc_cpu_seconds(sandbox_pid) - sandbox_cpu

    if args.limits:
        # The calls so far fell in this minute of the sandbox's fixed windows: move on one.
        await admin(world, "POST", "/_sandbox/clock", {"advance_seconds": 61})
        await admin(world, "POST", "/_sandbox/limits", {"enforce": True})
    else:
        # The sandbox sends its rate-limit headers with limits off too, and the daemon paces
        # itself by them: the bare loop just used most of this minute, so move on one.
        await admin(world, "POST", "/_sandbox/clock", {"advance_seconds": 61})
    stats_before = await admin(world, "GET", "/_sandbox/stats")
    rpc = await world.start_daemon()
    daemon_pid = world.daemon.pid  # type: ignore[union-attr]
    profiler = start_profiler(daemon_pid, world.folder) if args.profile else None
    daemon_cpu, sandbox_cpu = proc_cpu_seconds(daemon_pid), proc_cpu_seconds(sandbox_pid)
    job_seconds, finished = await run_jobs(rpc, grants)
    daemon_cpu = proc_cpu_seconds(daemon_pid) - daemon_cpu
    job_sandbox_cpu = proc_cpu_seconds(sandbox_pid) - sandbox_cpu
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        profiler.wait(timeout=60)
    stats_after = await admin(world, "GET", "/_sandbox/stats")
    await rpc.close()

    if args.limits:
        await admin(world, "POST", "/_sandbox/limits", {"enforce": False})
    bare_second, bare_cpu_second = await bare_loop(world, token, shares)
    bare = (bare_first + bare_second) / 2
    bare_cpu = (bare_cpu_first + bare_cpu_second) / 2

    done = sum(event["done"] for event in finished)
    failed = sum(event["failed"] for event in finished)
    served_429 = stats_after["rate_limited"] - stats_before["rate_limited"]
    calls = stats_after["calls"]["organisation"] - stats_before["calls"]["organisation"]
    mode = "limits ENFORCED" if args.limits else "limits off"
    print(f"\nbulk re-authorisation of {n} clients ({mode}, concurrency {CONCURRENCY})")
    print(f"  jobs: {len(finished)}, items done {done}, failed {failed}, API calls {calls}")
    print(
        f"  clientlink jobs.start -> job.finished: {job_seconds:7.2f} s   "
        f"{n / job_seconds:7.0f} clients/s"
    )
    print(
        f"  bare asyncio+httpx loop:               {bare:7.2f} s   {n / bare:7.0f} clients/s"
        f"   (runs {bare_first:.2f} s, {bare_second:.2f} s)"
    )
    print(
        f"  CPU per call: clientlinkd {daemon_cpu / n * 1000:6.2f} ms   bare loop "
        f"{bare_cpu / n * 1000:6.2f} ms   ratio {daemon_cpu / bare_cpu:5.2f}x"
    )
    print(
        f"  sandbox CPU per call: during the jobs {job_sandbox_cpu / n * 1000:6.2f} ms   "
        f"during the bare loop {bare_sandbox_cpu / n * 1000:6.2f} ms"
    )
    if failed or done != n:
        print(f"  MISS: {failed} items failed, {n - done} not done (see the daemon's log)")
    if args.limits:
        # Each tenant makes one call; within one minute the app may make 10,000.
        rate_bound = n / APP_MINUTE * 60
        burst_bound = math.floor((n - 1) / APP_MINUTE) * 60.0
        bound = max(rate_bound, bare)
        verdict = "PASS" if served_429 == 0 else "MISS"
        print(f"  429s served by the sandbox: {served_429}   (target 0)  {verdict}")
        print(
            f"  bound from the limits: N / {APP_MINUTE}/min = {rate_bound:.2f} s at a steady "
            f"rate (a burst may go faster: {burst_bound:.0f} s with an empty window); "
            f"per tenant 1 call each, under {TENANT_MINUTE}/min"
        )
        if rate_bound < bare:
            print("  the bound is below the bare loop's time: compared with the bare loop")
        limit = bound * LIMITS_TARGET
        verdict = "PASS" if job_seconds <= limit else "MISS"
        print(
            f"  time {job_seconds:.2f} s vs max(bound, bare) {bound:.2f} s: ratio "
            f"{job_seconds / bound:5.2f}x   (target <= {LIMITS_TARGET:.2f}x)  {verdict}"
        )
    else:
        ratio = job_seconds / bare
        verdict = "PASS" if ratio <= RATIO_TARGET else "MISS"
        print(f"  ratio clientlink / bare: {ratio:5.2f}x   (target <= {RATIO_TARGET}x)  {verdict}")
    if args.profile and (world.folder / "daemon.folded").exists():
        summarise_profile(world.folder / "daemon.folded")
    figures: dict[str, Any] = {
        "clients": n,
        "limits": bool(args.limits),
        "clientlink_s": job_seconds,
        "bare_s": bare,
        "bare_runs_s": [bare_first, bare_second],
        "done": done,
        "failed": failed,
        "served_429": served_429,
    }
    if args.limits:
        figures["bound_s"] = max(n / APP_MINUTE * 60, bare)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--limits", action="store_true", help="the sandbox enforces Xero's limits")
    parser.add_argument("--quick", action="store_true", help="50 clients: a smoke run")
    parser.add_argument("--profile", action="store_true", help="py-spy the daemon during the job")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.clients = 50
    # Unix socket paths must stay short: a folder directly under /tmp.
    folder = Path(tempfile.mkdtemp(prefix="cl-bench-", dir="/tmp"))
    try:
        figures = asyncio.run(run(args, folder))
        if args.json:
            Path(args.json).write_text(json.dumps(figures), encoding="utf-8")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
