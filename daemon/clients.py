"""Clients and their connections: import, re-authorise, verify, and status changes.

Every status change goes through :meth:`ClientService.set_status`, which writes it and
announces it, so the database, events and the TUI never disagree.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.protocol import (
    ClientReauthorised,
    ClientsImported,
    ClientStatusChanged,
    ConnectionStatus,
    ErrorCode,
)
from clientlink.common.timeutil import to_iso
from clientlink.common.wording import agree, plural
from clientlink.daemon.alerts import ALERTING
from clientlink.daemon.clock import Clock
from clientlink.daemon.contacts import normalise_email, normalise_phone
from clientlink.daemon.events import EventBus
from clientlink.daemon.grants import FailureKind, Grants, classify_failure
from clientlink.daemon.providers import OrganisationDetails, ProviderAdapter
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.store import (
    ClientRow,
    Store,
    TenantRow,
    Unit,
    add_audit_sync,
    add_history_sync,
    find_by_tenant_sync,
    set_status_sync,
    update_details_sync,
)

log = logging.getLogger(__name__)

VERIFY_CONCURRENCY = 5
MATCH_CHUNK = 500  # the store's IN (...) lists take at most this many at a time

# Told of every status write: (client, old status, new status, reason).
Transition = Callable[[ClientRow, str | None, ConnectionStatus, str | None], None]
# Awaited inside the transaction that changed a status: (client id, new status, reason).
RecordChange = Callable[[int, ConnectionStatus, str | None], Awaitable[None]]


@dataclass(frozen=True)
class TenantMatch:
    """The client a sign-in's tenant belongs to (see :meth:`ClientService.match_tenants`)."""

    client: ClientRow | None
    note: str | None = None
    """``matched by ABN: fund id changed from X to Y``, or why the ABN named no client."""
    by_abn: bool = False


class ClientService:
    """What the daemon does to clients."""

    def __init__(
        self,
        store: Store,
        grants: Grants,
        adapters: dict[str, ProviderAdapter],
        events: EventBus,
        clock: Clock,
        on_transition: Transition | None = None,
    ) -> None:
        self._store = store
        self._grants = grants
        self._adapters = adapters
        self._events = events
        self._clock = clock
        self.on_transition = on_transition
        # The alert queue (daemon/alerts.py): written with the change, so none is lost.
        self.record_change: RecordChange | None = None

    async def require(self, client_id: int) -> ClientRow:
        """The client, or a NOT_FOUND error that names the id."""
        client = await self._store.get_client(client_id)
        if client is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no client with id {client_id}")
        return client

    async def set_status(
        self, client: ClientRow, status: ConnectionStatus, reason: str | None
    ) -> None:
        """Record a status (and why); announce it when it changed, once it is committed
        (inside a transaction: after its commit, and not at all if it rolls back)."""
        async with self._store.transaction():
            old = await self._store.set_client_status(client.id, status, reason, self._clock.now())
            if self.record_change is not None and old is not None and old != status.value:
                await self.record_change(client.id, status, reason)
            self._store.after_commit(lambda: self._announce(client, old, status, reason))

    def _announce(
        self, client: ClientRow, old: str | None, status: ConnectionStatus, reason: str | None
    ) -> None:
        if self.on_transition is not None:
            self.on_transition(client, old, status, reason)
        if old is not None and old != status.value:
            self._events.publish(
                ClientStatusChanged(
                    client_id=client.id,
                    name=client.name,
                    old_status=old,
                    status=status,
                    reason=reason,
                )
            )

    # ------------------------------------------------------------------ import

    async def import_tenants(
        self,
        grant_id: int,
        tenant_ids: list[str] | None,
        actor: str,
        as_new: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Create clients for a grant's tenants (existing ones are rebound and verified).

        A tenant no client of this software has, whose ABN a client under other software
        has, is not created but returned in ``possible_matches`` with that client: the same
        business changed software (attach it, :meth:`attach_tenant`) or not (``as_new``)."""
        grant = await self._store.get_grant(grant_id)
        if grant is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no grant with id {grant_id}")
        tenants = await self._store.grant_tenants(grant_id)
        if tenant_ids is not None:
            known = {t.tenant_id for t in tenants}
            missing = [t for t in tenant_ids if t not in known]
            if missing:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"these tenants are not reached by grant {grant_id}: {', '.join(missing)}",
                )
            tenants = [t for t in tenants if t.tenant_id in set(tenant_ids)]
        created: list[int] = []
        updated: list[int] = []
        limiter = asyncio.Semaphore(VERIFY_CONCURRENCY)

        # A tenant whose client is found by ABN (its provider id changed) moves that client to
        # the new id rather than making a second client of the same entity.
        matches = await self.match_tenants(grant.provider, tenants)
        rebound: dict[int, list[str | None]] = {}
        possible: list[p.PossibleMatch] = []

        async def import_one(tenant: TenantRow) -> None:
            async with limiter:
                details, status, reason = await self._verify(grant.provider, grant_id, tenant)
            existing = await self._store.find_client_by_tenant(grant.provider, tenant.tenant_id)
            now = self._clock.now()
            match = matches.get(tenant.tenant_id)
            if existing is None and match is not None and match.by_abn and match.client:
                async with self._store.transaction():
                    # Checked where it is written: UNIQUE (provider, tenant_id) holds.
                    holder = await self._store.find_client_by_tenant(
                        grant.provider, tenant.tenant_id
                    )
                    if holder is None:
                        await self._store.update_client_details(
                            match.client.id, now, tenant_id=tenant.tenant_id
                        )
                        rebound[match.client.id] = [match.client.tenant_id, tenant.tenant_id]
                    existing = holder or match.client
            if existing is None and tenant.tenant_id not in as_new:
                abn = (details.abn if details else None) or tenant.abn
                elsewhere = await self.other_software_clients(grant.provider, abn)
                if elsewhere:
                    name = details.name if details else tenant.tenant_name
                    possible.extend(
                        p.PossibleMatch(
                            tenant_id=tenant.tenant_id,
                            name=name,
                            abn=abn or "",
                            client_id=client.id,
                            client_name=client.name,
                            client_provider=client.provider,
                            client_active=client.active,
                        )
                        for client in elsewhere
                    )
                    return  # asked first: attach it, or import it as new
            if existing is None:
                offered = provider_fields(details) if details else {}
                client_id = await self._store.create_client(
                    provider=grant.provider,
                    tenant_id=tenant.tenant_id,
                    name=details.name if details else tenant.tenant_name,
                    legal_name=details.legal_name if details else None,
                    abn=details.abn if details else None,
                    grant_id=grant_id,
                    status=status,
                    now=now,
                    entity_type=offered.get("entity_type") or tenant.tenant_type,
                    business=offered.get("business") or tenant.business or grant.business,
                )
                if offered.get("email"):
                    await self._store.update_client_details(client_id, now, email=offered["email"])
                await self._store.set_client_status(client_id, status, reason, now)
                created.append(client_id)
            else:
                client_id = existing.id
                await self._store.update_client_details(
                    client_id, now, grant_id=grant_id, last_verified_at=to_iso(now)
                )
                await self.set_status(existing, status, reason)
                updated.append(client_id)

        await asyncio.gather(*(import_one(tenant) for tenant in tenants))
        created.sort()
        updated.sort()
        await self._store.add_audit(
            actor=actor,
            action="clients.import",
            client_id=None,
            detail={"grant_id": grant_id, "created": created, "updated": updated}
            | (
                {"rebound": {str(cid): ids for cid, ids in sorted(rebound.items())}}
                if rebound
                else {}
            ),
            now=self._clock.now(),
        )
        self._events.publish(ClientsImported(created=created, updated=updated))
        possible.sort(key=lambda match: (match.name.casefold(), match.tenant_id, match.client_id))
        return {"created": created, "updated": updated, "possible_matches": possible}

    async def other_software_clients(self, provider: str, abn: str | None) -> list[ClientRow]:
        """The clients under software other than ``provider`` that have ``abn``: the one
        place that says a business new to this software may be a client already."""
        if not abn:
            return []
        return [
            client
            for client in await self._store.clients_by_abns([abn])
            if client.provider != provider
        ]

    async def attach_tenant(
        self, grant_id: int, tenant_id: str, client_id: int, actor: str
    ) -> ClientRow:
        """Move a client to a grant's tenant of other software with the same ABN (the
        business changed software): verified by one provider call, then the binding,
        status, history and audit in one transaction. The tenant bound to another client,
        an ABN that differs, or the client changed meanwhile refuses it with a CONFLICT that
        says why, and nothing is written."""
        grant = await self._store.get_grant(grant_id)
        if grant is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no grant with id {grant_id}")
        tenant = await self._store.grant_tenant(grant_id, tenant_id)
        if tenant is None:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS, f"grant {grant_id} does not reach {tenant_id!r}"
            )
        client = await self.require(client_id)
        software = self._software(grant.provider)
        if client.provider == grant.provider:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{client.name} is already a {software} client: re-authorise it instead",
            )
        details = await self._verify_or_fail(grant.provider, grant_id, tenant)
        abn = details.abn or tenant.abn
        if not abn or abn != client.abn:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{client.name} was not attached: its ABN ({client.abn or 'none'}) is not "
                f"the ABN {software} gives {details.name} ({abn or 'none'})",
            )
        now = self._clock.now()
        fields: dict[str, Any] = {
            "provider": grant.provider,
            "tenant_id": tenant_id,
            "grant_id": grant_id,
            "last_verified_at": to_iso(now),
        }
        offered = provider_fields(details)
        # The business level is the new software's (None where it has none); the entity
        # type is what it says, where it says; blank details are filled, differences are
        # left to a re-import's review.
        fields["business"] = offered.get("business") or tenant.business or grant.business
        if offered.get("entity_type"):
            fields["entity_type"] = offered["entity_type"]
        for name in ("legal_name", "email"):
            if offered.get(name) and not getattr(client, name):
                fields[name] = offered[name]
        moved = (
            f"moved from {self._software(client.provider)} ({client.tenant_id or 'no id'}) "
            f"to {software} ({tenant_id})"
        )
        async with self._store.transaction():
            current = await self.require(client_id)
            if (current.provider, current.tenant_id) != (client.provider, client.tenant_id):
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"{client.name} was not attached: it was changed meanwhile; look again",
                )
            holder = await self._store.find_client_by_tenant(grant.provider, tenant_id)
            if holder is not None:
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"{client.name} was not attached: {holder.name} (client {holder.id}) is "
                    f"already the {software} client bound to {tenant_id}",
                )
            await self._store.update_client_details(client.id, now, **fields)
            await self.set_status(client, ConnectionStatus.CONNECTED, None)
            await self._store.add_history(
                client.id,
                "attached",
                now,
                status=ConnectionStatus.CONNECTED.value,
                reason=moved,
                actor=actor,
            )
            await self._store.add_audit(
                actor=actor,
                action="client.attached",
                client_id=client.id,
                detail={
                    "grant_id": grant_id,
                    "previous_grant_id": client.grant_id,
                    "provider": [client.provider, grant.provider],
                    "tenant_id": [client.tenant_id, tenant_id],
                    "previous_status": client.status,
                },
                now=now,
            )
        self._events.publish(ClientsImported(created=[], updated=[client.id]))
        self._events.publish(
            ClientReauthorised(client_id=client.id, name=client.name, grant_id=grant_id)
        )
        return await self.require(client.id)

    def _software(self, provider: str) -> str:
        """A provider's name as people say it (``Xero``), else its key."""
        adapter = self._adapters.get(provider)
        return adapter.definition.display_name if adapter is not None else provider

    # ------------------------------------------------------------------ re-authorise

    async def reauthorise(
        self, client: ClientRow, grant_id: int, tenants: list[TenantRow], actor: str
    ) -> None:
        """Bind the client's business to a new grant, verify it, mark it connected."""
        tenant = await self.selected_tenant(client, tenants, grant_id)
        details = await self._verify_or_fail(client.provider, grant_id, tenant)
        await self.commit_reauthorisation(
            client, grant_id, details, actor, tenant_id=tenant.tenant_id
        )

    async def selected_tenant(
        self, client: ClientRow, tenants: list[TenantRow], grant_id: int
    ) -> TenantRow:
        """The client's business among a sign-in's tenants (:meth:`tenant_of`), or a clear
        error."""
        tenant, why = await self.tenant_of(client, tenants)
        if tenant is not None:
            return tenant
        chosen = ", ".join(t.tenant_name for t in tenants) or "none"
        raise RpcFailure(
            ErrorCode.AUTH_CLIENT_NOT_SELECTED,
            f"You signed in, but {client.name} was not among the businesses you "
            f"selected ({chosen}){f' ({why})' if why else ''}. Start again and tick "
            f"{client.name} on the page that lists the organisations.",
            {"grant_id": grant_id},
        )

    async def tenant_of(
        self, client: ClientRow, tenants: list[TenantRow]
    ) -> tuple[TenantRow | None, str | None]:
        """The client's tenant among a sign-in's: by its id, else by its ABN
        (:meth:`match_tenants`); else None, with why its ABN found none where a tenant has
        that ABN."""
        by_id = {tenant.tenant_id: tenant for tenant in tenants}
        if client.tenant_id in by_id:
            return by_id[client.tenant_id], None
        matches = await self.match_tenants(client.provider, tenants)
        for tenant_id, match in matches.items():
            if match.by_abn and match.client is not None and match.client.id == client.id:
                return by_id[tenant_id], None
        for tenant_id, match in matches.items():
            if client.abn and by_id[tenant_id].abn == client.abn and match.note:
                return None, match.note
        return None, None

    async def match_tenants(
        self, provider: str, tenants: list[TenantRow]
    ) -> dict[str, TenantMatch]:
        """The client each of a sign-in's tenants belongs to, by tenant id; the one place
        that decides it. By its id first; a tenant no client has by id is matched by ABN
        when exactly one client of the provider (of the same business, where both name one)
        has that ABN, no other tenant of the sign-in has it, and that client is not bound to
        another of the sign-in's tenants (its provider id changed: it is rebound). Where the
        ABN names more than that, nothing is guessed and the match says why."""
        adapter = self._adapters.get(provider)
        id_name = adapter.definition.id_name if adapter is not None else "id"
        matches: dict[str, TenantMatch] = {}
        reached = {tenant.tenant_id for tenant in tenants}
        by_id: dict[str, ClientRow] = {}
        for start in range(0, len(tenants), MATCH_CHUNK):
            keys = [(provider, tenant.tenant_id) for tenant in tenants[start : start + MATCH_CHUNK]]
            for client in await self._store.clients_by_tenants(keys):
                by_id[client.tenant_id or ""] = client
        loose = []
        for tenant in tenants:
            if tenant.tenant_id in by_id:
                matches[tenant.tenant_id] = TenantMatch(by_id[tenant.tenant_id])
            elif tenant.abn:
                loose.append(tenant)
        abns = sorted({tenant.abn for tenant in loose if tenant.abn})
        holders: dict[str, list[ClientRow]] = {}
        for start in range(0, len(abns), MATCH_CHUNK):
            for client in await self._store.clients_by_abns(abns[start : start + MATCH_CHUNK]):
                if client.provider == provider and client.abn:
                    holders.setdefault(client.abn, []).append(client)
        sharing = Counter(tenant.abn for tenant in loose)
        for tenant in loose:
            abn = tenant.abn or ""
            candidates = [
                client
                for client in holders.get(abn, [])
                if not (client.business and tenant.business and client.business != tenant.business)
            ]
            if not candidates:
                continue  # not a client yet
            names = ", ".join(client.name for client in candidates[:3])
            if len(candidates) > 3:
                names += f" and {len(candidates) - 3} more"
            if sharing[abn] > 1:
                note = (
                    f"not matched by ABN: {plural(sharing[abn], 'entity', 'entities')} of this "
                    f"sign-in {agree(sharing[abn], 'has', 'have')} ABN "
                    f"{abn}, the ABN of {names}"
                )
            elif len(candidates) > 1:
                note = (
                    f"not matched by ABN: {plural(len(candidates), 'client')} "
                    f"{agree(len(candidates), 'has', 'have')} ABN {abn} ({names}); "
                    "re-authorise the right one on its own"
                )
            elif candidates[0].tenant_id in reached:
                note = (
                    f"not matched by ABN: {names} has ABN {abn} but is bound to "
                    f"{id_name} {candidates[0].tenant_id} of this sign-in"
                )
            else:
                note = self.rebind_note(candidates[0], tenant.tenant_id)
                matches[tenant.tenant_id] = TenantMatch(candidates[0], note, by_abn=True)
                continue
            matches[tenant.tenant_id] = TenantMatch(None, note)
        return matches

    def rebind_note(self, client: ClientRow, tenant_id: str | None) -> str:
        """``matched by ABN: fund id changed from X to Y`` (the client's history says it)."""
        adapter = self._adapters.get(client.provider)
        id_name = adapter.definition.id_name if adapter is not None else "id"
        return f"matched by ABN: {id_name} changed from {client.tenant_id or 'none'} to {tenant_id}"

    async def commit_reauthorisation(
        self,
        client: ClientRow,
        grant_id: int,
        details: OrganisationDetails,
        actor: str,
        also: Callable[[], Awaitable[None]] | None = None,
        tenant_id: str | None = None,
        note: dict[str, Any] | None = None,
        outcome: Unit[None] | None = None,
    ) -> None:
        """Write a verified re-authorisation — binding, status, history, audit (with
        ``note``, such as whose connection was taken over), and ``also`` (a job item's
        outcome) or ``outcome`` (the same as statements: the job engine's) — in one
        transaction, then announce it.

        With ``outcome`` the whole is one unit of the store's group commit (one trip to the
        database thread for several items); with ``also`` it is a transaction of its own.

        ``tenant_id`` other than the client's rebinds it to that tenant (found by ABN: the
        provider's id changed); another client bound to it refuses the whole, with a CONFLICT
        that says so, before anything is written."""
        now = self._clock.now()
        at = to_iso(now)
        fields: dict[str, Any] = {"grant_id": grant_id, "last_verified_at": at}
        # What the provider offers fills what the client lacks; differences go through the
        # re-import review, never silently.
        for name, value in provider_fields(details).items():
            if name != "name" and value and not getattr(client, name):
                fields[name] = value
        rebind = tenant_id is not None and tenant_id != client.tenant_id
        connected = ConnectionStatus.CONNECTED
        # A connected client raises no alert (alerts.ALERTING): nothing to queue with it.
        assert connected not in ALERTING
        audit = {
            "grant_id": grant_id,
            "provider": client.provider,
            "previous_status": client.status,
            **(note or {}),
        } | ({"tenant_id": [client.tenant_id, tenant_id]} if rebind else {})
        history_reason = self.rebind_note(client, tenant_id) if rebind else None

        def write(conn: sqlite3.Connection) -> str | None:
            if rebind:
                assert tenant_id is not None
                holder = find_by_tenant_sync(conn, client.provider, tenant_id)
                if holder is not None and holder.id != client.id:
                    raise RpcFailure(
                        ErrorCode.CONFLICT,
                        f"{client.name} was not re-authorised: {holder.name} (client "
                        f"{holder.id}) is already bound to {tenant_id}, the entity this "
                        "sign-in found by ABN; deactivate or correct one of them first",
                    )
                fields["tenant_id"] = tenant_id
            update_details_sync(conn, client.id, at, fields)
            old = set_status_sync(conn, client.id, connected.value, None, at)
            add_history_sync(
                conn,
                client.id,
                "reauthorised",
                at,
                status=connected.value,
                reason=history_reason,
                actor=actor,
            )
            add_audit_sync(
                conn,
                actor=actor,
                action="client.reauthorised",
                client_id=client.id,
                detail=audit,
                at=at,
            )
            if outcome is not None:
                outcome(conn)
            return old

        if also is None:
            old = await self._store.commit_unit(write)
        else:
            async with self._store.transaction():
                old = await self._store.run_sync(write)
                await also()
        self._announce(client, old, connected, None)
        self._events.publish(
            ClientReauthorised(client_id=client.id, name=client.name, grant_id=grant_id)
        )

    async def verify(self, provider: str, grant_id: int, tenant_id: str) -> OrganisationDetails:
        """One verifying provider call; provider errors propagate as they are."""
        adapter = self._adapters[provider]
        return await self._grants.call(
            grant_id, lambda tokens: adapter.fetch_organisation(tokens, tenant_id)
        )

    async def _verify_or_fail(
        self, provider: str, grant_id: int, tenant: TenantRow
    ) -> OrganisationDetails:
        adapter = self._adapters[provider]
        try:
            return await self._grants.call(
                grant_id, lambda tokens: adapter.fetch_organisation(tokens, tenant.tenant_id)
            )
        except Exception as exc:
            failure = classify_failure(exc)
            if failure is None:
                raise
            raise RpcFailure(FAILURE_ERROR_CODES[failure.kind], failure.reason) from exc

    # ------------------------------------------------------------------ details

    async def update_contact(
        self, client: ClientRow, email: str | None, phone: str | None, actor: str
    ) -> None:
        """Store a corrected email or phone (validated, normalised; blank clears it)."""
        fields: dict[str, Any] = {}
        if email is not None:
            fields["email"] = normalise_email(email) if email.strip() else None
        if phone is not None:
            fields["phone"] = normalise_phone(phone) if phone.strip() else None
        if not fields:
            return
        async with self._store.transaction():
            await self._store.update_client_details(client.id, self._clock.now(), **fields)
            await self._store.add_audit(
                actor=actor,
                action="client.contact_updated",
                client_id=client.id,
                detail={name: [getattr(client, name), value] for name, value in fields.items()},
                now=self._clock.now(),
            )

    async def set_active(
        self, client_ids: list[int], active: bool, actor: str
    ) -> tuple[list[int], set[int]]:
        """Deactivate or reactivate clients: (the ones changed, the grants they use)."""
        for client_id in client_ids:
            await self.require(client_id)
        grants = set()
        for client_id in client_ids:
            client = await self._store.get_client(client_id)
            if client is not None and client.grant_id is not None:
                grants.add(client.grant_id)
        changed = await self._store.set_clients_active(client_ids, active, self._clock.now())
        for client_id in changed:
            await self._store.add_audit(
                actor=actor,
                action="client.reactivated" if active else "client.deactivated",
                client_id=client_id,
                detail={},
                now=self._clock.now(),
            )
        return changed, grants

    async def apply_reimport(
        self, job_id: int, client_ids: list[int] | None, actor: str
    ) -> list[int]:
        """Write the differences a finished re-import found, each client's with the mark on
        its item that they were applied (so none is applied twice, and what is left is
        known); the clients changed."""
        job = await self._store.get_job(job_id)
        if job is None or job.kind != p.JobKind.REIMPORT.value:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no re-import job {job_id}")
        if not p.JobState(job.state).finished:
            raise RpcFailure(ErrorCode.CONFLICT, f"job {job_id} has not finished")
        wanted = set(client_ids) if client_ids is not None else None
        changed = []
        for item in await self._store.items_in_state(job_id, p.ItemState.DONE.value):
            result = item.result or {}
            changes = result.get("changes") or {}
            if not changes or (wanted is not None and item.client_id not in wanted):
                continue
            if result.get("applied_at"):
                continue  # applied already
            fields = {field: values[1] for field, values in changes.items()}
            now = self._clock.now()
            async with self._store.transaction():
                await self._store.update_client_details(item.client_id, now, **fields)
                await self._store.set_item_result(item.id, result | {"applied_at": to_iso(now)})
                await self._store.add_audit(
                    actor=actor,
                    action="client.details_updated",
                    client_id=item.client_id,
                    detail={"job_id": job_id, "changes": changes},
                    now=self._clock.now(),
                )
            changed.append(item.client_id)
        return changed

    # ------------------------------------------------------------------ verify

    async def check(self, client_ids: list[int] | None) -> dict[str, Any]:
        """Verify clients now, one provider call each; transient failures change nothing."""
        ids = client_ids if client_ids is not None else await self._store.client_ids()
        clients = [await self.require(client_id) for client_id in ids]
        limiter = asyncio.Semaphore(VERIFY_CONCURRENCY)

        async def check_one(client: ClientRow) -> None:
            if not client.active or client.grant_id is None:
                return
            tenant = TenantRow(tenant_id=client.tenant_id, tenant_name=client.name)
            async with limiter:
                _, status, reason = await self._verify(
                    client.provider, client.grant_id, tenant, transient_is_none=True
                )
            if status is None:
                return  # an outage is not a verdict on the connection
            await self._store.update_client_details(
                client.id, self._clock.now(), last_verified_at=to_iso(self._clock.now())
            )
            await self.set_status(client, status, reason)

        await asyncio.gather(*(check_one(client) for client in clients))
        by_status: dict[str, int] = {}
        for client_id in ids:
            current = await self._store.get_client(client_id)
            if current is not None:
                by_status[current.status] = by_status.get(current.status, 0) + 1
        return {"checked": len(ids), "by_status": by_status}

    async def _verify(
        self, provider: str, grant_id: int, tenant: TenantRow, *, transient_is_none: bool = False
    ) -> tuple[OrganisationDetails | None, ConnectionStatus | None, str | None]:
        """One verifying call: (details, the status it shows, the reason). A transient
        failure shows ``error`` (or None with ``transient_is_none``: no verdict)."""
        adapter = self._adapters.get(provider)
        if adapter is None:
            return None, ConnectionStatus.ERROR, f"provider {provider!r} is not configured"
        try:
            details = await self._grants.call(
                grant_id, lambda tokens: adapter.fetch_organisation(tokens, tenant.tenant_id)
            )
        except Exception as exc:
            failure = classify_failure(exc)
            if failure is None:
                raise
            if failure.transient and transient_is_none:
                return None, None, failure.reason
            return None, failure.status, failure.reason
        return details, ConnectionStatus.CONNECTED, None


FAILURE_ERROR_CODES = {
    FailureKind.GRANT_REFUSED: ErrorCode.AUTH_PROVIDER_REFUSED,
    FailureKind.TENANT_GONE: ErrorCode.AUTH_PROVIDER_REFUSED,
    FailureKind.REQUEST_REFUSED: ErrorCode.AUTH_PROVIDER_REFUSED,
    FailureKind.APP_CREDENTIALS: ErrorCode.PROVIDER_NOT_CONFIGURED,
    FailureKind.OUTAGE: ErrorCode.PROVIDER_UNAVAILABLE,
    FailureKind.RATE_LIMITED: ErrorCode.PROVIDER_UNAVAILABLE,
}
"""The RPC error a person sees when a provider failure stops what they asked for."""


def provider_fields(details: OrganisationDetails) -> dict[str, str | None]:
    """The client details a provider's answer offers, by client column: what re-import
    compares and what a new or re-authorised client takes. A provider's email that is not a
    valid address is not offered."""
    email = None
    if details.email:
        try:
            email = normalise_email(details.email)
        except RpcFailure:
            log.info("ignored an invalid email address from the provider")
    return {
        "name": details.name,
        "legal_name": details.legal_name,
        "abn": details.abn,
        "entity_type": details.organisation_type,
        "email": email,
        "business": details.business,
    }


def store_filter(flt: p.ClientFilter, caller: str | None = None) -> dict[str, Any]:
    """A ``clients.list`` filter as the store's ``list_clients`` arguments; ``mine`` means
    the connections ``caller`` (a login) authorised."""
    statuses = None
    if flt.status is not None:
        raw = flt.status if isinstance(flt.status, list) else [flt.status]
        statuses = [status.value for status in raw]
    chosen = {
        "statuses": statuses,
        "provider": flt.provider,
        "text": flt.text,
        "active": flt.active,
    }
    if flt.mine:
        if caller is None:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "'mine' needs to know who is asking")
        chosen["owner"] = caller
    return chosen
