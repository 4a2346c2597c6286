"""Grants (one sign-in's tokens), the tenants each reaches, and the watcher's schedule."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class GrantRow:
    """A grant as stored; ``token_ciphertext`` is opened only by the vault."""

    id: int
    uid: str
    provider: str
    auth_event_id: str | None
    token_ciphertext: bytes
    access_expires_at: str | None
    refresh_expires_at: str | None
    hard_expires_at: str | None
    state: str
    state_reason: str | None
    authorised_by: str
    created_at: str
    refreshed_at: str | None
    next_check_at: str | None = None
    failure_count: int = 0
    failure_days: str = "[]"
    last_error: str | None = None
    refresh_pending_since: str | None = None
    bound_at: str | None = None
    business: str | None = None
    # Who signed in at the provider (JSON of ProviderUser.as_json), when the provider says.
    provider_user: str | None = None


@dataclass(frozen=True)
class GrantTimes:
    """Just the moments of a grant: what the watcher holds for every grant it watches."""

    id: int
    access_expires_at: str | None
    refresh_expires_at: str | None
    hard_expires_at: str | None
    next_check_at: str | None
    refresh_pending_since: str | None = None
    # Which provider: its keep-alive policy decides the moment (see Watcher._next_moment).
    provider: str | None = None


@dataclass(frozen=True)
class TenantRow:
    """One tenant (organisation, company file, realm) a grant reaches."""

    tenant_id: str
    tenant_name: str
    tenant_type: str | None = None
    connection_id: str | None = None
    auth_event_id: str | None = None
    # The provider business the tenant belongs to (see OrganisationDetails.business).
    business: str | None = None
    # The entity's ABN as the tenant list gave it (11 digits; BGL's fund list): a hint for
    # finding its client when the provider's id changed (ClientService.match_tenants).
    abn: str | None = None


@dataclass(frozen=True)
class GrantSummary:
    """A grant as :meth:`GrantQueries.list_grants` lists it (no tokens)."""

    id: int
    provider: str
    state: str
    state_reason: str | None
    authorised_by: str
    created_at: str
    access_expires_at: str | None
    refresh_expires_at: str | None
    next_check_at: str | None
    bound_at: str | None
    clients: int
    tenants: list[str]
    unused: bool

    def to_protocol(self) -> p.GrantInfo:
        return p.GrantInfo.model_validate(dataclasses.asdict(self))


class GrantQueries(Database):
    """Reads and writes of ``grants`` and ``grant_tenants``."""

    # What ``grant_for_tokens`` remembers, and a count of the writes that end it.
    _grant_rows: dict[int, GrantRow]
    _grant_writes: int = 0

    async def grant_for_tokens(self, grant_id: int) -> GrantRow | None:
        """:meth:`get_grant`, remembered until this store next writes the grant's tokens
        or state (a refresh, its marker, a revocation; nothing else writes them): a bulk
        job opens one grant's tokens for every item, and re-reading it each time is a trip
        to the database thread per call."""
        rows = self.__dict__.setdefault("_grant_rows", {})
        known = rows.get(grant_id)
        if known is not None:
            return known
        writes = self._grant_writes
        grant = await self.get_grant(grant_id)
        if grant is not None and writes == self._grant_writes:
            rows[grant_id] = grant
        return grant

    def _grant_written(self, grant_id: int) -> None:
        def forget() -> None:
            self._grant_writes += 1
            self.__dict__.get("_grant_rows", {}).pop(grant_id, None)

        forget()  # and again at the commit of an enclosing transaction: its readers share it
        self.after_commit(forget)

    async def insert_grant(
        self,
        *,
        uid: str,
        provider: str,
        auth_event_id: str | None,
        token_ciphertext: bytes,
        access_expires_at: datetime | None,
        refresh_expires_at: datetime | None,
        hard_expires_at: datetime | None,
        authorised_by: str,
        now: datetime,
        tenants: list[TenantRow],
        business: str | None = None,
        provider_user: dict[str, str | None] | None = None,
    ) -> int:
        """Store a new grant and the tenants it reaches; returns its id. ``provider_user``
        is who signed in at the provider (stored with the grant, in one transaction)."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO grants (uid, provider, auth_event_id, token_ciphertext, "
                "access_expires_at, refresh_expires_at, hard_expires_at, authorised_by, "
                "created_at, refreshed_at, business, provider_user) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    provider,
                    auth_event_id,
                    token_ciphertext,
                    to_iso(access_expires_at),
                    to_iso(refresh_expires_at),
                    to_iso(hard_expires_at),
                    authorised_by,
                    to_iso(now),
                    to_iso(now),
                    business,
                    json.dumps(provider_user, sort_keys=True) if provider_user else None,
                ),
            )
            grant_id = cursor.lastrowid
            assert grant_id is not None
            await db.executemany(
                "INSERT INTO grant_tenants (grant_id, tenant_id, connection_id, tenant_name, "
                "tenant_type, auth_event_id, business, abn) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        grant_id,
                        t.tenant_id,
                        t.connection_id,
                        t.tenant_name,
                        t.tenant_type,
                        t.auth_event_id,
                        t.business,
                        t.abn,
                    )
                    for t in tenants
                ],
            )
        return grant_id

    async def count_connected_tenants(self, provider: str) -> int:
        """Distinct tenants the provider's active grants reach (Xero's "connections")."""
        row = await self._fetchone(
            "SELECT COUNT(DISTINCT t.tenant_id) AS n FROM grant_tenants t "
            "JOIN grants g ON g.id = t.grant_id WHERE g.provider = ? AND g.state = 'active'",
            (provider,),
        )
        return int(row["n"]) if row else 0

    async def get_grant(self, grant_id: int) -> GrantRow | None:
        row = await self._fetchone("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return GrantRow(**dict(row)) if row else None

    async def grants_authorised_by(self, login: str) -> list[GrantRow]:
        """The active grants a staff member signed in for (``authorised_by``), oldest first."""
        rows = await self._fetchall(
            "SELECT * FROM grants WHERE authorised_by = ? AND state = 'active' ORDER BY id",
            (login,),
        )
        return [GrantRow(**dict(row)) for row in rows]

    async def update_grant_tokens(
        self,
        grant_id: int,
        *,
        token_ciphertext: bytes,
        access_expires_at: datetime | None,
        refresh_expires_at: datetime | None,
        hard_expires_at: datetime | None,
        now: datetime,
    ) -> None:
        """Replace a grant's tokens after a refresh (committed before anyone uses them).

        A rotated refresh token must not be lost: on a full disk this uses the reserve."""

        async def write() -> None:
            async with self.transaction() as db:
                await db.execute(
                    "UPDATE grants SET token_ciphertext = ?, access_expires_at = ?, "
                    "refresh_expires_at = ?, hard_expires_at = COALESCE(?, hard_expires_at), "
                    "refreshed_at = ?, refresh_pending_since = NULL WHERE id = ?",
                    (
                        token_ciphertext,
                        to_iso(access_expires_at),
                        to_iso(refresh_expires_at),
                        to_iso(hard_expires_at),
                        to_iso(now),
                        grant_id,
                    ),
                )

        try:
            await self.with_reserve(write)
        finally:
            self._grant_written(grant_id)

    async def begin_refresh(self, grant_id: int, now: datetime) -> str | None:
        """Commit that a token call is about to start; returns when an earlier one whose
        answer never arrived started (None if every earlier call was answered)."""
        async with self.transaction() as db:
            row = await self._fetchone(
                "SELECT refresh_pending_since FROM grants WHERE id = ?", (grant_id,)
            )
            previous = row["refresh_pending_since"] if row else None
            await db.execute(
                "UPDATE grants SET refresh_pending_since = COALESCE(refresh_pending_since, ?) "
                "WHERE id = ?",
                (to_iso(now), grant_id),
            )
        self._grant_written(grant_id)
        return previous

    async def end_refresh(self, grant_id: int) -> None:
        """The provider answered every token call so far: nothing is in doubt."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE grants SET refresh_pending_since = NULL WHERE id = ?", (grant_id,)
            )
        self._grant_written(grant_id)

    async def unused_grants(self) -> list[GrantRow]:
        """Active grants no client was ever bound to (a sign-in that ticked other businesses)."""
        rows = await self._fetchall(
            "SELECT * FROM grants g WHERE g.state = 'active' AND g.bound_at IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.grant_id = g.id) ORDER BY g.id"
        )
        return [GrantRow(**dict(row)) for row in rows]

    async def list_grants(self, unused_only: bool = False) -> list[GrantSummary]:
        """Every grant (no tokens) with how many clients use it and the tenants it reaches."""
        where = (
            "WHERE g.state = 'active' AND g.bound_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM clients c WHERE c.grant_id = g.id)"
            if unused_only
            else ""
        )
        rows = await self._fetchall(
            "SELECT g.id, g.provider, g.state, g.state_reason, g.authorised_by, g.created_at, "
            "g.access_expires_at, g.refresh_expires_at, g.next_check_at, g.bound_at, "
            "(SELECT count(*) FROM clients c WHERE c.grant_id = g.id) AS clients, "
            "(SELECT json_group_array(t.tenant_name) FROM grant_tenants t "
            "WHERE t.grant_id = g.id) AS tenants "
            f"FROM grants g {where} ORDER BY g.id"
        )
        grants = []
        for row in rows:
            grant = dict(row)
            grant["tenants"] = sorted(json.loads(grant["tenants"] or "[]"))
            grant["unused"] = (
                grant["state"] == "active" and grant["bound_at"] is None and not grant["clients"]
            )
            grants.append(GrantSummary(**grant))
        return grants

    async def mark_grant_revoked(self, grant_id: int, reason: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE grants SET state = 'revoked', state_reason = ? WHERE id = ?",
                (reason, grant_id),
            )
        self._grant_written(grant_id)

    async def grant_tenant(self, grant_id: int, tenant_id: str) -> TenantRow | None:
        """One tenant of a grant (by the table's primary key)."""
        row = await self._fetchone(
            "SELECT tenant_id, tenant_name, tenant_type, connection_id, auth_event_id, business, "
            "abn "
            "FROM grant_tenants WHERE grant_id = ? AND tenant_id = ?",
            (grant_id, tenant_id),
        )
        return TenantRow(**dict(row)) if row else None

    async def grant_tenants(self, grant_id: int) -> list[TenantRow]:
        rows = await self._fetchall(
            "SELECT tenant_id, tenant_name, tenant_type, connection_id, auth_event_id, business, "
            "abn "
            "FROM grant_tenants WHERE grant_id = ? ORDER BY tenant_name",
            (grant_id,),
        )
        return [TenantRow(**dict(row)) for row in rows]

    # ------------------------------------------------------------------ watcher

    async def watched_grants(self) -> list[GrantTimes]:
        """When each watched grant ends and is next due: active grants that an active client
        is bound to, and unused sign-ins (no client ever bound), which must not expire
        silently either."""
        rows = await self._fetchall(
            "SELECT id, access_expires_at, refresh_expires_at, hard_expires_at, next_check_at, "
            "refresh_pending_since, provider FROM grants g WHERE g.state = 'active' AND (EXISTS "
            "(SELECT 1 FROM clients c WHERE c.grant_id = g.id AND c.active = 1) "
            "OR (g.bound_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM clients c WHERE c.grant_id = g.id)))"
        )
        return [GrantTimes(*row) for row in rows]

    async def set_grant_schedule(
        self,
        grant_id: int,
        *,
        next_check_at: datetime | None,
        failure_count: int | None = None,
        failure_days: list[str] | None = None,
        last_error: str | None = None,
        clear_error: bool = False,
    ) -> None:
        """Record when the watcher looks at a grant next, and its run of failures."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE grants SET next_check_at = ?, "
                "failure_count = COALESCE(?, failure_count), "
                "failure_days = COALESCE(?, failure_days), "
                "last_error = CASE WHEN ? THEN NULL ELSE COALESCE(?, last_error) END "
                "WHERE id = ?",
                (
                    to_iso(next_check_at),
                    failure_count,
                    json.dumps(failure_days) if failure_days is not None else None,
                    int(clear_error),
                    last_error,
                    grant_id,
                ),
            )
