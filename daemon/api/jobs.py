"""``jobs.*``: bulk work recorded item by item — start, follow, pause, retry, export."""

from __future__ import annotations

from typing import Any

from clientlink.common import protocol as p
from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clients import ClientService
from clientlink.daemon.export import check_target, write_csv
from clientlink.daemon.invitations import Invitations
from clientlink.daemon.jobs import JobEngine
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store


class JobsApi(Api):
    def __init__(
        self,
        jobs: JobEngine,
        clients: ClientService,
        invitations: Invitations,
        store: Store,
        paths: Paths,
    ) -> None:
        self._jobs = jobs
        self._clients = clients
        self._invitations = invitations
        self._store = store
        self._paths = paths

    @handles("jobs.start")
    async def start(self, params: p.JobStartParams, ctx: CallContext) -> p.JobStartResult:
        """Record a bulk job with one item per client, then run it."""
        for client_id in params.client_ids:
            await self._clients.require(client_id)
        if len(set(params.client_ids)) != len(params.client_ids):
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "a client is listed twice")
        job_params: dict[str, Any] = {}
        if params.kind == p.JobKind.INVITE:
            job_params = await self._invitations.check_job_params(
                params.channel, params.template_id, params.bank_ids
            )
        if params.kind == p.JobKind.REAUTHORISE:
            if params.grant_id is None:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    "a re-authorisation job needs the grant_id of the bulk sign-in",
                )
            grant = await self._store.get_grant(params.grant_id)
            if grant is None or grant.state != "active":
                raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no usable grant {params.grant_id}")
            job_params["grant_id"] = params.grant_id
        job_id = await self._jobs.submit(params.kind, params.client_ids, job_params, ctx.peer.actor)
        return p.JobStartResult(job_id=job_id)

    @handles("jobs.list")
    async def list(self, params: p.JobsListParams, ctx: CallContext) -> p.JobsListResult:
        """Jobs, newest first (optionally in one state)."""
        jobs = await self._store.list_jobs(
            params.state.value if params.state else None, params.limit
        )
        return p.JobsListResult(items=[await self._jobs.describe(job.id) for job in jobs])

    @handles("jobs.get")
    async def get(self, params: p.JobGetParams, ctx: CallContext) -> p.Job:
        """One job; with ``items`` its items (filtered by state, paged)."""
        job = await self._jobs.describe(params.job_id)
        if params.items:
            rows = await self._store.job_items(
                params.job_id,
                params.item_state.value if params.item_state else None,
                params.offset,
                params.limit,
            )
            job = job.model_copy(update={"items": [row.to_protocol() for row in rows]})
        return job

    @handles("jobs.cancel")
    async def cancel(self, params: p.JobIdParams, ctx: CallContext) -> p.Job:
        """Stop a job: items under way finish, the rest are skipped."""
        await self._jobs.cancel(params.job_id)
        return await self._jobs.describe(params.job_id)

    @handles("jobs.pause")
    async def pause(self, params: p.JobIdParams, ctx: CallContext) -> p.Job:
        """Pause a job after the items under way."""
        await self._jobs.pause(params.job_id)
        return await self._jobs.describe(params.job_id)

    @handles("jobs.resume")
    async def resume(self, params: p.JobIdParams, ctx: CallContext) -> p.Job:
        """Resume a paused job."""
        await self._jobs.resume(params.job_id)
        return await self._jobs.describe(params.job_id)

    @handles("jobs.retry")
    async def retry(self, params: p.JobIdParams, ctx: CallContext) -> p.JobStartResult:
        """A new job for the failed items of a finished job."""
        return p.JobStartResult(job_id=await self._jobs.retry(params.job_id, ctx.peer.actor))

    @handles("jobs.export")
    async def export(self, params: p.JobExportParams, ctx: CallContext) -> p.ExportResult:
        """Write a job's per-client outcome to a CSV file."""
        path, created = check_target(params.path, params.overwrite, self._paths, ctx.peer.uid)
        await self._jobs.describe(params.job_id)
        rows = await self._store.job_items(params.job_id, None, 0, 1_000_000)
        if params.machine_names:
            header = ["client_id", "name", "outcome", "attempts", "error", "finished_at"]
        else:
            header = ["Client id", "Name", "Outcome", "Attempts", "Error", "Finished at"]

        def outcome(state: str) -> str:
            return state if params.machine_names else state.capitalize()

        count = write_csv(
            path,
            header,
            (
                [r.client_id, r.name, outcome(r.state), r.attempts, r.error, r.finished_at]
                for r in rows
            ),
        )
        return p.ExportResult(
            path=str(path), rows=count, created_folder=str(created) if created else None
        )
