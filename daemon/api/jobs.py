"""``jobs.*``: bulk work recorded item by item — start, follow, pause, retry, export."""

from __future__ import annotations

from typing import Any

from clientlink.common import protocol as p
from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clients import ClientService
from clientlink.daemon.export import check_target, write_csv
from clientlink.daemon.handover import Handover
from clientlink.daemon.invitations import Invitations
from clientlink.daemon.jobs import JobEngine
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.sign_in_plan import plan_for
from clientlink.daemon.store import ClientRow, Store


class JobsApi(Api):
    def __init__(
        self,
        jobs: JobEngine,
        clients: ClientService,
        invitations: Invitations,
        store: Store,
        paths: Paths,
        providers: ConfiguredProviders,
        handover: Handover,
    ) -> None:
        self._handover = handover
        self._providers = providers
        self._jobs = jobs
        self._clients = clients
        self._invitations = invitations
        self._store = store
        self._paths = paths

    @handles("jobs.start")
    async def start(self, params: p.JobStartParams, ctx: CallContext) -> p.JobStartResult:
        """Record a bulk job with one item per client, then run it. A re-authorisation
        leaves out (as skipped, saying who holds them) the clients another job or sign-in
        is re-authorising; ``takeover_of`` makes it a handover of that person's connections."""
        clients = [await self._clients.require(client_id) for client_id in params.client_ids]
        if len(set(params.client_ids)) != len(params.client_ids):
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "a client is listed twice")
        if params.takeover_of is not None and params.kind != p.JobKind.REAUTHORISE:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                "takeover_of is for a re-authorisation job (kind reauthorise) only",
            )
        if params.kind == p.JobKind.REAUTHORISE:
            return await self._start_reauthorisation(params, clients, ctx)
        job_params: dict[str, Any] = {}
        if params.kind == p.JobKind.INVITE:
            job_params = await self._invitations.check_job_params(
                params.channel, params.template_id, params.bank_ids
            )
        job_id = await self._jobs.submit(params.kind, params.client_ids, job_params, ctx.peer.actor)
        return p.JobStartResult(job_id=job_id)

    async def _start_reauthorisation(
        self, params: p.JobStartParams, clients: list[ClientRow], ctx: CallContext
    ) -> p.JobStartResult:
        takeover: dict[str, Any] = {}
        if params.takeover_of is not None:
            takeover = await self._handover.takeover_params(params.takeover_of, clients)
        grant_params: dict[str, Any] | None = None
        if params.grant_id is None:
            if self._per_business(clients) is None:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    "a re-authorisation job needs the grant_id of the bulk sign-in",
                )
        else:
            grant = await self._store.get_grant(params.grant_id)
            if grant is None or grant.state != "active":
                raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no usable grant {params.grant_id}")
            grant_params = {"grant_id": params.grant_id}

        def build(free: list[ClientRow]) -> tuple[dict[str, Any], list[int]]:
            if grant_params is not None:
                return {**grant_params, **takeover}, [client.id for client in free]
            plan, client_ids = plan_for(free[0].provider, free)
            return {**plan.as_params(), **takeover}, client_ids

        job_id, skipped = await self._jobs.submit_reauthorisation(clients, build, ctx.peer.actor)
        if takeover:
            await self._handover.record_takeover_started(job_id, takeover, clients, skipped, ctx)
        return p.JobStartResult(job_id=job_id, skipped=skipped)

    def _per_business(self, clients: list[ClientRow]) -> str | None:
        """The software, when these clients are re-authorised with one sign-in per business
        (a job that walks through them); None for software whose one sign-in covers all."""
        providers = sorted({client.provider for client in clients})
        adapter = self._providers.require(providers[0])
        if not adapter.definition.one_grant_per_business:
            return None
        display = adapter.definition.display_name
        if len(providers) > 1:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"a re-authorisation job is for one software's clients; these are in "
                f"{', '.join(providers)}: start one job per software",
            )
        unplaced = [client for client in clients if not client.business]
        if unplaced:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"{unplaced[0].name} has no {display} business recorded, and {display} signs "
                "in to one business at a time: re-import it, or re-authorise it on its own",
            )
        return adapter.definition.kind

    @handles("jobs.add_sign_in")
    async def add_sign_in(self, params: p.JobAddSignInParams, ctx: CallContext) -> p.Job:
        """Give a waiting re-authorisation the sign-in to the business it waits for."""
        grant = await self._store.get_grant(params.grant_id)
        if grant is None:
            await self._jobs.describe(params.job_id)  # an unknown job is said first
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no grant {params.grant_id}")
        return await self._jobs.add_sign_in(params.job_id, grant)

    @handles("jobs.skip_sign_in")
    async def skip_sign_in(self, params: p.JobSkipSignInParams, ctx: CallContext) -> p.Job:
        """Skip the business a re-authorisation waits for: its clients fail, it moves on."""
        return await self._jobs.skip_sign_in(params.job_id, params.business)

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
