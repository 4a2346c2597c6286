"""The composition root: every service of a running daemon, built before the socket opens.

:meth:`Services.open` builds them in dependency order — store, vault, providers, grants,
clients, notifier, watcher, sign-ins, invitations, jobs — and starts the ones that run in
the background. Nothing is missing afterwards, so :meth:`Services.close` simply closes
them in reverse. :func:`namespaces` gives the RPC handlers, one object per namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from clientlink.common.config import Config
from clientlink.common.paths import Paths
from clientlink.common.protocol import JobKind
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.alerts import AlertMailer
from clientlink.daemon.api import Api
from clientlink.daemon.api.alerts import AlertsApi
from clientlink.daemon.api.audit import AuditApi
from clientlink.daemon.api.auth import AuthApi
from clientlink.daemon.api.banks import BanksApi
from clientlink.daemon.api.channels import ChannelsApi
from clientlink.daemon.api.clients import ClientsApi
from clientlink.daemon.api.daemon import DaemonApi
from clientlink.daemon.api.events import EventsApi
from clientlink.daemon.api.grants import GrantsApi
from clientlink.daemon.api.invites import InvitesApi
from clientlink.daemon.api.jobs import JobsApi
from clientlink.daemon.api.notifications import NotificationsApi
from clientlink.daemon.api.providers import ProvidersApi
from clientlink.daemon.api.staff import StaffApi
from clientlink.daemon.api.templates import TemplatesApi
from clientlink.daemon.auth import AuthSessions
from clientlink.daemon.banks import BankFeeds
from clientlink.daemon.channels import EmailChannel, SmsChannel
from clientlink.daemon.client_import import ClientImporter
from clientlink.daemon.clients import ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.datafiles import refuse_missing_database, remember_installation
from clientlink.daemon.events import EventBus
from clientlink.daemon.grants import Grants
from clientlink.daemon.handover import Handover
from clientlink.daemon.holds import ClientHolds
from clientlink.daemon.http_runtime import skip_absent_sniffio
from clientlink.daemon.invitations import Invitations, InviteJob
from clientlink.daemon.job_kinds import ReauthoriseJob, ReimportJob
from clientlink.daemon.jobs import JobEngine, JobHandler
from clientlink.daemon.notifications import DesktopChannel, LazyDesktop, Notifier
from clientlink.daemon.signin import SignIn
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import Store
from clientlink.daemon.templates import TemplateBook
from clientlink.daemon.usage import EgressMeter, Usage
from clientlink.daemon.vault import Vault
from clientlink.daemon.watcher import Watcher

log = logging.getLogger(__name__)

Desktop = Literal["default"] | DesktopChannel | None


class Services:
    """Everything a running daemon is made of (see :meth:`open`)."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        usage: Usage,
        providers: ConfiguredProviders,
        grants: Grants,
        clients: ClientService,
        notifier: Notifier,
        watcher: Watcher,
        sign_in: SignIn,
        auth: AuthSessions,
        templates: TemplateBook,
        invitations: Invitations,
        jobs: JobEngine,
        staff: StaffDirectory,
        alerts: AlertMailer,
    ) -> None:
        self.store = store
        self.vault = vault
        self.usage = usage
        self.providers = providers
        self.grants = grants
        self.clients = clients
        self.notifier = notifier
        self.watcher = watcher
        self.sign_in = sign_in
        self.auth = auth
        self.templates = templates
        self.invitations = invitations
        self.jobs = jobs
        self.staff = staff
        self.alerts = alerts
        self._usage_saver: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        paths: Paths,
        config: Config,
        clock: Clock,
        events: EventBus,
        egress: dict[str, EgressMeter],
        desktop: Desktop,
        on_lost: Callable[[str], None],
        *,
        init: bool,
    ) -> Services:
        """Open the store and vault, build every service, start the background ones.
        Raises VaultUnavailable, DataFilesProblem and friends, leaving nothing open."""
        paths.ensure()
        if init:
            if not paths.database.exists():
                log.warning("starting an empty practice (--init): %s", paths.database)
        else:
            await refuse_missing_database(paths, config.vault)
        store = await Store.open(paths.database)
        store.on_lost = on_lost
        usage = Usage(store, clock, egress)
        providers: ConfiguredProviders | None = None
        try:
            vault = await Vault.open(config.vault, store)
            await asyncio.to_thread(
                remember_installation,
                paths,
                await store.get_meta("install_id") or "",
                vault.backend,
            )
            providers = ConfiguredProviders(config, paths, store, vault, clock, usage)
            await usage.load(list(providers.definitions))
            await providers.build()
            services = await cls._build(
                config, clock, events, desktop, store, vault, usage, providers
            )
        except BaseException:
            if providers is not None:
                await providers.close()
            await store.close()
            raise
        try:
            await services._start()
        except BaseException:
            await services.close()
            raise
        return services

    @classmethod
    async def _build(
        cls,
        config: Config,
        clock: Clock,
        events: EventBus,
        desktop: Desktop,
        store: Store,
        vault: Vault,
        usage: Usage,
        providers: ConfiguredProviders,
    ) -> Services:
        skip_absent_sniffio()
        adapters = providers.adapters
        grants = Grants(store, vault, adapters, clock)
        notifier = Notifier(
            store,
            events,
            clock,
            config.notifications,
            _default_desktop(config) if desktop == "default" else desktop,
        )
        clients = ClientService(store, grants, adapters, events, clock, notifier.transition)
        staff = StaffDirectory(store, config.firm, clock)
        watcher = Watcher(
            store, grants, adapters, clock, config.watch, clients.set_status, staff.owner_left
        )
        sign_in = SignIn(providers, grants, clients, watcher, store, events, clock)
        auth = AuthSessions(config.auth, clock, sign_in.finish, sign_in.announce)
        templates = TemplateBook(store)
        handlers: dict[JobKind, JobHandler] = {}
        jobs = JobEngine(store, events, clock, handlers, ClientHolds(store, auth, staff))
        handover = Handover(store, staff, clients, clock)
        invitations = Invitations(
            store,
            vault,
            events,
            clock,
            config,
            EmailChannel(config.email, await _channel_secret(store, vault, "email")),
            SmsChannel(config.sms, await _channel_secret(store, vault, "sms")),
            BankFeeds(config.banks, await _channel_secret(store, vault, "banks")),
            templates,
            jobs,
        )
        handlers[JobKind.REAUTHORISE] = ReauthoriseJob(
            store, clients, watcher.watch, handover.takeover_finished
        )
        handlers[JobKind.REIMPORT] = ReimportJob(store, clients)
        handlers[JobKind.INVITE] = InviteJob(invitations)
        alerts = AlertMailer(store, staff, clock, config, lambda: invitations.email)
        clients.record_change = alerts.record
        return cls(
            store,
            vault,
            usage,
            providers,
            grants,
            clients,
            notifier,
            watcher,
            sign_in,
            auth,
            templates,
            invitations,
            jobs,
            staff,
            alerts,
        )

    async def _start(self) -> None:
        await self.staff.start()
        watched = await self.watcher.start()
        log.info("watching %d grants", watched)
        self.invitations.start()
        await self.alerts.start()
        self._usage_saver = asyncio.create_task(self.usage.save_now_and_then(), name="usage-saver")
        resumed = await self.jobs.start()
        if resumed:
            log.info("resumed %d jobs", resumed)

    async def close(self) -> None:
        """Stop and close everything, in the reverse order of :meth:`open`."""
        if self._usage_saver is not None:
            self._usage_saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._usage_saver
        await self.alerts.stop()
        await self.invitations.stop()
        await self.jobs.stop()
        await self.watcher.stop()
        await self.notifier.close()
        await self.auth.close()
        await self.providers.close()
        with contextlib.suppress(Exception):
            await self.usage.save()
        await self.store.close()


def namespaces(
    services: Services,
    paths: Paths,
    config: Config,
    clock: Clock,
    events: EventBus,
    started_at: datetime,
) -> list[Api]:
    """One handler object per RPC namespace, each given only what it uses."""
    s = services
    handover = Handover(s.store, s.staff, s.clients, clock)
    return [
        DaemonApi(s.store, s.vault, s.providers, s.auth, s.watcher, clock, started_at, events),
        ProvidersApi(s.providers, s.store, s.vault, clock),
        ClientsApi(
            s.clients,
            s.watcher,
            s.store,
            paths,
            clock,
            s.providers,
            ClientImporter(s.store, s.providers.definitions, events, clock, paths.state_dir),
            s.staff,
            _holds(s),
        ),
        AuthApi(s.auth, s.providers, s.clients, _holds(s)),
        GrantsApi(s.store, s.grants, s.providers, s.watcher, clock),
        JobsApi(s.jobs, s.clients, s.invitations, s.store, paths, s.providers, handover),
        InvitesApi(s.invitations, s.clients, s.jobs, s.store),
        TemplatesApi(s.templates, s.clients, s.invitations, s.store, config, clock),
        BanksApi(s.invitations, s.clients, s.store),
        ChannelsApi(s.invitations, s.store, s.vault, config, clock),
        NotificationsApi(s.notifier),
        EventsApi(events),
        AuditApi(s.store, s.staff, paths, clock),
        StaffApi(s.staff, s.store, clock, handover),
        AlertsApi(s.store),
    ]


def _holds(s: Services) -> ClientHolds:
    assert s.jobs.holds is not None
    return s.jobs.holds


async def _channel_secret(store: Store, vault: Vault, channel: str) -> str | None:
    sealed = await store.get_secret(f"channel:{channel}")
    if sealed is None:
        return None
    return vault.decrypt(sealed, f"channel-secret:{channel}").decode()


def _default_desktop(config: Config) -> DesktopChannel | None:
    """Desktop notifications through the session bus (None when switched off)."""
    if not config.notifications.desktop:
        return None
    return LazyDesktop(config.notifications.open_command)
