"""Small helpers shared by tests: waiting for events, reading the sandbox's admin API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
import keyring.backend

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient, DaemonUnavailable
from clientlink.daemon.clock import Clock

T = TypeVar("T")


async def next_event(
    client: DaemonClient, topic: str, *, within: float = 10.0, **match: Any
) -> dict[str, Any]:
    """The next event on ``client`` with ``topic`` whose fields equal ``match``."""

    async def wait() -> dict[str, Any]:
        async for event in client.events():
            if event["topic"] == topic and all(event.get(k) == v for k, v in match.items()):
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(wait(), within)


async def sandbox_get(base_url: str, path: str) -> Any:
    """GET one of the sandbox's admin endpoints as JSON."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


async def sandbox_post(base_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST to one of the sandbox's admin endpoints."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(path, json=body or {})
        response.raise_for_status()
        return response.json()


async def sandbox_delete(base_url: str, path: str) -> None:
    """DELETE on one of the sandbox's admin endpoints."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.delete(path)
        response.raise_for_status()


async def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def port_closes(port: int, within: float = 5.0) -> bool:
    """Whether ``port`` stops accepting connections within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if not await port_is_open(port):
            return True
        await asyncio.sleep(0.02)
    return False


async def wait_until(predicate, within: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` (sync or async) until true; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def finished(rpc: DaemonClient, job_id: int, within: float = 60) -> p.Job:
    """The job once it has finished (completed, failed or cancelled), with its items."""

    async def done() -> bool:
        return (await rpc.call(p.JOBS_GET, job_id=job_id)).state.finished

    await wait_until(done, within=within, what=f"job {job_id} to finish")
    return await rpc.call(p.JOBS_GET, job_id=job_id, items=True)


async def advance_time(running: Any, seconds: float) -> None:
    """Move the sandbox's and the daemon's clocks together, then let due work run."""
    await sandbox_post(running.sandbox.base_url, "/_sandbox/clock", {"advance_seconds": seconds})
    running.clock.advance(seconds)
    watcher = running.daemon.watcher
    await watcher.reschedule_all()
    await asyncio.sleep(0)
    await wait_until(watcher.idle, what="the watcher to finish what was due")


async def on_the_clock(
    clock: Clock, work: Awaitable[T], *, step: float = 5.0, every: float = 0.02
) -> T:
    """Await ``work`` while moving the daemon's ``clock`` on by ``step`` seconds at a time:
    waits the daemon makes on its clock (retry backoffs, rate-limit waits) pass without
    waiting for them in real time. For short waits only: the sandbox's clock stays put."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=every)
        if not task.done():
            clock.advance(step)
    return task.result()


class DaemonProcess:
    """clientlinkd as a real child process on a test home."""

    def __init__(self, home) -> None:
        self.home = home
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> DaemonClient:
        log = (self.home.state_dir / "clientlinkd.log").open("a")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clientlink.daemon.main",
            "--home",
            str(self.home.config_dir.parent),
            stderr=log,
            env=dict(os.environ),
        )
        client = DaemonClient(self.home.socket, client_name="crash-test")

        async def answers() -> bool:
            try:
                await client.connect()
            except (DaemonUnavailable, OSError):
                return False
            return True

        await wait_until(answers, within=20, what="clientlinkd to answer")
        return client

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend that keeps entries in this process (a stand-in Secret Service)."""

    priority = 1

    def __init__(self, block: threading.Event | None = None) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.block = block

    def get_password(self, service, username):
        if self.block is not None:
            self.block.wait(30)  # a locked keyring waiting for a prompt nobody sees
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self.entries.pop((service, username), None)


async def clientlink_cli(*args: str) -> tuple[int, bytes, bytes]:
    """Run the ``clientlink`` command line as a person would; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, stdout, stderr
