"""The daemon's SQLite store: schema migrations and every query, in one place.

One aiosqlite connection in WAL mode. Writes go through :meth:`Store.transaction`,
which holds an asyncio lock for the whole transaction: several coroutines share the
connection, and without the lock their statements would interleave inside each
other's transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import aiosqlite

from clientlink.common.protocol import ConnectionStatus
from clientlink.common.timeutil import to_iso
from clientlink.daemon.datafiles import (
    MIN_FREE_BYTES,
    DatabaseIdentity,
    DatabaseLost,
    DiskFull,
    DiskReserve,
    check_writable,
    free_bytes,
    is_disk_full,
    take_writer_lock,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: the walking skeleton
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        ciphertext BLOB NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE grants (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        provider TEXT NOT NULL,
        auth_event_id TEXT,
        token_ciphertext BLOB NOT NULL,
        access_expires_at TEXT,
        refresh_expires_at TEXT,
        hard_expires_at TEXT,
        state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
        state_reason TEXT,
        authorised_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        refreshed_at TEXT
    );
    CREATE TABLE grant_tenants (
        grant_id INTEGER NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL,
        connection_id TEXT,
        tenant_name TEXT NOT NULL,
        tenant_type TEXT,
        auth_event_id TEXT,
        PRIMARY KEY (grant_id, tenant_id)
    );
    CREATE TABLE clients (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        tenant_id TEXT,
        name TEXT NOT NULL,
        legal_name TEXT,
        abn TEXT,
        email TEXT,
        phone TEXT,
        grant_id INTEGER REFERENCES grants(id) ON DELETE SET NULL,
        status TEXT NOT NULL DEFAULT 'not_connected',
        status_reason TEXT,
        status_since TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        last_verified_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (provider, tenant_id)
    );
    CREATE INDEX clients_by_status ON clients (active, status);
    CREATE INDEX clients_by_name ON clients (name COLLATE NOCASE);
    CREATE INDEX clients_by_grant ON clients (grant_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        client_id INTEGER,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_by_client ON audit (client_id, id);
    """,
    # 2: the connection watcher
    """
    ALTER TABLE grants ADD COLUMN next_check_at TEXT;
    ALTER TABLE grants ADD COLUMN failure_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE grants ADD COLUMN failure_days TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE grants ADD COLUMN last_error TEXT;
    CREATE TABLE client_history (
        id INTEGER PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT,
        old_status TEXT,
        reason TEXT,
        actor TEXT
    );
    CREATE INDEX client_history_by_client ON client_history (client_id, id);
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        client_ids TEXT NOT NULL DEFAULT '[]',
        read INTEGER NOT NULL DEFAULT 0,
        desktop TEXT NOT NULL DEFAULT 'pending',
        desktop_id TEXT
    );
    CREATE INDEX notifications_unread ON notifications (read, id);
    """,
    # 3: the job engine
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        actor TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        total INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        retry_of INTEGER REFERENCES jobs(id)
    );
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE TABLE job_items (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        client_id INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        result TEXT,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX job_items_by_job ON job_items (job_id, state, position);
    """,
    # 4: invitation templates
    """
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
        subject TEXT,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 5: invitations
    """
    CREATE TABLE bank_users (
        client_id INTEGER PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL
    );
    CREATE TABLE invitations (
        id INTEGER PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        job_item_id INTEGER,
        channel TEXT NOT NULL,
        template_id TEXT NOT NULL,
        bank_ids TEXT NOT NULL DEFAULT '[]',
        link_sealed BLOB,
        link_expires_at TEXT,
        state TEXT NOT NULL,
        provider_ref TEXT,
        error TEXT,
        actor TEXT NOT NULL,
        reminder_of INTEGER REFERENCES invitations(id),
        created_at TEXT NOT NULL,
        sent_at TEXT,
        delivered_at TEXT,
        opened_at TEXT,
        connected_at TEXT,
        reminded_at TEXT
    );
    CREATE INDEX invitations_by_client ON invitations (client_id, id);
    CREATE INDEX invitations_by_state ON invitations (state);
    CREATE UNIQUE INDEX invitations_by_item ON invitations (job_item_id);
    CREATE TABLE bank_connections (
        id TEXT PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        institution_id TEXT NOT NULL,
        status TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 6: refresh markers (a token call is recorded before it starts) and unused sign-ins
    """
    ALTER TABLE grants ADD COLUMN refresh_pending_since TEXT;
    ALTER TABLE grants ADD COLUMN bound_at TEXT;
    UPDATE grants SET bound_at = created_at
        WHERE EXISTS (SELECT 1 FROM clients c WHERE c.grant_id = grants.id);
    """,
]

CLIENT_COLUMNS = (
    "c.id, c.provider, c.tenant_id, c.name, c.legal_name, c.abn, c.email, c.phone, "
    "c.grant_id, c.status, c.status_reason, c.status_since, c.active, c.last_verified_at, "
    "g.access_expires_at, g.refresh_expires_at, g.hard_expires_at, "
    "g.authorised_by, g.created_at AS authorised_at, g.refreshed_at AS last_refresh_at, "
    "g.next_check_at"
)
CLIENT_FROM = "clients c LEFT JOIN grants g ON g.id = c.grant_id"


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


@dataclass(frozen=True)
class GrantTimes:
    """Just the moments of a grant: what the watcher holds for every grant it watches."""

    id: int
    access_expires_at: str | None
    refresh_expires_at: str | None
    hard_expires_at: str | None
    next_check_at: str | None
    refresh_pending_since: str | None = None


@dataclass(frozen=True)
class TenantRow:
    """One tenant (organisation, company file, realm) a grant reaches."""

    tenant_id: str
    tenant_name: str
    tenant_type: str | None = None
    connection_id: str | None = None
    auth_event_id: str | None = None


class Store:
    """All reads and writes of the daemon's database."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._write_lock = _ReentrantLock()
        self._writer_lock: IO[str] | None = None
        self._identity: DatabaseIdentity | None = None
        self.reserve: DiskReserve | None = None
        self._folder = Path(".")
        # Called once, with the reason, when the database turns out deleted or replaced.
        self.on_lost: Callable[[str], None] | None = None
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) and migrate the database at ``path``.

        Takes the writer's lock beside the database first (a second writer is refused with
        :class:`~clientlink.daemon.datafiles.DataFilesProblem`, as is a database or folder
        that cannot be written), and keeps a disk reserve in the data folder.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(check_writable, path)
        writer_lock = take_writer_lock(path.with_name(path.name + ".lock"), path)
        try:
            db = await aiosqlite.connect(str(path), isolation_level=None)
        except BaseException:
            writer_lock.close()
            raise
        db.row_factory = aiosqlite.Row
        store = cls(db)
        store._writer_lock = writer_lock
        store._folder = path.parent
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await asyncio.to_thread(path.chmod, 0o600)
            store._identity = DatabaseIdentity(path)
            store.reserve = DiskReserve(path.parent)
            if not await asyncio.to_thread(store.reserve.ensure):
                log.warning("no room for clientlink's disk reserve in %s", path.parent)
            await store._migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection and give up the writer's lock."""
        try:
            await self._db.close()
        finally:
            if self._writer_lock is not None:
                self._writer_lock.close()
                self._writer_lock = None

    def check_database(self) -> str | None:
        """Look whether the database is still the file that was opened (cheap: one stat)."""
        if self._identity is None:
            return None
        known = self._identity.problem
        problem = self._identity.check()
        if problem and known is None:
            log.error("%s", problem)
            if self.on_lost is not None:
                self.on_lost(problem)
        return problem

    async def with_reserve(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` (whole transactions, outside any other); if the disk is full, give
        up the disk reserve and run it once more. For commits that must not be lost, such as
        a rotated refresh token or the marker written before a token call."""
        try:
            return await write()
        except DiskFull:
            if self.reserve is None or not await asyncio.to_thread(self.reserve.release):
                raise
        return await write()

    async def ensure_writable_reserve(self) -> None:
        """Before an outside call whose result must be committed (a token refresh): make
        sure the commit will fit. Puts the reserve back when the disk has room again; raises
        :class:`DiskFull` (make no call then) when neither the reserve nor the room is there."""
        if self.reserve is None:
            return
        if await asyncio.to_thread(self.reserve.ensure):
            return
        if await asyncio.to_thread(free_bytes, self.reserve.folder) < MIN_FREE_BYTES:
            raise DiskFull(self.reserve.folder)

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            (version,) = await cursor.fetchone()  # type: ignore[misc]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the database is at schema version {version}, newer than this clientlinkd "
                f"understands ({len(MIGRATIONS)}); upgrade clientlink"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with self.transaction():
                for statement in split_statements(script):
                    await self._db.execute(statement)
                await self._db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block in one write transaction (nested blocks join the outer one)."""
        async with self._write_lock as depth:
            if depth > 1:
                yield self._db
                return
            problem = self.check_database()
            if problem:
                raise DatabaseLost(problem)
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                self._after_commit = []
                try:
                    yield self._db
                except BaseException:
                    self._after_commit = []
                    await self._rollback()
                    raise
                try:
                    await self._db.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (a full disk) can leave the transaction open.
                    self._after_commit = []
                    await self._rollback()
                    raise
            except sqlite3.OperationalError as exc:
                if is_disk_full(exc):
                    raise DiskFull(self._folder) from exc
                raise
            callbacks, self._after_commit = self._after_commit, []
            for callback in callbacks:
                callback()

    async def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await self._db.execute("ROLLBACK")

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the caller's transaction has committed (at once outside
        one); never if it rolls back. Events announce only what readers can see."""
        if self._write_lock.held_by_current_task():
            self._after_commit.append(callback)
        else:
            callback()

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        # One trip to the database thread (execute + fetch + close), not three.
        return list(await self._db.execute_fetchall(sql, tuple(params)))

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self._db.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    # ------------------------------------------------------------------ meta and secrets

    async def get_meta(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def get_secret(self, name: str) -> bytes | None:
        row = await self._fetchone("SELECT ciphertext FROM secrets WHERE name = ?", (name,))
        return bytes(row["ciphertext"]) if row else None

    async def put_secret(self, name: str, ciphertext: bytes, now: datetime) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO secrets (name, ciphertext, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, "
                "updated_at = excluded.updated_at",
                (name, ciphertext, to_iso(now)),
            )

    # ------------------------------------------------------------------ grants

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
    ) -> int:
        """Store a new grant and the tenants it reaches; returns its id."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO grants (uid, provider, auth_event_id, token_ciphertext, "
                "access_expires_at, refresh_expires_at, hard_expires_at, authorised_by, "
                "created_at, refreshed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            grant_id = cursor.lastrowid
            assert grant_id is not None
            await db.executemany(
                "INSERT INTO grant_tenants (grant_id, tenant_id, connection_id, tenant_name, "
                "tenant_type, auth_event_id) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        grant_id,
                        t.tenant_id,
                        t.connection_id,
                        t.tenant_name,
                        t.tenant_type,
                        t.auth_event_id,
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

        await self.with_reserve(write)

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
        return previous

    async def end_refresh(self, grant_id: int) -> None:
        """The provider answered every token call so far: nothing is in doubt."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE grants SET refresh_pending_since = NULL WHERE id = ?", (grant_id,)
            )

    async def unused_grants(self) -> list[GrantRow]:
        """Active grants no client was ever bound to (a sign-in that ticked other businesses)."""
        rows = await self._fetchall(
            "SELECT * FROM grants g WHERE g.state = 'active' AND g.bound_at IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.grant_id = g.id) ORDER BY g.id"
        )
        return [GrantRow(**dict(row)) for row in rows]

    async def list_grants(self, unused_only: bool = False) -> list[dict[str, Any]]:
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
            grants.append(grant)
        return grants

    async def mark_grant_revoked(self, grant_id: int, reason: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE grants SET state = 'revoked', state_reason = ? WHERE id = ?",
                (reason, grant_id),
            )

    async def grant_tenant(self, grant_id: int, tenant_id: str) -> TenantRow | None:
        """One tenant of a grant (by the table's primary key)."""
        row = await self._fetchone(
            "SELECT tenant_id, tenant_name, tenant_type, connection_id, auth_event_id "
            "FROM grant_tenants WHERE grant_id = ? AND tenant_id = ?",
            (grant_id, tenant_id),
        )
        return TenantRow(**dict(row)) if row else None

    async def grant_tenants(self, grant_id: int) -> list[TenantRow]:
        rows = await self._fetchall(
            "SELECT tenant_id, tenant_name, tenant_type, connection_id, auth_event_id "
            "FROM grant_tenants WHERE grant_id = ? ORDER BY tenant_name",
            (grant_id,),
        )
        return [TenantRow(**dict(row)) for row in rows]

    # ------------------------------------------------------------------ clients

    async def list_clients(
        self,
        *,
        statuses: list[str] | None,
        provider: str | None,
        text: str | None,
        active: bool | None,
        offset: int,
        limit: int,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Clients matching the filter, ordered by name; returns (total, page)."""
        where, params = _client_filter(statuses, provider, text, active)
        total_row = await self._fetchone(f"SELECT count(*) FROM clients c {where}", params)
        assert total_row is not None
        rows = await self._fetchall(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} {where} "
            "ORDER BY c.name COLLATE NOCASE, c.id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return total_row[0], [_client_dict(row) for row in rows]

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

    async def get_client(self, client_id: int) -> dict[str, Any] | None:
        row = await self._fetchone(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.id = ?", (client_id,)
        )
        return _client_dict(row) if row else None

    async def client_ids(self, *, active_only: bool = True) -> list[int]:
        rows = await self._fetchall(
            "SELECT id FROM clients WHERE active = 1 OR ? = 0 ORDER BY id", (int(active_only),)
        )
        return [row["id"] for row in rows]

    async def find_client_by_tenant(self, provider: str, tenant_id: str) -> dict[str, Any] | None:
        row = await self._fetchone(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.provider = ? AND c.tenant_id = ?",
            (provider, tenant_id),
        )
        return _client_dict(row) if row else None

    async def clients_of_grant(self, grant_id: int) -> list[dict[str, Any]]:
        rows = await self._fetchall(
            f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.grant_id = ? AND c.active = 1",
            (grant_id,),
        )
        return [_client_dict(row) for row in rows]

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
    ) -> int:
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO clients (provider, tenant_id, name, legal_name, abn, grant_id, "
                "status, status_since, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            assert cursor.lastrowid is not None
            if grant_id is not None:
                await self._mark_grant_bound(grant_id, now)
            return cursor.lastrowid

    async def update_client_details(self, client_id: int, now: datetime, **fields: Any) -> None:
        """Set plain detail columns (name, legal_name, abn, email, phone, grant_id)."""
        allowed = {"name", "legal_name", "abn", "email", "phone", "grant_id", "last_verified_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not client detail columns: {sorted(unknown)}")
        if not fields:
            return
        assignments = ", ".join(f"{column} = ?" for column in fields)
        async with self.transaction() as db:
            await db.execute(
                f"UPDATE clients SET {assignments}, updated_at = ? WHERE id = ?",
                [*fields.values(), to_iso(now), client_id],
            )
            if fields.get("grant_id") is not None:
                await self._mark_grant_bound(fields["grant_id"], now)

    async def _mark_grant_bound(self, grant_id: int, now: datetime) -> None:
        """A client was bound to the grant: it is no longer an unused sign-in."""
        await self._db.execute(
            "UPDATE grants SET bound_at = COALESCE(bound_at, ?) WHERE id = ?",
            (to_iso(now), grant_id),
        )

    async def set_client_status(
        self, client_id: int, status: ConnectionStatus, reason: str | None, now: datetime
    ) -> str | None:
        """Set the status; ``status_since`` moves only on a change. Returns the old status."""
        async with self.transaction() as db:
            row = await self._fetchone("SELECT status FROM clients WHERE id = ?", (client_id,))
            if row is None:
                return None
            old = row["status"]
            if old == status.value:
                await db.execute(
                    "UPDATE clients SET status_reason = ?, updated_at = ? WHERE id = ?",
                    (reason, to_iso(now), client_id),
                )
            else:
                await db.execute(
                    "UPDATE clients SET status = ?, status_reason = ?, status_since = ?, "
                    "updated_at = ? WHERE id = ?",
                    (status.value, reason, to_iso(now), to_iso(now), client_id),
                )
                await self.add_history(
                    client_id, "status", now, status=status.value, old_status=old, reason=reason
                )
            return old

    # ------------------------------------------------------------------ watcher

    async def watched_grants(self) -> list[GrantTimes]:
        """When each watched grant ends and is next due: active grants that an active client
        is bound to, and unused sign-ins (no client ever bound), which must not expire
        silently either."""
        rows = await self._fetchall(
            "SELECT id, access_expires_at, refresh_expires_at, hard_expires_at, next_check_at, "
            "refresh_pending_since FROM grants g WHERE g.state = 'active' AND (EXISTS "
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
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO client_history (client_id, at, kind, status, old_status, reason, "
                "actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (client_id, to_iso(now), kind, status, old_status, reason, actor),
            )

    async def client_history(self, client_id: int, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetchall(
            "SELECT at, kind, status, old_status, reason, actor FROM client_history "
            "WHERE client_id = ? ORDER BY id DESC LIMIT ?",
            (client_id, limit),
        )
        return [dict(row) for row in rows]

    # ------------------------------------------------------------------ notifications

    async def add_notification(
        self,
        *,
        kind: str,
        title: str,
        body: str,
        client_ids: list[int],
        desktop: str,
        now: datetime,
    ) -> int:
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO notifications (at, kind, title, body, client_ids, desktop) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (to_iso(now), kind, title, body, json.dumps(client_ids), desktop),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    async def set_notification_desktop(
        self, notification_id: int, desktop: str, desktop_id: str | None = None
    ) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE notifications SET desktop = ?, desktop_id = COALESCE(?, desktop_id) "
                "WHERE id = ?",
                (desktop, desktop_id, notification_id),
            )

    async def list_notifications(self, unread_only: bool, limit: int) -> list[dict[str, Any]]:
        where = "WHERE read = 0" if unread_only else ""
        rows = await self._fetchall(
            f"SELECT * FROM notifications {where} ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_notification_dict(row) for row in rows]

    async def unread_notifications_for(self, client_id: int) -> list[dict[str, Any]]:
        """Unread notifications that name this client (with or without others)."""
        rows = await self._fetchall(
            "SELECT n.* FROM notifications n, json_each(n.client_ids) j "
            "WHERE n.read = 0 AND j.value = ? ORDER BY n.id",
            (client_id,),
        )
        return [_notification_dict(row) for row in rows]

    async def mark_notifications_read(self, ids: list[int] | None) -> None:
        async with self.transaction() as db:
            if ids is None:
                await db.execute("UPDATE notifications SET read = 1 WHERE read = 0")
            else:
                await db.executemany(
                    "UPDATE notifications SET read = 1 WHERE id = ?", [(i,) for i in ids]
                )

    async def count_unread_notifications(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM notifications WHERE read = 0")
        assert row is not None
        return int(row[0])

    # ------------------------------------------------------------------ jobs

    async def create_job(
        self,
        *,
        kind: str,
        params: dict[str, Any],
        actor: str,
        client_ids: list[int],
        now: datetime,
        retry_of: int | None = None,
    ) -> int:
        """Record a job and every one of its items before any work starts."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO jobs (kind, state, params, actor, created_at, total, retry_of) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (kind, json.dumps(params), actor, to_iso(now), len(client_ids), retry_of),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            await db.executemany(
                "INSERT INTO job_items (job_id, position, client_id) VALUES (?, ?, ?)",
                [(job_id, position, client_id) for position, client_id in enumerate(client_ids)],
            )
        return job_id

    async def get_job(self, job_id: int) -> dict[str, Any] | None:
        row = await self._fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job_dict(row) if row else None

    async def list_jobs(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        if state is None:
            rows = await self._fetchall("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                "SELECT * FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?", (state, limit)
            )
        return [_job_dict(row) for row in rows]

    async def jobs_in_states(self, states: tuple[str, ...]) -> list[dict[str, Any]]:
        marks = ", ".join("?" * len(states))
        rows = await self._fetchall(
            f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", states
        )
        return [_job_dict(row) for row in rows]

    async def set_job_state(
        self,
        job_id: int,
        state: str,
        now: datetime,
        *,
        started: bool = False,
        finished: bool = False,
    ) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE jobs SET state = ?, "
                "started_at = CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END, "
                "finished_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
                (state, int(started), to_iso(now), int(finished), to_iso(now), job_id),
            )

    async def claim_item(self, job_id: int, now: datetime) -> dict[str, Any] | None:
        """Take the next pending item: it is marked running (committed) before work starts.

        One statement is atomic on its own, so it runs in autocommit under the write lock
        (the lock keeps it out of another task's open transaction): one trip, not three.
        """
        async with self._write_lock as depth:
            assert depth == 1, "claim_item must not run inside another transaction"
            rows = await self._db.execute_fetchall(
                "UPDATE job_items SET state = 'running', attempts = attempts + 1, "
                "started_at = ? WHERE id = (SELECT id FROM job_items WHERE job_id = ? AND "
                "state = 'pending' ORDER BY position LIMIT 1) RETURNING *, "
                "(SELECT name FROM clients WHERE id = client_id) AS name",
                (to_iso(now), job_id),
            )
        row = next(iter(rows), None)
        return _item_dict(row) if row else None

    async def release_item(self, item_id: int) -> None:
        """Put a running item back to pending (to be tried again)."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET state = 'pending' WHERE id = ? AND state = 'running'",
                (item_id,),
            )

    async def finish_item(
        self,
        item: dict[str, Any],
        state: str,
        now: datetime,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Record an item's outcome and the job's counters in one transaction."""
        counter = {"done": "done", "failed": "failed"}.get(state)
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET state = ?, error = ?, result = ?, finished_at = ? "
                "WHERE id = ?",
                (
                    state,
                    error,
                    json.dumps(result) if result is not None else None,
                    to_iso(now),
                    item["id"],
                ),
            )
            if counter:
                await db.execute(
                    f"UPDATE jobs SET {counter} = {counter} + 1 WHERE id = ?", (item["job_id"],)
                )

    async def items_in_state(self, job_id: int, state: str) -> list[dict[str, Any]]:
        rows = await self._fetchall(
            "SELECT * FROM job_items WHERE job_id = ? AND state = ? ORDER BY position",
            (job_id, state),
        )
        return [_item_dict(row) for row in rows]

    async def skip_pending_items(self, job_id: int, now: datetime) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET state = 'skipped', finished_at = ? "
                "WHERE job_id = ? AND state = 'pending'",
                (to_iso(now), job_id),
            )

    async def job_items(
        self, job_id: int, state: str | None, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        where = "WHERE i.job_id = ?" + (" AND i.state = ?" if state else "")
        params: list[Any] = [job_id] + ([state] if state else [])
        rows = await self._fetchall(
            "SELECT i.*, c.name AS name FROM job_items i JOIN clients c ON c.id = i.client_id "
            f"{where} ORDER BY i.position LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_item_dict(row) for row in rows]

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

    # ------------------------------------------------------------------ templates

    async def list_templates(self) -> list[dict[str, Any]]:
        rows = await self._fetchall("SELECT * FROM templates ORDER BY name COLLATE NOCASE")
        return [dict(row) for row in rows]

    async def get_template(self, template_id: int) -> dict[str, Any] | None:
        row = await self._fetchone("SELECT * FROM templates WHERE id = ?", (template_id,))
        return dict(row) if row else None

    async def save_template(
        self,
        template_id: int | None,
        *,
        name: str,
        channel: str,
        subject: str | None,
        body: str,
        now: datetime,
    ) -> int:
        async with self.transaction() as db:
            if template_id is None:
                cursor = await db.execute(
                    "INSERT INTO templates (name, channel, subject, body, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, channel, subject, body, to_iso(now), to_iso(now)),
                )
                assert cursor.lastrowid is not None
                return cursor.lastrowid
            await db.execute(
                "UPDATE templates SET name = ?, subject = ?, body = ?, updated_at = ? WHERE id = ?",
                (name, subject, body, to_iso(now), template_id),
            )
            return template_id

    async def delete_template(self, template_id: int) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM templates WHERE id = ?", (template_id,))

    # ------------------------------------------------------------------ invitations

    async def bank_user(self, client_id: int) -> str | None:
        row = await self._fetchone(
            "SELECT user_id FROM bank_users WHERE client_id = ?", (client_id,)
        )
        return row["user_id"] if row else None

    async def set_bank_user(self, client_id: int, user_id: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO bank_users (client_id, user_id) VALUES (?, ?)",
                (client_id, user_id),
            )

    async def add_invitation(self, **fields: Any) -> int:
        columns = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        async with self.transaction() as db:
            cursor = await db.execute(
                f"INSERT INTO invitations ({columns}) VALUES ({marks})", list(fields.values())
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    async def update_invitation(self, invitation_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in fields)
        async with self.transaction() as db:
            await db.execute(
                f"UPDATE invitations SET {assignments} WHERE id = ?",
                [*fields.values(), invitation_id],
            )

    async def delete_invitation(self, invitation_id: int) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM invitations WHERE id = ?", (invitation_id,))

    async def get_invitation(self, invitation_id: int) -> dict[str, Any] | None:
        row = await self._fetchone("SELECT * FROM invitations WHERE id = ?", (invitation_id,))
        return _invitation_dict(row) if row else None

    async def invitation_for_item(self, item_id: int) -> dict[str, Any] | None:
        row = await self._fetchone("SELECT * FROM invitations WHERE job_item_id = ?", (item_id,))
        return _invitation_dict(row) if row else None

    async def list_invitations(
        self, client_id: int | None, states: tuple[str, ...] | None, limit: int
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if client_id is not None:
            clauses.append("i.client_id = ?")
            params.append(client_id)
        if states:
            clauses.append(f"i.state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = await self._fetchall(
            "SELECT i.*, c.name AS client_name FROM invitations i "
            f"JOIN clients c ON c.id = i.client_id {where} ORDER BY i.id DESC LIMIT ?",
            [*params, limit],
        )
        return [_invitation_dict(row) for row in rows]

    async def set_bank_connection(
        self, connection_id: str, client_id: int, institution_id: str, status: str, now: datetime
    ) -> str | None:
        """Record a bank connection's status; returns the previous one."""
        async with self.transaction() as db:
            row = await self._fetchone(
                "SELECT status FROM bank_connections WHERE id = ?", (connection_id,)
            )
            await db.execute(
                "INSERT OR REPLACE INTO bank_connections (id, client_id, institution_id, status, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                (connection_id, client_id, institution_id, status, to_iso(now)),
            )
        return row["status"] if row else None

    async def bank_users(self) -> list[tuple[int, str]]:
        rows = await self._fetchall("SELECT client_id, user_id FROM bank_users ORDER BY client_id")
        return [(row["client_id"], row["user_id"]) for row in rows]

    async def bank_connections(self, client_id: int) -> list[dict[str, Any]]:
        rows = await self._fetchall(
            "SELECT * FROM bank_connections WHERE client_id = ? ORDER BY institution_id",
            (client_id,),
        )
        return [dict(row) for row in rows]

    # ------------------------------------------------------------------ audit

    async def add_audit(
        self,
        *,
        actor: str,
        action: str,
        client_id: int | None,
        detail: dict[str, Any],
        now: datetime,
    ) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO audit (at, actor, action, client_id, detail) VALUES (?, ?, ?, ?, ?)",
                (to_iso(now), actor, action, client_id, json.dumps(detail, sort_keys=True)),
            )

    async def list_audit(self, client_id: int | None, limit: int) -> list[dict[str, Any]]:
        if client_id is None:
            rows = await self._fetchall("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                "SELECT * FROM audit WHERE client_id = ? ORDER BY id DESC LIMIT ?",
                (client_id, limit),
            )
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]


def _client_filter(
    statuses: list[str] | None, provider: str | None, text: str | None, active: bool | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
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
        clause = (
            "(lower(c.name) LIKE ? ESCAPE '\\' OR lower(coalesce(c.legal_name, '')) LIKE ? "
            "ESCAPE '\\' OR lower(coalesce(c.email, '')) LIKE ? ESCAPE '\\'"
        )
        params.extend([needle, needle, needle])
        if digits:
            clause += " OR c.abn LIKE ?"
            params.append(f"%{digits}%")
        clauses.append(clause + ")")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return where, params


def _client_dict(row: sqlite3.Row) -> dict[str, Any]:
    client = dict(row)
    client["active"] = bool(client["active"])
    return client


def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    job["params"] = json.loads(job["params"])
    return job


def _item_dict(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["result"] = json.loads(item["result"]) if item.get("result") else None
    return item


def _invitation_dict(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["bank_ids"] = json.loads(item["bank_ids"])
    return item


def _notification_dict(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["client_ids"] = json.loads(item["client_ids"])
    item["read"] = bool(item["read"])
    return item


def split_statements(script: str) -> list[str]:
    """The SQL statements of ``script``: split only where SQLite says a statement ends, so
    a trigger's body or a ``';'`` literal stays whole."""
    statements: list[str] = []
    start = 0
    for end, character in enumerate(script):
        if character == ";" and sqlite3.complete_statement(script[start : end + 1]):
            statement = script[start : end + 1].strip()
            if statement.strip(";").strip():
                statements.append(statement)
            start = end + 1
    rest = script[start:].strip()
    if rest:
        raise ValueError(f"incomplete SQL statement at the end of a migration: {rest[:60]!r}")
    return statements


class _ReentrantLock:
    """An asyncio lock the holding task may enter again; yields the nesting depth."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: object | None = None
        self._depth = 0

    def held_by_current_task(self) -> bool:
        return self._depth > 0 and self._owner is asyncio.current_task()

    async def __aenter__(self) -> int:
        task = asyncio.current_task()
        if self._owner is task:
            self._depth += 1
            return self._depth
        await self._lock.acquire()
        self._owner = task
        self._depth = 1
        return 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()
