"""Shared fixtures: a real sandbox on loopback, a real daemon on a real socket and SQLite.

Everything runs inside the test's event loop; nothing is mocked. Time is moved with the
daemon's :class:`Clock` and the sandbox's admin API, never waited for.

The ``practice`` is seeded once per session (per xdist worker) through the real flows, in
a sandbox and daemon of its own (:func:`practice_template`); each test then gets its own copy:
the daemon's files copied into the test's home and the sandbox's world restored into the
test's sandbox, both clocks resuming at the moment seeding ended.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import keyring
import pytest

from clientlink.cli.demo import PASSPHRASE_ENV, SeededPractice, demo_config_text, seed_practice
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.config import load_config
from clientlink.common.paths import Paths, resolve_paths
from clientlink.daemon import vault as vault_module
from clientlink.daemon.clock import Clock
from clientlink.daemon.datafiles import RESERVE_NAME
from clientlink.daemon.service import Daemon
from clientlink.sandbox.approve import approve as sandbox_approve
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.state import SandboxSnapshot
from tests.helpers import MemoryKeyring

# tests.firm: firm mode with real Unix users (the `firm` and `firm_practice` fixtures).
pytest_plugins = ["tests.dbus_session", "tests.firm"]

TEST_ORGS = 40
TEST_PASSPHRASE = "test passphrase, not a secret"


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
    monkeypatch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
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
    # For a ``practice`` copied from the session's template (None when seeded afresh).
    template: PracticeTemplate | None = None

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
    """A started daemon with no clients yet (for ``practice``, holding a copy of the practice).

    Desktop notifications go to the session bus only in tests that ask for the
    ``notification_server`` (a private bus); elsewhere the daemon has no desktop channel.
    """
    clock = daemon_clock
    desktop = "default" if "notification_server" in request.fixturenames else None
    config = load_config(home.config_file)
    template: PracticeTemplate | None = None
    if "practice" in request.fixturenames:
        candidate: PracticeTemplate = request.getfixturevalue("practice_template")
        # A test module that fixes the daemon's clock (the snapshots) seeds on that clock.
        if type(daemon_clock) is Clock and candidate.fits(sandbox, config.vault.backend, desktop):
            template = candidate
            clock = template.copy_into(home, sandbox)
    instance = Daemon(home, config, clock=clock, desktop=desktop)
    await instance.start()
    running = RunningDaemon(
        daemon=instance, paths=home, clock=clock, sandbox=sandbox, template=template
    )
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


@dataclass
class PracticeTemplate:
    """The practice as seeding left it: the daemon's files (stopped) and the sandbox's world."""

    paths: Paths
    world: SandboxSnapshot
    daemon_now: datetime
    seeded: SeededPractice

    def fits(self, sandbox: SandboxServer, vault_backend: str, desktop: str | None) -> bool:
        """Whether a copy is what seeding would make for this test; otherwise it seeds afresh.

        Not for a desktop channel (seeding's digest would have gone to it), another vault
        (the data key is kept by the passphrase vault), or another set of businesses.
        """
        return (
            desktop is None
            and vault_backend == "passphrase"
            and sandbox.state.orgs == self.world.world["orgs"]
        )

    def copy_into(self, home: Paths, sandbox: SandboxServer) -> Clock:
        """Copy the daemon's files into ``home`` and the world into ``sandbox``; returns the
        daemon's clock, resuming (like the sandbox's) at the moment seeding ended.

        The test's own config.toml stays (it names its sandbox); the database holds the vault
        material and the clients. The disk reserve is made by the daemon as it starts, and
        the installation marker is rewritten by it for the new database path.
        """
        for source, target in (
            (self.paths.data_dir, home.data_dir),
            (self.paths.state_dir, home.state_dir),
        ):
            for item in source.iterdir():
                if item.is_file() and item.name != RESERVE_NAME:
                    shutil.copy2(item, target / item.name)
        sandbox.state.restore(self.world)
        return Clock(offset=self.daemon_now - datetime.now(UTC))


async def _seed_template(folder: Path) -> PracticeTemplate:
    async with SandboxServer(org_count=TEST_ORGS) as server:
        paths = resolve_paths(folder / "home")
        paths.ensure()
        paths.config_file.write_text(
            demo_config_text(server.base_url, smtp_port=server.smtp_port), encoding="utf-8"
        )
        clock = Clock()
        instance = Daemon(paths, load_config(paths.config_file), clock=clock, desktop=None)
        await instance.start()
        try:
            client = DaemonClient(paths.socket, client_name="seed")
            await client.connect()
            try:
                seeded = await seed_practice(client, server.base_url)
                # What seeding broke is announced now and read: each test starts quiet.
                await instance.notifier.flush()
                await client.call(p.NOTIFICATIONS_ACK)
            finally:
                await client.close()
        finally:
            await instance.stop()
        return PracticeTemplate(paths, server.state.snapshot(), clock.now(), seeded)


@pytest.fixture(scope="session")
def practice_template() -> Iterator[PracticeTemplate]:
    """The practice seeded once for this session (this xdist worker), in its own event loop."""
    folder = Path(tempfile.mkdtemp(prefix="cl-"))
    built: list[PracticeTemplate] = []
    failed: list[BaseException] = []

    def build() -> None:
        try:
            built.append(asyncio.run(_seed_template(folder)))
        except BaseException as exc:
            failed.append(exc)

    previous = os.environ.get(PASSPHRASE_ENV)
    os.environ[PASSPHRASE_ENV] = TEST_PASSPHRASE
    try:
        # A thread of its own: the test's event loop is running in this one.
        worker = threading.Thread(target=build, name="practice-template")
        worker.start()
        worker.join()
    finally:
        if previous is None:
            os.environ.pop(PASSPHRASE_ENV, None)
        else:
            os.environ[PASSPHRASE_ENV] = previous
    if failed:
        raise failed[0]
    yield built[0]
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def practice(daemon: RunningDaemon) -> Practice:
    """The demo's practice, at test size: staff grants, one revoked, a few disconnected."""
    client = await daemon.connect("seed")
    if daemon.template is not None:
        return Practice(**vars(daemon), seeded=copy.deepcopy(daemon.template.seeded))
    seeded = await seed_practice(client, daemon.sandbox.base_url)
    # What seeding broke is announced now and read, so each test starts with a quiet inbox.
    await daemon.daemon.notifier.flush()
    await client.call(p.NOTIFICATIONS_ACK)
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
