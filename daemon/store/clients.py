"""Clients (one business or fund each), their status and their history."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.protocol import ConnectionStatus
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database

CLIENT_COLUMNS = (
    "c.id, c.provider, c.tenant_id, c.name, c.legal_name, c.abn, c.email, c.phone, "
    "c.entity_type, c.business, "
    "c.grant_id, c.status, c.status_reason, c.status_since, c.active, c.last_verified_at, "
    "g.access_expires_at, g.refresh_expires_at, g.hard_expires_at, "
    "g.authorised_by, g.created_at AS authorised_at, g.refreshed_at AS last_refresh_at, "
    "g.next_check_at, g.provider_user"
)
CLIENT_FROM = "clients c LEFT JOIN grants g ON g.id = c.grant_id"


@dataclass(frozen=True)
class ClientRow:
    """A client with its grant's moments (``CLIENT_COLUMNS``)."""

    id: int
    provider: str
    tenant_id: str | None
    name: str
    legal_name: str | None
    abn: str | None
    email: str | None
    phone: str | None
    entity_type: str | None
    business: str | None
    grant_id: int | None
    status: str
    status_reason: str | None
    status_since: str
    active: bool
    last_verified_at: str | None
    access_expires_at: str | None
    refresh_expires_at: str | None
    hard_expires_at: str | None
    authorised_by: str | None
    authorised_at: str | None
    last_refresh_at: str | None
    next_check_at: str | None
    # Who signed in at the provider for the grant (JSON), when the provider said.
    provider_user: str | None = None

    def to_protocol(self) -> p.Client:
        """The client as the protocol has it; the owner's name and label are the staff
        directory's to add (:meth:`StaffDirectory.client`)."""
        fields = dataclasses.asdict(self)
        fields["provider_user"] = json.loads(self.provider_user) if self.provider_user else None
        fields["owner_login"] = self.authorised_by
        return p.Client.model_validate(fields)


@dataclass(frozen=True)
class HistoryRow:
    """One line of a client's history."""

    at: str
    kind: str
    status: str | None
    old_status: str | None
    reason: str | None
    actor: str | None

    def to_protocol(self) -> p.HistoryEntry:
        return p.HistoryEntry.model_validate(dataclasses.asdict(self))


class ClientQueries(Database):
    """Reads and writes of ``clients`` and ``client_history`` (and a grant's binding)."""

    async def list_clients(
        self,
        *,
        statuses: list[str] | None,
        provider: str | None,
        text: str | None,
        active: bool | None,
        offset: int,
        limit: int,
        owner: str | None = None,
    ) -> tuple[int, list[ClientRow]]:
        """Clients matching the filter, ordered by name; returns (total, page). ``owner``:
        only clients whose grant that staff member (login) authorised."""
        where, params = client_filter(statuses, provider, text, active, owner)
        total_row = await self._fetchone(f"SELECT count(*) FROM clients c {where}", params)
        assert total_row is not None
        rows = await self._fetchall(client_page_sql(where), [*params, limit, offset])
        return total_row[0], [client_row(row) for row in rows]

    async def count_clients_by_status(self, *, active: bool = True) -> dict[str, int]:
        rows = await self._fetchall(
            "SELECT status, count(*) AS n FROM clients WHERE active = ? GROUP BY status",
            (int(active),),
        )
        counts = {status.value: 0 for status in ConnectionStatus}
        counts.update({row["status"]: row["n"] for row in rows})
        return counts

    async def count_attention(self) -> int:
        """Active clients whose status needs a person."""
        row = await self._fetchone(
            "SELECT count(*) FROM clients WHERE active = 1 AND status IN "
            "('needs_reauth', 'expiring', 'error')"
        )
        assert row is not None
        return int(row[0])

    async def get_client(self, client_id: int) -> ClientRow | None:
        row = await self._fetchone(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.id = ?", (client_id,)
        )
        return client_row(row) if row else None

    async def active_client_names(self) -> list[str]:
        """Every active client's name (what a template is rendered with)."""
        rows = await self._fetchall("SELECT name FROM clients WHERE active = 1", ())
        return [row["name"] for row in rows]

    async def client_ids(self, *, active_only: bool = True) -> list[int]:
        rows = await self._fetchall(
            "SELECT id FROM clients WHERE active = 1 OR ? = 0 ORDER BY id", (int(active_only),)
        )
        return [row["id"] for row in rows]

    async def find_client_by_tenant(self, provider: str, tenant_id: str) -> ClientRow | None:
        row = await self._fetchone(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.provider = ? AND c.tenant_id = ?",
            (provider, tenant_id),
        )
        return client_row(row) if row else None

    async def clients_of_grant(self, grant_id: int) -> list[ClientRow]:
        rows = await self._fetchall(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.grant_id = ? AND c.active = 1",
            (grant_id,),
        )
        return [client_row(row) for row in rows]

    async def clients_resting_on(self, grant_id: int) -> list[ClientRow]:
        """Every client bound to the grant, deactivated ones too, by name."""
        rows = await self._fetchall(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.grant_id = ? "
            "ORDER BY c.name COLLATE NOCASE, c.id",
            (grant_id,),
        )
        return [client_row(row) for row in rows]

    async def create_client(
        self,
        *,
        provider: str,
        tenant_id: str,
        name: str,
        legal_name: str | None,
        abn: str | None,
        grant_id: int | None,
        status: ConnectionStatus,
        now: datetime,
        entity_type: str | None = None,
        business: str | None = None,
    ) -> int:
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO clients (provider, tenant_id, name, legal_name, abn, grant_id, "
                "status, status_since, created_at, updated_at, entity_type, business) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    provider,
                    tenant_id,
                    name,
                    legal_name,
                    abn,
                    grant_id,
                    status.value,
                    to_iso(now),
                    to_iso(now),
                    to_iso(now),
                    entity_type,
                    business,
                ),
            )
            assert cursor.lastrowid is not None
            if grant_id is not None:
                await db.execute(
                    "UPDATE grants SET bound_at = COALESCE(bound_at, ?) WHERE id = ?",
                    (to_iso(now), grant_id),
                )
            return cursor.lastrowid

    async def clients_by_tenants(self, keys: list[tuple[str, str]]) -> list[ClientRow]:
        """The clients with these (provider, tenant id) pairs (at most 500 at a time)."""
        if not keys:
            return []
        pairs = ", ".join("(?, ?)" for _ in keys)
        rows = await self._fetchall(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} "
            f"WHERE (c.provider, c.tenant_id) IN (VALUES {pairs})",
            [value for key in keys for value in key],
        )
        return [client_row(row) for row in rows]

    async def clients_by_abns(self, abns: list[str]) -> list[ClientRow]:
        """The clients with these ABNs (11 digits each; at most 500 at a time)."""
        if not abns:
            return []
        rows = await self._fetchall(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} "
            f"WHERE c.abn IN ({', '.join('?' * len(abns))}) ORDER BY c.id",
            abns,
        )
        return [client_row(row) for row in rows]

    async def create_unconnected_clients(
        self, clients: list[dict[str, Any]], now: datetime
    ) -> list[int]:
        """Create clients that have never been authorised (``provider``, ``tenant_id``,
        ``name``, ``abn``, ``email``, ``phone`` each) in one statement; their ids, in order.
        A (provider, tenant id) that exists already is skipped (fewer ids come back)."""
        if not clients:
            return []
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO clients (provider, tenant_id, name, abn, email, phone, status, "
                "status_since, created_at, updated_at) "
                "SELECT json_extract(value, '$.provider'), json_extract(value, '$.tenant_id'), "
                "json_extract(value, '$.name'), json_extract(value, '$.abn'), "
                "json_extract(value, '$.email'), json_extract(value, '$.phone'), ?, ?, ?, ? "
                "FROM json_each(?) WHERE true ORDER BY key "
                "ON CONFLICT (provider, tenant_id) DO NOTHING RETURNING id",
                (
                    ConnectionStatus.NOT_CONNECTED.value,
                    to_iso(now),
                    to_iso(now),
                    to_iso(now),
                    json.dumps(clients),
                ),
            )
            ids = [row[0] for row in await cursor.fetchall()]
            await cursor.close()
            return sorted(ids)

    async def fill_blank_details(
        self, client_id: int, fields: dict[str, str], now: datetime
    ) -> bool:
        """Set each of ``fields`` (email, phone, abn) only where the client has none yet;
        whether anything changed. A value someone entered meanwhile is never overwritten."""
        allowed = {"email", "phone", "abn"}
        if set(fields) - allowed:
            raise ValueError(f"not fillable columns: {sorted(set(fields) - allowed)}")
        changed = False
        async with self.transaction() as db:
            for column, value in fields.items():
                cursor = await db.execute(
                    f"UPDATE clients SET {column} = ?, updated_at = ? "
                    f"WHERE id = ? AND coalesce({column}, '') = ''",
                    (value, to_iso(now), client_id),
                )
                changed = changed or cursor.rowcount > 0
        return changed

    async def update_client_details(self, client_id: int, now: datetime, **fields: Any) -> None:
        """Set plain detail columns (name, legal_name, abn, email, phone, entity_type,
        business, grant_id, and tenant_id: a re-authorisation that found the client by ABN;
        provider too: a client attached to the same business in other software)."""
        unknown = set(fields) - DETAIL_COLUMNS
        if unknown:
            raise ValueError(f"not client detail columns: {sorted(unknown)}")
        if not fields:
            return
        at = to_iso(now)
        async with self.transaction():
            await self.run_sync(lambda conn: update_details_sync(conn, client_id, at, fields))

    async def set_client_status(
        self, client_id: int, status: ConnectionStatus, reason: str | None, now: datetime
    ) -> str | None:
        """Set the status; ``status_since`` moves only on a change. Returns the old status."""
        at = to_iso(now)
        async with self.transaction():
            return await self.run_sync(
                lambda conn: set_status_sync(conn, client_id, status.value, reason, at)
            )

    async def set_clients_active(
        self, client_ids: list[int], active: bool, now: datetime
    ) -> list[int]:
        """Set ``active``; returns the ids that changed."""
        changed = []
        async with self.transaction() as db:
            for client_id in client_ids:
                cursor = await db.execute(
                    "UPDATE clients SET active = ?, updated_at = ? WHERE id = ? AND active != ?",
                    (int(active), to_iso(now), client_id, int(active)),
                )
                if cursor.rowcount:
                    changed.append(client_id)
        return changed

    # ------------------------------------------------------------------ history

    async def add_history(
        self,
        client_id: int,
        kind: str,
        now: datetime,
        *,
        status: str | None = None,
        old_status: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> None:
        at = to_iso(now)
        async with self.transaction():
            await self.run_sync(
                lambda conn: add_history_sync(
                    conn,
                    client_id,
                    kind,
                    at,
                    status=status,
                    old_status=old_status,
                    reason=reason,
                    actor=actor,
                )
            )

    async def client_history(self, client_id: int, limit: int) -> list[HistoryRow]:
        rows = await self._fetchall(
            "SELECT at, kind, status, old_status, reason, actor FROM client_history "
            "WHERE client_id = ? ORDER BY id DESC LIMIT ?",
            (client_id, limit),
        )
        return [HistoryRow(**row) for row in rows]


def client_page_sql(where: str) -> str:
    """One page of clients by name (``where`` from the filter; then LIMIT and OFFSET)."""
    return (
        f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} {where} "
        "ORDER BY c.name COLLATE NOCASE, c.id LIMIT ? OFFSET ?"
    )


DETAIL_COLUMNS = frozenset(
    {
        "provider",
        "tenant_id",
        "name",
        "legal_name",
        "abn",
        "email",
        "phone",
        "entity_type",
        "business",
        "grant_id",
        "last_verified_at",
    }
)
"""The plain detail columns :meth:`ClientQueries.update_client_details` may set."""


# The statements of a client's writes, as plain functions of the connection: the async
# methods above run them in one hop each, and a unit of work (a job item's commit, see
# ``Database.commit_unit``) runs several of them in one.


def update_details_sync(
    conn: sqlite3.Connection, client_id: int, at: str | None, fields: dict[str, Any]
) -> None:
    """``fields`` are :data:`DETAIL_COLUMNS` (checked by the caller)."""
    assignments = ", ".join(f"{column} = ?" for column in fields)
    conn.execute(
        f"UPDATE clients SET {assignments}, updated_at = ? WHERE id = ?",
        [*fields.values(), at, client_id],
    )
    if fields.get("grant_id") is not None:
        # A client was bound to the grant: it is no longer an unused sign-in.
        conn.execute(
            "UPDATE grants SET bound_at = COALESCE(bound_at, ?) WHERE id = ?",
            (at, fields["grant_id"]),
        )


def set_status_sync(
    conn: sqlite3.Connection, client_id: int, status: str, reason: str | None, at: str | None
) -> str | None:
    """Set the status (``status_since`` moves only on a change); the old status."""
    row = conn.execute("SELECT status FROM clients WHERE id = ?", (client_id,)).fetchone()
    if row is None:
        return None
    old = row[0]
    if old == status:
        conn.execute(
            "UPDATE clients SET status_reason = ?, updated_at = ? WHERE id = ?",
            (reason, at, client_id),
        )
    else:
        conn.execute(
            "UPDATE clients SET status = ?, status_reason = ?, status_since = ?, "
            "updated_at = ? WHERE id = ?",
            (status, reason, at, at, client_id),
        )
        add_history_sync(
            conn, client_id, "status", at, status=status, old_status=old, reason=reason
        )
    return old


def add_history_sync(
    conn: sqlite3.Connection,
    client_id: int,
    kind: str,
    at: str | None,
    *,
    status: str | None = None,
    old_status: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO client_history (client_id, at, kind, status, old_status, reason, "
        "actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (client_id, at, kind, status, old_status, reason, actor),
    )


def find_by_tenant_sync(
    conn: sqlite3.Connection, provider: str, tenant_id: str
) -> ClientRow | None:
    row = conn.execute(
        f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.provider = ? AND c.tenant_id = ?",
        (provider, tenant_id),
    ).fetchone()
    return client_row(row) if row else None


def client_filter(
    statuses: list[str] | None,
    provider: str | None,
    text: str | None,
    active: bool | None,
    owner: str | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters for ``clients.list``'s filter."""
    clauses: list[str] = []
    params: list[Any] = []
    if owner is not None:
        clauses.append("c.grant_id IN (SELECT id FROM grants WHERE authorised_by = ?)")
        params.append(owner)
    if active is not None:
        clauses.append("c.active = ?")
        params.append(int(active))
    if statuses:
        clauses.append(f"c.status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if provider:
        clauses.append("c.provider = ?")
        params.append(provider)
    if text and text.strip():
        needle = (
            "%"
            + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            + "%"
        )
        digits = "".join(ch for ch in text if ch.isdigit())
        # SQLite's LIKE ignores ASCII case, as its lower() folds only ASCII: the needle is
        # lowered above and the columns are compared as they are (a missing one is NULL,
        # which matches nothing), with no function called per row.
        clause = (
            "(c.name LIKE ? ESCAPE '\\' OR c.legal_name LIKE ? ESCAPE '\\' "
            "OR c.email LIKE ? ESCAPE '\\'"
        )
        params.extend([needle, needle, needle])
        if digits:
            clause += " OR c.abn LIKE ?"
            params.append(f"%{digits}%")
        clauses.append(clause + ")")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return where, params


def client_row(row: sqlite3.Row) -> ClientRow:
    """A :data:`CLIENT_COLUMNS` row as a :class:`ClientRow`."""
    client = dict(row)
    client["active"] = bool(client["active"])
    return ClientRow(**client)
