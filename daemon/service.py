"""The daemon: wires store, vault, providers, sessions and the RPC server together.

Each RPC method is one small ``_rpc_*`` coroutine below; its docstring is the method's
documentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any, Literal

from clientlink.common import protocol as p
from clientlink.common.config import Config
from clientlink.common.paths import Paths
from clientlink.common.protocol import AuthSessionState, ErrorCode, JobKind
from clientlink.common.timeutil import from_iso, to_iso
from clientlink.common.version import VERSION
from clientlink.daemon.auth import AuthSession, AuthSessions
from clientlink.daemon.banks import BankFeeds, BanksUnavailable
from clientlink.daemon.channels import EmailChannel, SmsChannel
from clientlink.daemon.clients import FAILURE_ERROR_CODES, ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.contacts import normalise_email, normalise_phone
from clientlink.daemon.datafiles import refuse_missing_database, remember_installation
from clientlink.daemon.events import EventBus
from clientlink.daemon.export import check_target, write_csv
from clientlink.daemon.grants import Grants, classify_failure
from clientlink.daemon.invitations import Invitations, InviteJob
from clientlink.daemon.job_kinds import ReauthoriseJob, ReimportJob
from clientlink.daemon.jobs import JobEngine
from clientlink.daemon.notifications import DesktopChannel, LazyDesktop, Notifier
from clientlink.daemon.providers import (
    ADAPTERS,
    ProviderAdapter,
    ProviderDefinition,
    ProviderError,
    build_definition,
)
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext, Connection, RpcServer, hello_check
from clientlink.daemon.store import Store
from clientlink.daemon.templates import (
    BUILTIN_TEMPLATES,
    PLACEHOLDERS,
    Template,
    check_template,
    render_text,
    sms_segments,
)
from clientlink.daemon.usage import EgressMeter, meta_key, month_of, usage_json, would_exceed
from clientlink.daemon.vault import Vault
from clientlink.daemon.watcher import Watcher

log = logging.getLogger(__name__)

USAGE_SAVE_SECONDS = 300

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
        self.paths = paths
        # Start an empty practice even where one was known before (``clientlinkd --init``).
        self.init = init
        # Set when the daemon must stop: its database was deleted or replaced.
        self.failed = asyncio.Event()
        self.failure: str | None = None
        self._desktop_choice = desktop
        self.config = config
        self.clock = clock or Clock()
        self.events = EventBus(self.clock)
        self.definitions: dict[str, ProviderDefinition] = {
            name: build_definition(provider) for name, provider in config.providers.items()
        }
        self.adapters: dict[str, ProviderAdapter] = {}
        # Bytes received from each provider's API, by month; outlives adapter rebuilds.
        self.egress: dict[str, EgressMeter] = {}
        self.store: Store | None = None
        self.vault: Vault | None = None
        self.rpc = RpcServer(paths.socket)
        self.rpc.on_disconnect = self._forget_connection
        self.started_at = self.clock.now()

    # ------------------------------------------------------------------ life cycle

    async def start(self, inherited_socket: socket.socket | None = None) -> None:
        """Open the store and vault, then serve. Raises VaultUnavailable and friends."""
        self.paths.ensure()
        if self.init:
            if not self.paths.database.exists():
                log.warning("starting an empty practice (--init): %s", self.paths.database)
        else:
            await refuse_missing_database(self.paths, self.config.vault)
        self.store = await Store.open(self.paths.database)
        self.store.on_lost = self._database_lost
        try:
            self.vault = await Vault.open(self.config.vault, self.store)
            await asyncio.to_thread(
                remember_installation,
                self.paths,
                await self.store.get_meta("install_id") or "",
                self.vault.backend,
            )
            await self._load_egress()
            await self._build_adapters()
        except BaseException:
            await self.store.close()
            raise
        self.grants = Grants(self.store, self.vault, self.adapters, self.clock)
        self.clients = ClientService(
            self.store, self.grants, self.adapters, self.events, self.clock
        )
        self.auth = AuthSessions(
            self.config.auth, self.clock, self._exchange_code, self._announce_session
        )
        desktop = (
            _default_desktop(self.config)
            if self._desktop_choice == "default"
            else self._desktop_choice
        )
        self.notifier = Notifier(
            self.store, self.events, self.clock, self.config.notifications, desktop
        )
        self.clients.on_transition = self.notifier.transition
        self.watcher = Watcher(
            self.store,
            self.grants,
            self.adapters,
            self.clock,
            self.config.watch,
            self.clients.set_status,
        )
        watched = await self.watcher.start()
        log.info("watching %d grants", watched)
        self.invitations = Invitations(
            self.store,
            self.vault,
            self.events,
            self.clock,
            self.config,
            EmailChannel(self.config.email, await self._channel_secret("email")),
            SmsChannel(self.config.sms, await self._channel_secret("sms")),
            BankFeeds(self.config.banks, await self._channel_secret("banks")),
            self._template,
        )
        self.jobs = JobEngine(
            self.store,
            self.events,
            self.clock,
            {
                JobKind.REAUTHORISE: ReauthoriseJob(self.store, self.clients, self.watcher.watch),
                JobKind.REIMPORT: ReimportJob(self.store, self.clients),
                JobKind.INVITE: InviteJob(self.invitations),
            },
        )
        self.invitations.jobs = self.jobs
        self.invitations.start()
        self._usage_saver = asyncio.create_task(
            self._save_usage_now_and_then(), name="usage-saver"
        )
        resumed = await self.jobs.start()
        if resumed:
            log.info("resumed %d jobs", resumed)
        for name in dir(self):
            if name.startswith("_rpc_"):
                self.rpc.register(name[5:].replace("__", "."), getattr(self, name))
        await self.rpc.start(inherited_socket)
        self._database_watch = asyncio.create_task(self._watch_database(), name="database-watch")
        log.info("clientlinkd %s serving %s", VERSION, self.paths.socket)

    def _database_lost(self, reason: str) -> None:
        """The database vanished or was replaced: refuse writes and ask main to exit."""
        self.failure = reason
        self.failed.set()

    async def _watch_database(self) -> None:
        """Notice a deleted or replaced database even while nothing writes."""
        assert self.store is not None
        while True:
            if self.store.check_database() is not None:
                return
            await asyncio.sleep(DATABASE_WATCH_SECONDS)

    async def stop(self) -> None:
        """Stop serving and close everything, in the reverse order of start."""
        if hasattr(self, "_database_watch"):
            self._database_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._database_watch
        await self.rpc.stop()
        if hasattr(self, "_usage_saver"):
            self._usage_saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._usage_saver
        if hasattr(self, "jobs"):
            await self.invitations.stop()
            await self.jobs.stop()
        if hasattr(self, "watcher"):
            await self.watcher.stop()
            await self.notifier.close()
        if hasattr(self, "auth"):
            await self.auth.close()
        for adapter in self.adapters.values():
            await adapter.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.save_usage()
            await self.store.close()
        log.info("clientlinkd stopped")

    async def _build_adapters(self) -> None:
        assert self.store is not None
        for name, definition in self.definitions.items():
            old = self.adapters.pop(name, None)
            if old is not None:
                await old.close()
            client_id = self.config.providers[name].client_id
            if not client_id:
                continue
            secret = await self._provider_secret(name)
            self.adapters[name] = ADAPTERS[definition.kind](
                name,
                definition,
                client_id,
                secret,
                self.clock,
                timeout_seconds=self.config.network.timeout_seconds,
            )
            self.adapters[name].egress = self._egress_meter(name)

    async def _provider_secret(self, name: str) -> str | None:
        assert self.store is not None and self.vault is not None
        sealed = await self.store.get_secret(f"provider:{name}")
        if sealed is None:
            return None
        return self.vault.decrypt(sealed, f"provider-secret:{name}").decode()

    async def _channel_secret(self, channel: str) -> str | None:
        assert self.store is not None and self.vault is not None
        sealed = await self.store.get_secret(f"channel:{channel}")
        if sealed is None:
            return None
        return self.vault.decrypt(sealed, f"channel-secret:{channel}").decode()

    def _forget_connection(self, connection: Connection) -> None:
        for subscription in connection.subscriptions:
            self.events.unsubscribe(subscription)

    # ------------------------------------------------------------------ sign-in plumbing

    def _adapter(self, provider: str) -> ProviderAdapter:
        if provider not in self.definitions:
            known = ", ".join(sorted(self.definitions)) or "none are configured"
            raise RpcFailure(
                ErrorCode.PROVIDER_UNKNOWN,
                f"no accounting software named {provider!r} (configured: {known})",
            )
        adapter = self.adapters.get(provider)
        if adapter is None or (adapter.definition.requires_secret and not adapter.client_secret):
            raise RpcFailure(
                ErrorCode.PROVIDER_NOT_CONFIGURED,
                self._provider_problem(provider) or f"{provider} is not set up",
            )
        return adapter

    def _provider_problem(self, name: str) -> str | None:
        definition = self.definitions[name]
        adapter = self.adapters.get(name)
        if adapter is None:
            return (
                f"{definition.display_name} has no client id: register an app with "
                f"{definition.display_name} and set client_id under [providers.{name}] in "
                f"{self.paths.config_file}"
            )
        if definition.requires_secret and not adapter.client_secret:
            return (
                f"{definition.display_name} needs the app's client secret: run "
                f"`clientlink provider set-secret {name}`"
            )
        return None

    async def _exchange_code(
        self, session: AuthSession, code: str, params: dict[str, str]
    ) -> dict[str, Any]:
        adapter = self._adapter(session.provider)
        try:
            tokens = await adapter.exchange_code(
                code=code, redirect_uri=session.redirect_uri, code_verifier=session.code_verifier
            )
            auth_event_id, tenants = await adapter.list_tenants(tokens, params)
        except ProviderError as exc:
            failure = classify_failure(exc)
            assert failure is not None
            raise RpcFailure(FAILURE_ERROR_CODES[failure.kind], failure.reason) from exc
        grant_id = await self.grants.create(
            session.provider, tokens, tenants, auth_event_id, session.actor
        )
        # Who signed in at the provider: the id_token's user, recorded with the grant.
        user = adapter.provider_user(tokens)
        provider_user = user.as_json() if user is not None else None
        assert self.store is not None
        await self.store.add_audit(
            actor=session.actor,
            action="grant.created",
            client_id=session.client_id,
            detail={
                "grant_id": grant_id,
                "provider": session.provider,
                "tenants": len(tenants),
                "provider_user": provider_user,
            },
            now=self.clock.now(),
        )
        if session.client_id is not None:
            previous = await self.clients.require(session.client_id)
            try:
                await self.clients.reauthorise(
                    session.client_id, grant_id, tenants, session.actor
                )
            except RpcFailure as failure:
                # The grant stays (revoking it could end the user's other connections):
                # an unused sign-in, listed by grants.list and watched like any other.
                await self.watcher.watch(grant_id)
                raise await self._lost_race(session, grant_id, failure) from None
            await self.watcher.watch(grant_id)
            if previous["grant_id"] is not None:
                await self.watcher.watch(previous["grant_id"])
        listed = []
        for tenant in tenants:
            client = await self.store.find_client_by_tenant(session.provider, tenant.tenant_id)
            listed.append(
                {
                    "tenant_id": tenant.tenant_id,
                    "name": tenant.tenant_name,
                    "tenant_type": tenant.tenant_type,
                    "client_id": client["id"] if client else None,
                }
            )
        return {
            "grant_id": grant_id,
            "tenants": listed,
            "client_id": session.client_id,
            "provider_user": provider_user,
        }

    async def _lost_race(
        self, session: AuthSession, grant_id: int, failure: RpcFailure
    ) -> RpcFailure:
        """A sign-in that did not cover its client: say so plainly when another sign-in
        for the same client finished first (its consent took this one's connections)."""
        assert self.store is not None and session.client_id is not None
        if failure.code != ErrorCode.AUTH_CLIENT_NOT_SELECTED:
            return failure
        client = await self.clients.require(session.client_id)
        current = await self.store.get_grant(client["grant_id"]) if client["grant_id"] else None
        created = from_iso(current.created_at) if current is not None else None
        if current is None or current.id == grant_id or created is None:
            return failure
        if created < session.created_at.replace(microsecond=0):
            return failure
        return RpcFailure(
            ErrorCode.AUTH_CLIENT_NOT_SELECTED,
            f"Another sign-in for {client['name']} finished first and already re-authorised "
            "it; this one changed nothing and there is nothing more to do",
            {"grant_id": grant_id, "client_grant_id": current.id},
        )

    def _announce_session(self, session: AuthSession) -> None:
        if session.status == AuthSessionState.COMPLETED and session.result:
            self.events.publish(
                p.AuthCompleted(
                    session_id=session.id,
                    provider=session.provider,
                    client_id=session.client_id,
                    grant_id=session.result["grant_id"],
                    tenants=session.result["tenants"],
                )
            )
        elif session.status in (
            AuthSessionState.FAILED,
            AuthSessionState.EXPIRED,
            AuthSessionState.CANCELLED,
        ):
            error = session.error or {
                "code": int(ErrorCode.AUTH_SESSION_FINISHED),
                "message": "The sign-in was cancelled",
            }
            self.events.publish(
                p.AuthFailed(
                    session_id=session.id,
                    provider=session.provider,
                    client_id=session.client_id,
                    code=error["code"],
                    message=error["message"],
                )
            )

    # ------------------------------------------------------------------ RPC: daemon

    async def _rpc_daemon__hello(self, params: p.HelloParams, ctx: CallContext) -> p.HelloResult:
        """Agree the protocol version; must be the first call on a connection."""
        hello_check(params.protocol)
        ctx.connection.peer.client = params.client
        return p.HelloResult(
            protocol=p.PROTOCOL_VERSION,
            daemon_version=VERSION,
            user=ctx.peer.user,
            pid=os.getpid(),
            minor=p.PROTOCOL_MINOR,
            epoch=self.events.epoch,
        )

    async def _rpc_daemon__status(self, params: p.Empty, ctx: CallContext) -> p.DaemonStatusResult:
        """Counts by status, pending sign-ins, providers and the vault in use."""
        assert self.store is not None and self.vault is not None
        providers = (await self._rpc_providers__list(p.Empty(), ctx)).items
        return p.DaemonStatusResult(
            version=VERSION,
            protocol=p.PROTOCOL_VERSION,
            started_at=to_iso(self.started_at) or "",
            now=to_iso(self.clock.now()) or "",
            vault_backend=self.vault.backend,
            clients_by_status=await self.store.count_clients_by_status(active=True),
            inactive_clients=sum((await self.store.count_clients_by_status(active=False)).values()),
            pending_auth_sessions=self.auth.pending_count(),
            providers=providers,
            attention=await self.store.count_attention(),
            unread_notifications=await self.store.count_unread_notifications(),
            watched_grants=self.watcher.watched,
            next_wakeup_at=to_iso(self.watcher.next_wakeup()),
            database_problem=self.store.check_database(),
            disk_reserve=self.store.reserve is not None and self.store.reserve.present,
            unused_sign_ins=len(await self.store.unused_grants()),
            usage=[await self._usage(name) for name in self._xero_providers()],
        )

    # ------------------------------------------------------------------ Xero usage

    def _xero_providers(self) -> list[str]:
        return [name for name, d in self.definitions.items() if d.kind == "xero"]

    async def _usage(self, name: str) -> dict[str, Any]:
        """Connections and this month's API egress against the provider's tier."""
        assert self.store is not None
        now = self.clock.now()
        return usage_json(
            name,
            self.config.providers[name].tier,
            await self.store.count_connected_tenants(name),
            self._egress_meter(name).total(now),
            month_of(now),
        )

    def _egress_meter(self, name: str) -> EgressMeter:
        return self.egress.setdefault(name, EgressMeter())

    async def _load_egress(self) -> None:
        assert self.store is not None
        month = month_of(self.clock.now())
        for name in self.definitions:
            stored = await self.store.get_meta(meta_key(name, month))
            meter = self._egress_meter(name)
            if stored and stored.isdigit() and not meter.total(self.clock.now()):
                meter.restore(month, int(stored))

    async def save_usage(self) -> None:
        """Write the egress counts that changed since they were last written.

        Counted in memory per API answer and written every few minutes and at stop, so a
        status call stays a read and a job item pays no extra write; a killed daemon loses
        at most those minutes of the count (a figure for the practice, not a limit)."""
        if self.store is None:
            return
        for name, meter in self.egress.items():
            changed = meter.unsaved()
            for month, count in changed.items():
                await self.store.set_meta(meta_key(name, month), str(count))
            meter.saved(changed)

    async def _save_usage_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(USAGE_SAVE_SECONDS)
            try:
                await self.save_usage()
            except Exception as exc:  # a full disk or a lost database: said elsewhere
                log.warning("could not save the API egress count: %s", exc)

    # ------------------------------------------------------------------ RPC: providers

    async def _rpc_providers__list(
        self, params: p.Empty, ctx: CallContext
    ) -> p.ProvidersListResult:
        """The configured accounting software and whether each is ready to sign in to."""
        items = []
        for name, definition in sorted(self.definitions.items()):
            adapter = self.adapters.get(name)
            problem = self._provider_problem(name)
            items.append(
                p.ProviderInfo(
                    name=name,
                    kind=definition.kind,
                    display_name=definition.display_name,
                    configured=problem is None,
                    has_secret=bool(adapter and adapter.client_secret),
                    problem=problem,
                )
            )
        return p.ProvidersListResult(items=items)

    async def _rpc_providers__set_secret(
        self, params: p.ProviderSecretParams, ctx: CallContext
    ) -> p.OkResult:
        """Seal an app's client secret in the vault; it is never returned by any call."""
        assert self.store is not None and self.vault is not None
        if params.provider not in self.definitions:
            self._adapter(params.provider)  # raises the clear unknown-provider error
        sealed = self.vault.encrypt(
            params.client_secret.encode(), f"provider-secret:{params.provider}"
        )
        await self.store.put_secret(f"provider:{params.provider}", sealed, self.clock.now())
        await self._build_adapters()
        await self.store.add_audit(
            actor=ctx.peer.actor,
            action="provider.secret_set",
            client_id=None,
            detail={"provider": params.provider},
            now=self.clock.now(),
        )
        return p.OkResult()

    # ------------------------------------------------------------------ RPC: clients

    async def _rpc_clients__list(
        self, params: p.ClientsListParams, ctx: CallContext
    ) -> p.ClientsListResult:
        """Clients matching the filter (status, provider, text, active), ordered by name."""
        assert self.store is not None
        flt = params.filter
        statuses = None
        if flt.status is not None:
            raw = flt.status if isinstance(flt.status, list) else [flt.status]
            statuses = [status.value for status in raw]
        total, rows = await self.store.list_clients(
            statuses=statuses,
            provider=flt.provider,
            text=flt.text,
            active=flt.active,
            offset=params.offset,
            limit=params.limit,
        )
        return p.ClientsListResult(
            total=total,
            items=[p.Client.model_validate(row) for row in rows],
            counts=await self.store.count_clients_by_status(active=True),
        )

    async def _rpc_clients__get(self, params: p.ClientIdParams, ctx: CallContext) -> p.Client:
        """One client by id."""
        return p.Client.model_validate(await self.clients.require(params.client_id))

    async def _rpc_clients__import(
        self, params: p.ClientsImportParams, ctx: CallContext
    ) -> p.ClientsImportResult:
        """Create clients from a grant's tenants (each verified with one provider call)."""
        result = await self.clients.import_tenants(
            params.grant_id, params.tenant_ids, ctx.peer.actor
        )
        await self.watcher.watch(params.grant_id)
        return p.ClientsImportResult(**result)

    async def _rpc_clients__history(
        self, params: p.ClientHistoryParams, ctx: CallContext
    ) -> p.ClientHistoryResult:
        """A connection's history, newest first: status changes and re-authorisations."""
        assert self.store is not None
        await self.clients.require(params.client_id)
        rows = await self.store.client_history(params.client_id, params.limit)
        return p.ClientHistoryResult(items=[p.HistoryEntry.model_validate(r) for r in rows])

    async def _rpc_clients__refresh(
        self, params: p.ClientRefreshParams, ctx: CallContext
    ) -> p.Client:
        """Check the client's authorisation now, as the watcher would: refreshed when its
        access token is near its end (or always with ``force``), then judged."""
        client = await self.clients.require(params.client_id)
        if client["grant_id"] is None:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{client['name']} has never been authorised: re-authorise it first",
            )
        # A full disk raises DiskFull (an RpcFailure): the refresh was skipped, nothing lost.
        await self.watcher.run_now(client["grant_id"], force=params.force)
        return p.Client.model_validate(await self.clients.require(params.client_id))

    async def _rpc_clients__export(
        self, params: p.ClientsExportParams, ctx: CallContext
    ) -> p.ExportResult:
        """Write the filtered clients to a CSV file with the chosen columns."""
        assert self.store is not None
        unknown = [c for c in params.columns if c not in p.CLIENT_EXPORT_COLUMNS]
        if unknown:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"unknown columns {', '.join(unknown)}; choose from "
                f"{', '.join(p.CLIENT_EXPORT_COLUMNS)}",
            )
        path, created = check_target(params.path, params.overwrite, self.paths, ctx.peer.uid)
        rows: list[dict[str, Any]] = []
        flt = params.filter
        statuses = None
        if flt.status is not None:
            raw = flt.status if isinstance(flt.status, list) else [flt.status]
            statuses = [status.value for status in raw]
        while True:
            total, page = await self.store.list_clients(
                statuses=statuses,
                provider=flt.provider,
                text=flt.text,
                active=flt.active,
                offset=len(rows),
                limit=5000,
            )
            rows += page
            if not page or len(rows) >= total:
                break
        count = write_csv(path, params.columns, ([r[c] for c in params.columns] for r in rows))
        await self.store.add_audit(
            actor=ctx.peer.actor,
            action="clients.export",
            client_id=None,
            detail={"path": str(path), "rows": count},
            now=self.clock.now(),
        )
        return p.ExportResult(
            path=str(path), rows=count, created_folder=str(created) if created else None
        )

    async def _set_active(self, client_ids: list[int], active: bool, actor: str) -> list[int]:
        assert self.store is not None
        for client_id in client_ids:
            await self.clients.require(client_id)
        grants = set()
        for client_id in client_ids:
            client = await self.store.get_client(client_id)
            if client is not None and client["grant_id"] is not None:
                grants.add(client["grant_id"])
        changed = await self.store.set_clients_active(client_ids, active, self.clock.now())
        for client_id in changed:
            await self.store.add_audit(
                actor=actor,
                action="client.reactivated" if active else "client.deactivated",
                client_id=client_id,
                detail={},
                now=self.clock.now(),
            )
        for grant_id in sorted(grants):
            await self.watcher.watch(grant_id)
        return changed

    async def _rpc_clients__deactivate(
        self, params: p.ClientIdsParams, ctx: CallContext
    ) -> p.ClientsChangedResult:
        """Stop watching clients; their data is kept and they are listed as inactive."""
        changed = await self._set_active(params.client_ids, False, ctx.peer.actor)
        return p.ClientsChangedResult(changed=changed)

    async def _rpc_clients__reactivate(
        self, params: p.ClientIdsParams, ctx: CallContext
    ) -> p.ClientsChangedResult:
        """Watch deactivated clients again."""
        changed = await self._set_active(params.client_ids, True, ctx.peer.actor)
        return p.ClientsChangedResult(changed=changed)

    async def _rpc_clients__apply_reimport(
        self, params: p.ReimportApplyParams, ctx: CallContext
    ) -> p.ClientsChangedResult:
        """Apply the differences a finished re-import found (the person reviewed them)."""
        assert self.store is not None
        job = await self.store.get_job(params.job_id)
        if job is None or job["kind"] != p.JobKind.REIMPORT.value:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no re-import job {params.job_id}")
        if not p.JobState(job["state"]).finished:
            raise RpcFailure(ErrorCode.CONFLICT, f"job {params.job_id} has not finished")
        wanted = set(params.client_ids) if params.client_ids is not None else None
        changed = []
        for item in await self.store.items_in_state(params.job_id, p.ItemState.DONE.value):
            changes = (item["result"] or {}).get("changes") or {}
            if not changes or (wanted is not None and item["client_id"] not in wanted):
                continue
            fields = {field: values[1] for field, values in changes.items()}
            async with self.store.transaction():
                await self.store.update_client_details(
                    item["client_id"], self.clock.now(), **fields
                )
                await self.store.add_audit(
                    actor=ctx.peer.actor,
                    action="client.details_updated",
                    client_id=item["client_id"],
                    detail={"job_id": params.job_id, "changes": changes},
                    now=self.clock.now(),
                )
            changed.append(item["client_id"])
        return p.ClientsChangedResult(changed=changed)

    async def _rpc_clients__update(
        self, params: p.ClientUpdateParams, ctx: CallContext
    ) -> p.Client:
        """Correct a client's email or phone: validated, stored normalised (phone E.164);
        an invalid value is refused and nothing is saved."""
        assert self.store is not None
        client = await self.clients.require(params.client_id)
        fields: dict[str, Any] = {}
        if params.email is not None:
            fields["email"] = normalise_email(params.email) if params.email.strip() else None
        if params.phone is not None:
            fields["phone"] = normalise_phone(params.phone) if params.phone.strip() else None
        if fields:
            async with self.store.transaction():
                await self.store.update_client_details(client["id"], self.clock.now(), **fields)
                await self.store.add_audit(
                    actor=ctx.peer.actor,
                    action="client.contact_updated",
                    client_id=client["id"],
                    detail={name: [client[name], value] for name, value in fields.items()},
                    now=self.clock.now(),
                )
        return p.Client.model_validate(await self.clients.require(client["id"]))

    # ------------------------------------------------------------------ RPC: templates

    async def _template(self, template_id: str) -> Template:
        assert self.store is not None
        if template_id in BUILTIN_TEMPLATES:
            return BUILTIN_TEMPLATES[template_id]
        row = await self.store.get_template(int(template_id)) if template_id.isdigit() else None
        if row is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no template {template_id!r}")
        return Template(
            id=str(row["id"]),
            name=row["name"],
            channel=row["channel"],
            subject=row["subject"],
            body=row["body"],
        )

    async def _rpc_templates__list(
        self, params: p.Empty, ctx: CallContext
    ) -> p.TemplatesListResult:
        """The built-in invitations first, then the practice's own, with the placeholders."""
        assert self.store is not None
        own = [await self._template(str(row["id"])) for row in await self.store.list_templates()]
        items = [*BUILTIN_TEMPLATES.values(), *own]
        return p.TemplatesListResult(
            items=[p.InvitationTemplate.model_validate(vars(t)) for t in items],
            placeholders=PLACEHOLDERS,
        )

    async def _rpc_templates__create(
        self, params: p.TemplateCreateParams, ctx: CallContext
    ) -> p.InvitationTemplate:
        """Save a new template; unknown placeholders or a missing {link} are refused."""
        assert self.store is not None
        subject = params.subject if params.channel == p.Channel.EMAIL else params.subject or None
        check_template(params.channel.value, subject, params.body)
        template_id = await self.store.save_template(
            None,
            name=params.name.strip(),
            channel=params.channel.value,
            subject=subject,
            body=params.body,
            now=self.clock.now(),
        )
        await self.store.add_audit(
            actor=ctx.peer.actor,
            action="template.created",
            client_id=None,
            detail={"template_id": template_id, "name": params.name},
            now=self.clock.now(),
        )
        return p.InvitationTemplate.model_validate(vars(await self._template(str(template_id))))

    async def _rpc_templates__update(
        self, params: p.TemplateUpdateParams, ctx: CallContext
    ) -> p.InvitationTemplate:
        """Change a template of the practice's own (the built-in ones stay as they are)."""
        assert self.store is not None
        current = await self._template(params.template_id)
        if current.builtin:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                "the built-in templates cannot be changed: create your own from them",
            )
        subject = params.subject if params.subject is not None else current.subject
        body = params.body if params.body is not None else current.body
        check_template(current.channel, subject, body)
        await self.store.save_template(
            int(current.id),
            name=(params.name or current.name).strip(),
            channel=current.channel,
            subject=subject,
            body=body,
            now=self.clock.now(),
        )
        return p.InvitationTemplate.model_validate(vars(await self._template(current.id)))

    async def _rpc_templates__delete(
        self, params: p.TemplateIdParams, ctx: CallContext
    ) -> p.OkResult:
        """Delete a template of the practice's own."""
        assert self.store is not None
        current = await self._template(params.template_id)
        if current.builtin:
            raise RpcFailure(ErrorCode.CONFLICT, "the built-in templates cannot be deleted")
        await self.store.delete_template(int(current.id))
        return p.OkResult()

    async def _rpc_templates__preview(
        self, params: p.TemplatePreviewParams, ctx: CallContext
    ) -> p.TemplatePreviewResult:
        """Render a saved or unsaved template for one client (example link), with the SMS
        segment count."""
        client = await self.clients.require(params.client_id)
        if params.template_id is not None:
            template = await self._template(params.template_id)
            channel, subject, body = template.channel, template.subject, template.body
        else:
            if params.channel is None or params.body is None:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS, "give a template_id, or a channel and a body"
                )
            channel, subject, body = params.channel.value, params.subject, params.body
        check_template(channel, subject, body)
        bank_names: list[str] = []
        if params.bank_ids:
            try:
                bank_names = await self.invitations.banks.bank_names(params.bank_ids)
            except BanksUnavailable as exc:
                raise RpcFailure(ErrorCode.INVALID_PARAMS, str(exc)) from exc
        values = self._placeholder_values(
            client, bank_names, "https://example.invalid/your-personal-link", None
        )
        rendered_body = render_text(body, values)
        encoding = segments = None
        if channel == "sms":
            encoding, segments = sms_segments(rendered_body)
        return p.TemplatePreviewResult(
            channel=p.Channel(channel),
            subject=render_text(subject, values, one_line=True) if subject else None,
            body=rendered_body,
            sms_encoding=encoding,
            sms_segments=segments,
        )

    def _placeholder_values(
        self,
        client: dict[str, Any],
        bank_names: list[str],
        link: str,
        link_expires: datetime | None,
    ) -> dict[str, str]:
        expires = link_expires or self.clock.now() + timedelta(days=7)
        names = [name for name in bank_names if name]
        joined = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
        return {
            "client_name": client["name"],
            "practice_name": self.config.practice.name,
            "bank_names": joined or "your bank accounts",
            "link": link,
            "link_expires": expires.strftime("%d %b %Y"),
        }

    # ------------------------------------------------------------------ RPC: jobs

    async def _rpc_jobs__start(
        self, params: p.JobStartParams, ctx: CallContext
    ) -> p.JobStartResult:
        """Record a bulk job with one item per client, then run it."""
        assert self.store is not None
        for client_id in params.client_ids:
            await self.clients.require(client_id)
        if len(set(params.client_ids)) != len(params.client_ids):
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "a client is listed twice")
        job_params: dict[str, Any] = {}
        if params.kind == p.JobKind.INVITE:
            job_params = await self._invite_params(
                params.channel, params.template_id, params.bank_ids
            )
        if params.kind == p.JobKind.REAUTHORISE:
            if params.grant_id is None:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    "a re-authorisation job needs the grant_id of the bulk sign-in",
                )
            grant = await self.store.get_grant(params.grant_id)
            if grant is None or grant.state != "active":
                raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no usable grant {params.grant_id}")
            job_params["grant_id"] = params.grant_id
        job_id = await self.jobs.submit(params.kind, params.client_ids, job_params, ctx.peer.actor)
        return p.JobStartResult(job_id=job_id)

    async def _rpc_jobs__list(self, params: p.JobsListParams, ctx: CallContext) -> p.JobsListResult:
        """Jobs, newest first (optionally in one state)."""
        assert self.store is not None
        jobs = await self.store.list_jobs(
            params.state.value if params.state else None, params.limit
        )
        return p.JobsListResult(
            items=[p.Job.model_validate(await self.jobs.describe(job["id"])) for job in jobs]
        )

    async def _rpc_jobs__get(self, params: p.JobGetParams, ctx: CallContext) -> p.Job:
        """One job; with ``items`` its items (filtered by state, paged)."""
        assert self.store is not None
        job = await self.jobs.describe(params.job_id)
        if params.items:
            rows = await self.store.job_items(
                params.job_id,
                params.item_state.value if params.item_state else None,
                params.offset,
                params.limit,
            )
            job["items"] = [
                {**row, "changes": (row["result"] or {}).get("changes")} for row in rows
            ]
        return p.Job.model_validate(job)

    async def _rpc_jobs__cancel(self, params: p.JobIdParams, ctx: CallContext) -> p.Job:
        """Stop a job: items under way finish, the rest are skipped."""
        await self.jobs.cancel(params.job_id)
        return p.Job.model_validate(await self.jobs.describe(params.job_id))

    async def _rpc_jobs__pause(self, params: p.JobIdParams, ctx: CallContext) -> p.Job:
        """Pause a job after the items under way."""
        await self.jobs.pause(params.job_id)
        return p.Job.model_validate(await self.jobs.describe(params.job_id))

    async def _rpc_jobs__resume(self, params: p.JobIdParams, ctx: CallContext) -> p.Job:
        """Resume a paused job."""
        await self.jobs.resume(params.job_id)
        return p.Job.model_validate(await self.jobs.describe(params.job_id))

    async def _rpc_jobs__retry(self, params: p.JobIdParams, ctx: CallContext) -> p.JobStartResult:
        """A new job for the failed items of a finished job."""
        return p.JobStartResult(job_id=await self.jobs.retry(params.job_id, ctx.peer.actor))

    async def _rpc_jobs__export(
        self, params: p.JobExportParams, ctx: CallContext
    ) -> p.ExportResult:
        """Write a job's per-client outcome to a CSV file."""
        assert self.store is not None
        path, created = check_target(params.path, params.overwrite, self.paths, ctx.peer.uid)
        await self.jobs.describe(params.job_id)
        rows = await self.store.job_items(params.job_id, None, 0, 1_000_000)
        header = ["client_id", "name", "outcome", "attempts", "error", "finished_at"]
        count = write_csv(
            path,
            header,
            (
                [r["client_id"], r["name"], r["state"], r["attempts"], r["error"], r["finished_at"]]
                for r in rows
            ),
        )
        return p.ExportResult(
            path=str(path), rows=count, created_folder=str(created) if created else None
        )

    # ------------------------------------------------------------------ RPC: invitations

    async def _invite_params(
        self, channel: p.Channel | None, template_id: str | None, bank_ids: list[str]
    ) -> dict[str, Any]:
        """Check an invitation's channel, template and banks before any job is recorded."""
        if channel is None:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "an invitation needs a channel")
        problem = self.invitations.channel_problem(channel.value)
        if problem:
            raise RpcFailure(ErrorCode.PROVIDER_NOT_CONFIGURED, problem)
        template = await self._template(template_id or f"default-{channel.value}")
        if template.channel != channel.value:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"template {template.name!r} is for {template.channel}, not {channel.value}",
            )
        try:
            await self.invitations.banks.bank_names(bank_ids)
        except BanksUnavailable as exc:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, str(exc)) from exc
        return {"channel": channel.value, "template_id": template.id, "bank_ids": bank_ids}

    async def _rpc_invites__send(
        self, params: p.InviteParams, ctx: CallContext
    ) -> p.JobStartResult:
        """Invite one client by email or SMS (as a job of one: sent at most once)."""
        client = await self.clients.require(params.client_id)
        address = client["email"] if params.channel == p.Channel.EMAIL else client["phone"]
        if not address:
            what = "email address" if params.channel == p.Channel.EMAIL else "mobile number"
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS, f"{client['name']} has no {what}: add it first"
            )
        job_params = await self._invite_params(params.channel, params.template_id, params.bank_ids)
        job_id = await self.jobs.submit(
            p.JobKind.INVITE, [client["id"]], job_params, ctx.peer.actor
        )
        return p.JobStartResult(job_id=job_id)

    async def _rpc_invites__list(
        self, params: p.InvitesListParams, ctx: CallContext
    ) -> p.InvitesListResult:
        """Invitations newest first (one client's timeline when client_id is given)."""
        assert self.store is not None
        if params.client_id is not None:
            await self.clients.require(params.client_id)
        rows = await self.store.list_invitations(params.client_id, None, params.limit)
        return p.InvitesListResult(items=[p.Invitation.model_validate(row) for row in rows])

    async def _rpc_invites__resend(
        self, params: p.InvitationIdParams, ctx: CallContext
    ) -> p.JobStartResult:
        """Send an invitation again with a fresh link (only the newest link works)."""
        assert self.store is not None
        invitation = await self.store.get_invitation(params.invitation_id)
        if invitation is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no invitation {params.invitation_id}")
        job_params = await self._invite_params(
            p.Channel(invitation["channel"]), invitation["template_id"], invitation["bank_ids"]
        )
        job_id = await self.jobs.submit(
            p.JobKind.INVITE, [invitation["client_id"]], job_params, ctx.peer.actor
        )
        return p.JobStartResult(job_id=job_id)

    async def _rpc_invites__follow_up(self, params: p.Empty, ctx: CallContext) -> p.FollowUpResult:
        """Follow up open invitations now (the daemon also does it on its own)."""
        return p.FollowUpResult(**await self.invitations.follow_up())

    async def _rpc_banks__connections(
        self, params: p.ClientIdParams, ctx: CallContext
    ) -> p.BankConnectionsResult:
        """The client's bank connections as last followed up; broken ones need a reconnect."""
        assert self.store is not None
        await self.clients.require(params.client_id)
        names: dict[str, str] = {}
        with contextlib.suppress(BanksUnavailable):
            names = {b["id"]: b["name"] for b in await self.invitations.banks.institutions()}
        rows = await self.store.bank_connections(params.client_id)
        return p.BankConnectionsResult(
            items=[
                p.BankConnection(
                    id=row["id"],
                    institution_id=row["institution_id"],
                    bank_name=names.get(row["institution_id"], row["institution_id"]),
                    status=row["status"],
                    needs_reconnect=row["status"] == "invalid",
                    updated_at=row["updated_at"],
                )
                for row in rows
            ]
        )

    async def _rpc_banks__list(self, params: p.Empty, ctx: CallContext) -> p.BanksListResult:
        """The banks a client can be asked to connect."""
        try:
            banks = await self.invitations.banks.institutions()
        except BanksUnavailable as exc:
            raise RpcFailure(ErrorCode.PROVIDER_UNAVAILABLE, str(exc)) from exc
        return p.BanksListResult(items=[p.Bank.model_validate(bank) for bank in banks])

    async def _rpc_channels__set_secret(
        self, params: p.ChannelSecretParams, ctx: CallContext
    ) -> p.OkResult:
        """Seal the SMTP password, SMS token or bank-feed API key; never returned."""
        assert self.store is not None and self.vault is not None
        sealed = self.vault.encrypt(params.secret.encode(), f"channel-secret:{params.channel}")
        await self.store.put_secret(f"channel:{params.channel}", sealed, self.clock.now())
        secret = params.secret
        if params.channel == "email":
            await self.invitations.email.close()
            self.invitations.email = EmailChannel(self.config.email, secret)
        elif params.channel == "sms":
            self.invitations.sms = SmsChannel(self.config.sms, secret)
        else:
            await self.invitations.banks.close()
            self.invitations.banks = BankFeeds(self.config.banks, secret)
        await self.store.add_audit(
            actor=ctx.peer.actor,
            action="channel.secret_set",
            client_id=None,
            detail={"channel": params.channel},
            now=self.clock.now(),
        )
        return p.OkResult()

    # ------------------------------------------------------------------ RPC: notifications

    async def _rpc_notifications__list(
        self, params: p.NotificationsListParams, ctx: CallContext
    ) -> p.NotificationsListResult:
        """Stored notifications, newest first, and how many are unread."""
        return p.NotificationsListResult.model_validate(
            await self.notifier.list(params.unread_only, params.limit)
        )

    async def _rpc_notifications__ack(
        self, params: p.NotificationsAckParams, ctx: CallContext
    ) -> p.NotificationsAckResult:
        """Mark notifications read (all unread ones when no ids are given)."""
        return p.NotificationsAckResult(unread=await self.notifier.ack(params.ids))

    async def _rpc_clients__check(
        self, params: p.ClientsCheckParams, ctx: CallContext
    ) -> p.ClientsCheckResult:
        """Verify connections now; a provider outage leaves statuses as they were."""
        assert self.store is not None
        result = await self.clients.check(params.client_ids)
        ids = params.client_ids if params.client_ids is not None else await self.store.client_ids()
        grant_ids = set()
        for client_id in ids:
            client = await self.store.get_client(client_id)
            if client is not None and client["grant_id"] is not None:
                grant_ids.add(client["grant_id"])
        for grant_id in sorted(grant_ids):
            await self.watcher.watch(grant_id)  # a grant found revoked stops being watched
        return p.ClientsCheckResult(**result)

    # ------------------------------------------------------------------ RPC: auth

    async def _rpc_auth__begin(
        self, params: p.AuthBeginParams, ctx: CallContext
    ) -> p.AuthBeginResult:
        """Open a sign-in: returns the address to open and where the redirect will land."""
        adapter = self._adapter(params.provider)
        if params.client_id is not None:
            client = await self.clients.require(params.client_id)
            if client["provider"] != params.provider:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"{client['name']} is connected through {client['provider']}, "
                    f"not {params.provider}",
                )
        session = await self.auth.begin(
            params.provider,
            params.client_id,
            ctx.peer.actor,
            lambda redirect_uri, state, verifier: adapter.authorization_url(
                redirect_uri=redirect_uri, state=state, code_verifier=verifier
            ),
        )
        warning = None
        if adapter.definition.kind == "xero":
            warning = would_exceed(await self._usage(params.provider), params.new_connections)
        return p.AuthBeginResult(
            session_id=session.id,
            authorize_url=session.authorize_url,
            redirect_uri=session.redirect_uri,
            expires_at=to_iso(session.expires_at) or "",
            callback_port=self.auth.callback_port,
            warning=warning,
        )

    async def _rpc_auth__complete(
        self, params: p.AuthCompleteParams, ctx: CallContext
    ) -> p.AuthCompleteResult:
        """Finish a sign-in with the address the browser ended on (pasted by the person)."""
        result = await self.auth.complete(params.session_id, params.redirect_url)
        return p.AuthCompleteResult.model_validate(result)

    async def _rpc_auth__status(
        self, params: p.AuthSessionParams, ctx: CallContext
    ) -> p.AuthStatusResult:
        """Where a sign-in stands: pending, completed (with its result), failed, expired."""
        return p.AuthStatusResult.model_validate(self.auth.get(params.session_id).public())

    async def _rpc_auth__cancel(
        self, params: p.AuthSessionParams, ctx: CallContext
    ) -> p.AuthStatusResult:
        """Abandon a pending sign-in; its redirect will no longer be accepted."""
        session = await self.auth.cancel(params.session_id)
        return p.AuthStatusResult.model_validate(session.public())

    # ------------------------------------------------------------------ RPC: grants

    async def _rpc_grants__list(
        self, params: p.GrantsListParams, ctx: CallContext
    ) -> p.GrantsListResult:
        """Stored authorisations (never their tokens); ``unused`` marks a sign-in no client
        was ever bound to, such as one where the person ticked another business."""
        assert self.store is not None
        rows = await self.store.list_grants(params.unused_only)
        return p.GrantsListResult(items=[p.GrantInfo.model_validate(row) for row in rows])

    async def _rpc_grants__revoke(
        self, params: p.GrantIdParams, ctx: CallContext
    ) -> p.GrantRevokeResult:
        """Revoke an unused sign-in at the provider, then stop watching it. A grant that
        clients use is refused: re-authorise or deactivate those clients instead."""
        assert self.store is not None
        grant = await self.store.get_grant(params.grant_id)
        if grant is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no grant with id {params.grant_id}")
        if grant.state == "revoked":
            return p.GrantRevokeResult(
                grant_id=grant.id, state=grant.state, message="It was already revoked."
            )
        users = await self.store.clients_of_grant(grant.id)
        if users or grant.bound_at is not None:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"Grant {grant.id} is not an unused sign-in: clients were bound to it "
                f"({', '.join(c['name'] for c in users[:5]) or 'now deactivated'}). Nothing "
                "was changed; re-authorise or deactivate those clients instead",
            )
        adapter = self._adapter(grant.provider)
        _, tokens = await self.grants.tokens(grant.id)
        if tokens.refresh_token:
            try:
                await adapter.revoke(tokens.refresh_token)
            except ProviderError as exc:
                failure = classify_failure(exc)
                assert failure is not None
                raise RpcFailure(
                    FAILURE_ERROR_CODES[failure.kind],
                    f"{failure.reason}; nothing was changed, try again",
                ) from exc
        reason = f"revoked by {ctx.peer.actor} as an unused sign-in"
        await self.store.mark_grant_revoked(grant.id, reason)
        await self.watcher.watch(grant.id)
        await self.store.add_audit(
            actor=ctx.peer.actor,
            action="grant.revoked",
            client_id=None,
            detail={"grant_id": grant.id, "provider": grant.provider},
            now=self.clock.now(),
        )
        message = f"Revoked at {adapter.definition.display_name}."
        if adapter.definition.kind == "xero":
            message += (
                " Xero also ends every other connection the same Xero user gave clientlink: "
                "clients connected through that user's other sign-ins will show needs_reauth "
                "at their next check."
            )
        return p.GrantRevokeResult(grant_id=grant.id, state="revoked", message=message)

    # ------------------------------------------------------------------ RPC: events, audit

    async def _rpc_events__subscribe(
        self, params: p.EventsSubscribeParams, ctx: CallContext
    ) -> p.EventsSubscribeResult:
        """Push events to this connection from now on (and replay after ``since_seq``)."""
        topics = set(params.topics) if params.topics else None
        subscription, replayed, gap = self.events.subscribe(
            ctx.connection.send_event, topics, params.since_seq
        )
        ctx.connection.subscriptions.append(subscription)
        return p.EventsSubscribeResult(seq=self.events.last_seq, replayed=replayed, gap=gap)

    async def _rpc_audit__list(
        self, params: p.AuditListParams, ctx: CallContext
    ) -> p.AuditListResult:
        """Who did what to which client, newest first."""
        assert self.store is not None
        rows = await self.store.list_audit(params.client_id, params.limit)
        return p.AuditListResult(items=[p.AuditEntry.model_validate(row) for row in rows])


def _default_desktop(config: Config) -> DesktopChannel | None:
    """Desktop notifications through the session bus (None when switched off)."""
    if not config.notifications.desktop:
        return None
    return LazyDesktop(config.notifications.open_command)
