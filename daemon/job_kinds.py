"""The job kinds: what a bulk re-authorisation and a re-import do to each client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from clientlink.daemon.clients import ClientService, provider_fields
from clientlink.daemon.grants import FailureKind, classify_failure
from clientlink.daemon.jobs import Finish, ItemFailed, ItemRetry
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.sign_in_plan import SignInPlan
from clientlink.daemon.store import ClientRow, JobItemRow, JobRow, Store, TenantRow

REVIEWED_FIELDS = ("name", "legal_name", "abn", "entity_type", "email")
"""What a re-import compares with the provider's answer (see clients.provider_fields)."""


async def _verify(clients: ClientService, client: ClientRow, grant_id: int, tenant_id: str) -> Any:
    """The verifying call, with provider failures turned into retry or failure."""
    try:
        return await clients.verify(client.provider, grant_id, tenant_id)
    except Exception as exc:
        failure = classify_failure(exc)
        if failure is None:
            raise
        if failure.kind == FailureKind.RATE_LIMITED:
            raise ItemRetry(failure.reason, after=failure.retry_after or 5.0) from exc
        if failure.kind == FailureKind.OUTAGE:
            raise ItemRetry(failure.reason) from exc
        raise ItemFailed(failure.reason) from exc


class ReauthoriseJob:
    """Bind each client's business to the grant of one bulk sign-in, verified by one call."""

    concurrency = 10  # the provider limiter decides the real pace per tenant and app

    def __init__(
        self,
        store: Store,
        clients: ClientService,
        watch: Callable[[int], Awaitable[None]],
        on_takeover: Callable[[JobRow], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._clients = clients
        self._watch = watch
        self._on_takeover = on_takeover
        """After a takeover job (``takeover_of``): its final audit entry."""
        self._tenants: dict[int, dict[str, TenantRow]] = {}
        """The tenants of the grants running jobs use, by tenant id: read once per grant
        (a grant's tenants are written with it and never change)."""

    async def _tenants_of(self, grant_id: int) -> dict[str, TenantRow]:
        tenants = self._tenants.get(grant_id)
        if tenants is None:
            rows = await self._store.grant_tenants(grant_id)
            tenants = self._tenants[grant_id] = {tenant.tenant_id: tenant for tenant in rows}
        return tenants

    async def run(self, job: JobRow, item: JobItemRow, finish: Finish) -> None:
        plan = SignInPlan.of(job.params)
        if plan is None:
            grant_id = job.params["grant_id"]
        else:  # one sign-in per business: this item's business's (the engine waited for it)
            step = plan.step_at(item.position)
            if step is None or step.grant_id is None:
                raise ItemFailed("no sign-in was given for this client's business")
            grant_id = step.grant_id
        client = item.client  # read with the claim
        if client is None:
            raise ItemFailed("the client no longer exists")
        tenants = await self._tenants_of(grant_id)
        tenant = tenants.get(client.tenant_id or "")
        if tenant is None:  # its provider id may have changed: found by ABN, or why not
            tenant, why = await self._clients.tenant_of(client, list(tenants.values()))
            if tenant is None:
                raise ItemFailed(
                    f"{client.name} was not among the businesses selected at this sign-in"
                    + (f" ({why})" if why else "")
                )
        details = await _verify(self._clients, client, grant_id, tenant.tenant_id)
        try:
            await self._clients.commit_reauthorisation(
                client,
                grant_id,
                details,
                job.actor,
                outcome=finish.statements({"grant_id": grant_id}),
                tenant_id=tenant.tenant_id,
                note=_takeover_note(job, client),
            )
        except RpcFailure as failure:  # the entity is bound to another client meanwhile
            raise ItemFailed(failure.message) from None

    async def recover(self, job: JobRow, item: JobItemRow) -> str:
        # The re-authorisation and the item's outcome commit together: an item still
        # "running" did not happen, and doing it is safe.
        return "redo"

    async def finished(self, job: JobRow) -> None:
        self._tenants.clear()  # read again by the next job (cheap: once per grant)
        plan = SignInPlan.of(job.params)
        if plan is None:
            await self._watch(job.params["grant_id"])
        else:
            for step in plan.steps:
                if step.grant_id is not None:
                    await self._watch(step.grant_id)
        if self._on_takeover is not None and job.params.get("takeover_of"):
            await self._on_takeover(job)


def _takeover_note(job: JobRow, client: ClientRow) -> dict[str, Any] | None:
    """What a takeover's re-authorisation adds to its audit: whose, and from which grant."""
    if not job.params.get("takeover_of"):
        return None
    return {"takeover_of": job.params["takeover_of"], "previous_grant_id": client.grant_id}


class ReimportJob:
    """Fetch each client's details from the provider; differences are kept for review."""

    concurrency = 10

    def __init__(self, store: Store, clients: ClientService) -> None:
        self._store = store
        self._clients = clients

    async def run(self, job: JobRow, item: JobItemRow, finish: Finish) -> None:
        client = item.client  # read with the claim
        if client is None:
            raise ItemFailed("the client no longer exists")
        if client.grant_id is None or client.tenant_id is None:
            raise ItemFailed(f"{client.name} has never been authorised: re-authorise it")
        details = await _verify(self._clients, client, client.grant_id, client.tenant_id)
        provider_values = provider_fields(details)
        changes = {
            field: [getattr(client, field), provider_values[field]]
            for field in REVIEWED_FIELDS
            if provider_values[field] and provider_values[field] != getattr(client, field)
        }
        await finish({"changes": changes})

    async def recover(self, job: JobRow, item: JobItemRow) -> str:
        return "redo"  # reading is always safe to repeat

    async def finished(self, job: JobRow) -> None:
        return None
