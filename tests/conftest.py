"""Shared fixtures: a real sandbox on loopback, a real daemon on a real socket and SQLite.

Everything runs inside the test's event loop; nothing is mocked. Time is moved with the
daemon's :class:`Clock` and the sandbox's admin API, never waited for.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import keyring
import pytest

from clientlink.cli.demo import PASSPHRASE_ENV, SeededPractice, demo_config_text, seed_practice
from clientlink.common.client import DaemonClient
from clientlink.common.config import load_config
from clientlink.common.paths import Paths, resolve_paths
from clientlink.daemon import vault as vault_module
from clientlink.daemon.clock import Clock
from clientlink.daemon.service import Daemon
from clientlink.sandbox.approve import approve as sandbox_approve
from clientlink.sandbox.server import SandboxServer
from tests.helpers import MemoryKeyring

pytest_plugins = ["tests.dbus_session"]

TEST_ORGS = 40


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder: Unix socket paths must stay under 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="cl-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The emulated providers, served over real HTTP on 127.0.0.1."""
    async with SandboxServer(org_count=TEST_ORGS) as server:
        yield server


@pytest.fixture
def home(short_tmp: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A clientlink home whose Xero is the sandbox, with the passphrase vault."""
    monkeypatch.setenv(PASSPHRASE_ENV, "test passphrase, not a secret")
    paths = resolve_paths(short_tmp / "home")
    paths.ensure()
    paths.config_file.write_text(
        demo_config_text(sandbox.base_url, smtp_port=sandbox.smtp_port), encoding="utf-8"
    )
    return paths


@dataclass
class RunningDaemon:
    """A daemon serving in this test's event loop."""

    daemon: Daemon
    paths: Paths
    clock: Clock
    sandbox: SandboxServer
    clients: list[DaemonClient] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return self.paths.socket

    async def connect(self, name: str = "test") -> DaemonClient:
        """A new client connection (closed by the fixture)."""
        client = DaemonClient(self.paths.socket, client_name=name)
        await client.connect()
        self.clients.append(client)
        return client

    async def approve(self, authorize_url: str, orgs: list[str], **kwargs: object) -> str:
        """Play the person in the sandbox; returns the address the browser ends on."""
        return await sandbox_approve(authorize_url, orgs=orgs, **kwargs)  # type: ignore[arg-type]

    async def deliver(self, redirect_url: str) -> httpx.Response:
        """Let the 'browser' follow the redirect to the daemon's loopback listener."""
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.get(redirect_url)


@pytest.fixture
def daemon_clock() -> Clock:
    """The daemon's clock: real time (a test module may override it with a fixed one)."""
    return Clock()


@pytest.fixture
async def daemon(
    home: Paths, sandbox: SandboxServer, request: pytest.FixtureRequest, daemon_clock: Clock
) -> AsyncIterator[RunningDaemon]:
    """A started daemon with no clients yet.

    Desktop notifications go to the session bus only in tests that ask for the
    ``notification_server`` (a private bus); elsewhere the daemon has no desktop channel.
    """
    clock = daemon_clock
    desktop = "default" if "notification_server" in request.fixturenames else None
    instance = Daemon(home, load_config(home.config_file), clock=clock, desktop=desktop)
    await instance.start()
    running = RunningDaemon(daemon=instance, paths=home, clock=clock, sandbox=sandbox)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await instance.stop()


@dataclass
class Practice(RunningDaemon):
    """A daemon holding the sandbox's businesses as clients, some needing re-auth."""

    seeded: SeededPractice | None = None

    @property
    def client_ids_needing_reauth(self) -> list[int]:
        assert self.seeded is not None
        return self.seeded.needs_reauth_ids

    @property
    def connected_ids(self) -> list[int]:
        """Clients whose connection works after seeding."""
        assert self.seeded is not None
        bad = set(self.seeded.needs_reauth_ids)
        return [client_id for client_id in self.seeded.client_ids if client_id not in bad]

    @property
    def xero_connected_ids(self) -> list[int]:
        """Connected clients whose books are in (the sandbox's) Xero."""
        assert self.seeded is not None
        quickbooks = set(self.seeded.quickbooks_ids)
        return [client_id for client_id in self.connected_ids if client_id not in quickbooks]


@pytest.fixture
async def practice(daemon: RunningDaemon) -> Practice:
    """The demo's practice, at test size: staff grants, one revoked, a few disconnected."""
    client = await daemon.connect("seed")
    seeded = await seed_practice(client, daemon.sandbox.base_url)
    # What seeding broke is announced now and read, so each test starts with a quiet inbox.
    await daemon.daemon.notifier.flush()
    await client.call("notifications.ack", {})
    return Practice(**vars(daemon), seeded=seeded)


@pytest.fixture
async def rpc(daemon: RunningDaemon) -> DaemonClient:
    """A connected client for the daemon fixture."""
    return await daemon.connect()


@pytest.fixture
def keyring_config(home: Paths, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    """The home with the keyring vault; tests put a :class:`MemoryKeyring` in place."""
    home.config_file.write_text(
        home.config_file.read_text().replace('backend = "passphrase"', 'backend = "keyring"')
    )
    # The in-memory stand-in keeps nothing on disk, like the Secret Service it plays.
    kind = f"{MemoryKeyring.__module__}.{MemoryKeyring.__name__}"
    monkeypatch.setattr(vault_module, "TRUSTED_KEYRINGS", vault_module.TRUSTED_KEYRINGS | {kind})
    previous = keyring.get_keyring()
    yield home
    keyring.set_keyring(previous)
