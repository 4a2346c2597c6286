"""``clients.*``: list, read, import, check, export and correct the practice's clients."""

from __future__ import annotations

from typing import Any

from clientlink.common import protocol as p
from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.client_import import ClientImporter
from clientlink.daemon.clients import ClientService, store_filter
from clientlink.daemon.clock import Clock
from clientlink.daemon.export import (
    all_clients,
    caller_may_read,
    check_source,
    check_target,
    write_csv,
)
from clientlink.daemon.holds import ClientHolds
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import ClientRow, Store
from clientlink.daemon.watcher import Watcher


class ClientsApi(Api):
    def __init__(
        self,
        clients: ClientService,
        watcher: Watcher,
        store: Store,
        paths: Paths,
        clock: Clock,
        providers: ConfiguredProviders,
        importer: ClientImporter,
        staff: StaffDirectory,
        holds: ClientHolds,
    ) -> None:
        self._staff = staff
        self._holds = holds
        self._providers = providers
        self._importer = importer
        self._clients = clients
        self._watcher = watcher
        self._store = store
        self._paths = paths
        self._clock = clock

    @handles("clients.list")
    async def list(self, params: p.ClientsListParams, ctx: CallContext) -> p.ClientsListResult:
        """Clients matching the filter (status, provider, text, active), ordered by name."""
        total, rows = await self._store.list_clients(
            **store_filter(params.filter, ctx.peer.actor),
            offset=params.offset,
            limit=params.limit,
        )
        return p.ClientsListResult(
            total=total,
            items=[self._client(row) for row in rows],
            counts=await self._store.count_clients_by_status(active=True),
        )

    @handles("clients.get")
    async def get(self, params: p.ClientIdParams, ctx: CallContext) -> p.Client:
        """One client by id."""
        return self._client(await self._clients.require(params.client_id))

    @handles("clients.import")
    async def import_(
        self, params: p.ClientsImportParams, ctx: CallContext
    ) -> p.ClientsImportResult:
        """Create clients from a grant's tenants (each verified with one provider call)."""
        result = await self._clients.import_tenants(
            params.grant_id, params.tenant_ids, ctx.peer.actor, set(params.as_new)
        )
        await self._watcher.watch(params.grant_id)
        return p.ClientsImportResult(**result)

    @handles("clients.attach")
    async def attach(self, params: p.ClientAttachParams, ctx: CallContext) -> p.Client:
        """Attach a business new to one software to the client that has its ABN under
        another (it changed software), instead of importing a duplicate."""
        client = await self._clients.require(params.client_id)
        async with self._holds.lock:  # no job or sign-in takes the client meanwhile
            held = (await self._holds.held([client])).get(client.id)
            if held is not None:
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"{client.name} was not attached: {held.doing(client.name)}",
                    held.detail(),
                )
            attached = await self._clients.attach_tenant(
                params.grant_id, params.tenant_id, client.id, ctx.peer.actor
            )
        await self._watcher.watch(params.grant_id)
        if client.grant_id is not None and client.grant_id != params.grant_id:
            await self._watcher.watch(client.grant_id)  # it may rest on no client now
        return self._client(attached)

    @handles("clients.check")
    async def check(self, params: p.ClientsCheckParams, ctx: CallContext) -> p.ClientsCheckResult:
        """Verify connections now; a provider outage leaves statuses as they were."""
        result = await self._clients.check(params.client_ids)
        ids = params.client_ids if params.client_ids is not None else await self._store.client_ids()
        grant_ids = set()
        for client_id in ids:
            client = await self._store.get_client(client_id)
            if client is not None and client.grant_id is not None:
                grant_ids.add(client.grant_id)
        for grant_id in sorted(grant_ids):
            await self._watcher.watch(grant_id)  # a grant found revoked stops being watched
        return p.ClientsCheckResult(**result)

    @handles("clients.history")
    async def history(
        self, params: p.ClientHistoryParams, ctx: CallContext
    ) -> p.ClientHistoryResult:
        """A connection's history, newest first: status changes and re-authorisations."""
        await self._clients.require(params.client_id)
        rows = await self._store.client_history(params.client_id, params.limit)
        return p.ClientHistoryResult(items=[r.to_protocol() for r in rows])

    @handles("clients.refresh")
    async def refresh(self, params: p.ClientRefreshParams, ctx: CallContext) -> p.Client:
        """Check the client's authorisation now, as the watcher would: refreshed when its
        access token is near its end (or always with ``force``), then judged."""
        client = await self._clients.require(params.client_id)
        if client.grant_id is None:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{client.name} has never been authorised: re-authorise it first",
            )
        # A full disk raises DiskFull (an RpcFailure): the refresh was skipped, nothing lost.
        await self._watcher.run_now(client.grant_id, force=params.force)
        return self._client(await self._clients.require(params.client_id))

    @handles("clients.export")
    async def export(self, params: p.ClientsExportParams, ctx: CallContext) -> p.ExportResult:
        """Write the filtered clients to a CSV file with the chosen columns."""
        unknown = [c for c in params.columns if c not in p.CLIENT_EXPORT_COLUMNS]
        if unknown:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"unknown columns {', '.join(unknown)}; choose from "
                f"{', '.join(p.CLIENT_EXPORT_COLUMNS)}",
            )
        path, created = check_target(params.path, params.overwrite, self._paths, ctx.peer.uid)
        rows = await all_clients(self._store, **store_filter(params.filter, ctx.peer.actor))
        if params.machine_names:
            header = list(params.columns)
            cells = ([getattr(r, c) for c in params.columns] for r in rows)
        else:
            header = [p.CLIENT_EXPORT_LABELS[c] for c in params.columns]
            cells = ([self._in_words(r, c) for c in params.columns] for r in rows)
        count = write_csv(path, header, cells)
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="clients.export",
            client_id=None,
            detail={"path": str(path), "rows": count},
            now=self._clock.now(),
        )
        return p.ExportResult(
            path=str(path), rows=count, created_folder=str(created) if created else None
        )

    @handles("clients.import_file")
    async def import_file(
        self, params: p.ClientsImportFileParams, ctx: CallContext
    ) -> p.ClientsImportFileResult:
        """Check every row of a CSV or XLSX file of clients and say what would be added,
        matched or refused (a page of rows); with ``confirm``, import exactly the file
        previewed (its ``digest``), all of it in one transaction or nothing."""
        path = check_source(params.path, self._paths, ctx.peer.uid)
        outcome = await self._importer.run(
            path,
            caller_may_read(ctx.peer.uid),
            confirm=params.confirm,
            digest=params.digest,
            skip_refused=params.skip_refused,
            verdict=params.verdict,
            offset=params.offset,
            limit=params.limit,
            actor=ctx.peer.actor,
        )
        return p.ClientsImportFileResult(
            path=str(path),
            digest=outcome.digest,
            kind=outcome.kind,
            columns=outcome.columns,
            counts=outcome.counts,
            total=outcome.filtered,
            rows=[row.to_protocol() for row in outcome.rows],
            imported=outcome.imported,
            created=outcome.created,
            updated=outcome.updated,
        )

    def _client(self, row: ClientRow) -> p.Client:
        """The client as answered: with its owner in words (staff member, provider user)."""
        definition = self._providers.definitions.get(row.provider)
        software = definition.display_name if definition is not None else row.provider
        return self._staff.client(row.to_protocol(), software)

    def _in_words(self, row: ClientRow, column: str) -> Any:
        """A client's cell as people say it: a status by its label (``Needs re-auth``), the
        software by its name (``Xero``)."""
        value = getattr(row, column)
        if column == "status" and value in {status.value for status in p.ConnectionStatus}:
            return p.ConnectionStatus(value).label
        if column == "provider" and value in self._providers.definitions:
            return self._providers.definitions[value].display_name
        return value

    @handles("clients.deactivate")
    async def deactivate(
        self, params: p.ClientIdsParams, ctx: CallContext
    ) -> p.ClientsChangedResult:
        """Stop watching clients; their data is kept and they are listed as inactive."""
        return await self._set_active(params.client_ids, False, ctx.peer.actor)

    @handles("clients.reactivate")
    async def reactivate(
        self, params: p.ClientIdsParams, ctx: CallContext
    ) -> p.ClientsChangedResult:
        """Watch deactivated clients again."""
        return await self._set_active(params.client_ids, True, ctx.peer.actor)

    async def _set_active(
        self, client_ids: list[int], active: bool, actor: str
    ) -> p.ClientsChangedResult:
        changed, grants = await self._clients.set_active(client_ids, active, actor)
        for grant_id in sorted(grants):
            await self._watcher.watch(grant_id)
        return p.ClientsChangedResult(changed=changed)

    @handles("clients.apply_reimport")
    async def apply_reimport(
        self, params: p.ReimportApplyParams, ctx: CallContext
    ) -> p.ClientsChangedResult:
        """Apply the differences a finished re-import found (the person reviewed them)."""
        changed = await self._clients.apply_reimport(
            params.job_id, params.client_ids, ctx.peer.actor
        )
        return p.ClientsChangedResult(changed=changed)

    @handles("clients.update")
    async def update(self, params: p.ClientUpdateParams, ctx: CallContext) -> p.Client:
        """Correct a client's email or phone: validated, stored normalised (phone E.164);
        an invalid value is refused and nothing is saved."""
        client = await self._clients.require(params.client_id)
        await self._clients.update_contact(client, params.email, params.phone, ctx.peer.actor)
        return self._client(await self._clients.require(client.id))
