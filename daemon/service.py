"""The daemon: its life cycle around the services built by ``composition.py``.

``start`` builds every service (:class:`~clientlink.daemon.composition.Services`), registers
the RPC handlers of ``daemon/api/`` by their wire names, then opens the socket; ``stop``
undoes it in reverse. The same :class:`Daemon` can be started again after a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Literal

from clientlink.common.config import Config
from clientlink.common.paths import Paths
from clientlink.common.version import VERSION
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.auth import AuthSessions
from clientlink.daemon.clients import ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.composition import Services, namespaces
from clientlink.daemon.events import EventBus
from clientlink.daemon.grants import Grants
from clientlink.daemon.invitations import Invitations
from clientlink.daemon.jobs import JobEngine
from clientlink.daemon.notifications import DesktopChannel, Notifier
from clientlink.daemon.rpc_server import Connection, RpcServer
from clientlink.daemon.store import Store
from clientlink.daemon.usage import EgressMeter
from clientlink.daemon.vault import Vault
from clientlink.daemon.watcher import Watcher

log = logging.getLogger(__name__)

DATABASE_WATCH_SECONDS = 2.0  # how often an idle daemon looks that its database is still there


class Daemon:
    """One running clientlinkd."""

    def __init__(
        self,
        paths: Paths,
        config: Config,
        clock: Clock | None = None,
        desktop: Literal["default"] | DesktopChannel | None = "default",
        *,
        init: bool = False,
    ) -> None:
        # Firm mode shares the socket with the practice's group; single-user keeps it private.
        self.paths = paths = paths.shared_with(config.firm.group if config.firm.enabled else None)
        # Start an empty practice even where one was known before (``clientlinkd --init``).
        self.init = init
        # Set when the daemon must stop: its database was deleted or replaced.
        self.failed = asyncio.Event()
        self.failure: str | None = None
        self._desktop = desktop
        self.config = config
        self.clock = clock or Clock()
        self.events = EventBus(self.clock)
        # Bytes received from each provider's API, by month; outlives adapter rebuilds.
        self.egress: dict[str, EgressMeter] = {}
        self.rpc = RpcServer(paths.socket, group=paths.socket_group)
        self.rpc.on_disconnect = self._forget_connection
        self.started_at = self.clock.now()
        self._services: Services | None = None
        self._database_watch: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self, inherited_socket: socket.socket | None = None) -> None:
        """Build every service, then serve. Raises VaultUnavailable and friends."""
        services = await Services.open(
            self.paths,
            self.config,
            self.clock,
            self.events,
            self.egress,
            self._desktop,
            self._database_lost,
            init=self.init,
        )
        self._services = services
        # Firm mode: the staff list decides who is calling (single-user: the owner only).
        self.rpc.identify = services.staff.identify
        for api in namespaces(
            services, self.paths, self.config, self.clock, self.events, self.started_at
        ):
            for method, handler in api.handlers().items():
                self.rpc.register(method, handler)
        try:
            await self.rpc.start(inherited_socket)
        except BaseException:
            self._services = None
            await services.close()
            raise
        self._database_watch = asyncio.create_task(
            self._watch_database(services.store), name="database-watch"
        )
        log.info("clientlinkd %s serving %s", VERSION, self.paths.socket)

    async def stop(self) -> None:
        """Stop serving and close everything, in the reverse order of start."""
        if self._database_watch is not None:
            self._database_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._database_watch
            self._database_watch = None
        await self.rpc.stop()
        if self._services is not None:
            await self._services.close()
            self._services = None
        log.info("clientlinkd stopped")

    def _database_lost(self, reason: str) -> None:
        """The database vanished or was replaced: refuse writes and ask main to exit."""
        self.failure = reason
        self.failed.set()

    async def _watch_database(self, store: Store) -> None:
        """Notice a deleted or replaced database even while nothing writes."""
        while True:
            if store.check_database() is not None:
                return
            await asyncio.sleep(DATABASE_WATCH_SECONDS)

    def _forget_connection(self, connection: Connection) -> None:
        for subscription in connection.subscriptions:
            self.events.unsubscribe(subscription)

    async def save_usage(self) -> None:
        """Write the API egress counts that changed (also done every few minutes)."""
        await self.services.usage.save()

    # ------------------------------------------------------------------ the running parts

    @property
    def services(self) -> Services:
        """The running daemon's services (between start and stop)."""
        if self._services is None:
            raise RuntimeError("the daemon is not running: call start() first")
        return self._services

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def vault(self) -> Vault:
        return self.services.vault

    @property
    def providers(self) -> ConfiguredProviders:
        return self.services.providers

    @property
    def grants(self) -> Grants:
        return self.services.grants

    @property
    def clients(self) -> ClientService:
        return self.services.clients

    @property
    def auth(self) -> AuthSessions:
        return self.services.auth

    @property
    def notifier(self) -> Notifier:
        return self.services.notifier

    @property
    def watcher(self) -> Watcher:
        return self.services.watcher

    @property
    def invitations(self) -> Invitations:
        return self.services.invitations

    @property
    def jobs(self) -> JobEngine:
        return self.services.jobs
