"""``daemon.*``: the handshake and the daemon's state at a glance."""

from __future__ import annotations

import os
from datetime import datetime

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.common.version import VERSION
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.auth import AuthSessions
from clientlink.daemon.clock import Clock
from clientlink.daemon.events import EventBus
from clientlink.daemon.rpc_server import CallContext, hello_check
from clientlink.daemon.store import Store
from clientlink.daemon.vault import Vault
from clientlink.daemon.watcher import Watcher


class DaemonApi(Api):
    def __init__(
        self,
        store: Store,
        vault: Vault,
        providers: ConfiguredProviders,
        auth: AuthSessions,
        watcher: Watcher,
        clock: Clock,
        started_at: datetime,
        events: EventBus,
    ) -> None:
        self._events = events
        self._store = store
        self._vault = vault
        self._providers = providers
        self._auth = auth
        self._watcher = watcher
        self._clock = clock
        self._started_at = started_at

    @handles("daemon.hello")
    async def hello(self, params: p.HelloParams, ctx: CallContext) -> p.HelloResult:
        """Agree the protocol version; must be the first call on a connection."""
        hello_check(params.protocol)
        ctx.connection.peer.client = params.client
        return p.HelloResult(
            protocol=p.PROTOCOL_VERSION,
            daemon_version=VERSION,
            user=ctx.peer.user,
            pid=os.getpid(),
            minor=p.PROTOCOL_MINOR,
            epoch=self._events.epoch,
        )

    @handles("daemon.status")
    async def status(self, params: p.Empty, ctx: CallContext) -> p.DaemonStatusResult:
        """Counts by status, pending sign-ins, providers and the vault in use."""
        store = self._store
        return p.DaemonStatusResult(
            version=VERSION,
            protocol=p.PROTOCOL_VERSION,
            started_at=to_iso(self._started_at) or "",
            now=to_iso(self._clock.now()) or "",
            vault_backend=self._vault.backend,
            clients_by_status=await store.count_clients_by_status(active=True),
            inactive_clients=sum((await store.count_clients_by_status(active=False)).values()),
            pending_auth_sessions=self._auth.pending_count(),
            providers=self._providers.infos(),
            attention=await store.count_attention(),
            unread_notifications=await store.count_unread_notifications(),
            watched_grants=self._watcher.watched,
            next_wakeup_at=to_iso(self._watcher.next_wakeup()),
            database_problem=store.check_database(),
            disk_reserve=store.reserve is not None and store.reserve.present,
            unused_sign_ins=len(await store.unused_grants()),
            usage=[await self._providers.usage(name) for name in self._providers.xero_names()],
        )
