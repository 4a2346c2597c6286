"""Jobs (bulk actions) and their items, recorded before work starts."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.clients import CLIENT_COLUMNS, CLIENT_FROM, ClientRow, client_row
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class JobRow:
    """A job and its counters."""

    id: int
    kind: str
    state: str
    params: dict[str, Any]
    actor: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    total: int
    done: int
    failed: int
    retry_of: int | None


@dataclass(frozen=True)
class JobItemRow:
    """One item of a job (``name`` is the client's, where the query joins it)."""

    id: int
    job_id: int
    position: int
    client_id: int
    state: str
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    started_at: str | None
    finished_at: str | None
    name: str | None = None
    client: ClientRow | None = dataclasses.field(default=None, compare=False, repr=False)
    """The client's row as it was when the item was claimed (``claim_item`` reads it)."""

    def to_protocol(self) -> p.JobItem:
        """The RPC's shape (needs ``name`` joined); a re-import's changes come from its result."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.pop("client")
        result = self.result or {}
        return p.JobItem.model_validate(
            {**fields, "changes": result.get("changes"), "applied_at": result.get("applied_at")}
        )


class JobQueries(Database):
    """Reads and writes of ``jobs`` and ``job_items``."""

    async def create_job(
        self,
        *,
        kind: str,
        params: dict[str, Any],
        actor: str,
        client_ids: list[int],
        now: datetime,
        retry_of: int | None = None,
        skipped: dict[int, str] | None = None,
    ) -> int:
        """Record a job and every one of its items before any work starts; ``skipped``
        (client id: why) are recorded after them as already skipped, in the same commit."""
        skipped = skipped or {}
        total = len(client_ids) + len(skipped)
        async with self.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO jobs (kind, state, params, actor, created_at, total, retry_of) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (kind, json.dumps(params), actor, to_iso(now), total, retry_of),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            await db.executemany(
                "INSERT INTO job_items (job_id, position, client_id) VALUES (?, ?, ?)",
                [(job_id, position, client_id) for position, client_id in enumerate(client_ids)],
            )
            await db.executemany(
                "INSERT INTO job_items (job_id, position, client_id, state, error, finished_at) "
                "VALUES (?, ?, ?, 'skipped', ?, ?)",
                [
                    (job_id, len(client_ids) + offset, client_id, reason, to_iso(now))
                    for offset, (client_id, reason) in enumerate(skipped.items())
                ],
            )
        return job_id

    async def held_job_items(
        self, kind: str, states: tuple[str, ...]
    ) -> list[tuple[int, int, str, str, str]]:
        """(client id, job id, actor, job state, job created) of every item still to do in
        the jobs of ``kind`` in ``states``, oldest job first."""
        marks = ", ".join("?" * len(states))
        rows = await self._fetchall(
            "SELECT i.client_id, j.id, j.actor, j.state, j.created_at FROM job_items i "
            "JOIN jobs j ON j.id = i.job_id WHERE j.kind = ? AND j.state IN "
            f"({marks}) AND i.state IN ('pending', 'running') ORDER BY j.id",
            (kind, *states),
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    async def get_job(self, job_id: int) -> JobRow | None:
        row = await self._fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job_row(row) if row else None

    async def list_jobs(self, state: str | None, limit: int) -> list[JobRow]:
        if state is None:
            rows = await self._fetchall("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                "SELECT * FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?", (state, limit)
            )
        return [_job_row(row) for row in rows]

    async def jobs_in_states(self, states: tuple[str, ...]) -> list[JobRow]:
        marks = ", ".join("?" * len(states))
        rows = await self._fetchall(
            f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", states
        )
        return [_job_row(row) for row in rows]

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

    async def claim_item(
        self, job_id: int, now: datetime, below: int | None = None
    ) -> JobItemRow | None:
        """Take the next pending item: it is marked running (committed) before work starts.
        ``below``: only an item before this position (a job waiting for a sign-in). The
        item carries its client's row (``client``), read in the same trip.

        One statement is atomic on its own, so it runs in autocommit under the write lock
        (the lock keeps it out of another task's open transaction): one trip, not three.
        """
        at = to_iso(now)
        async with self._write_lock as depth:
            assert depth == 1, "claim_item must not run inside another transaction"
            return await self.run_sync(lambda conn: claim_sync(conn, job_id, at, below))

    async def set_job_params(self, job_id: int, params: dict[str, Any]) -> None:
        """Replace a job's params (a multi-business re-authorisation's sign-ins)."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE jobs SET params = ? WHERE id = ?", (json.dumps(params), job_id)
            )

    async def fail_pending_between(
        self,
        job_id: int,
        first: int,
        end: int,
        error: str,
        now: datetime,
        params: dict[str, Any],
    ) -> int:
        """Fail the pending items at positions ``first`` to ``end`` with ``error`` and
        replace the job's params, in one transaction; returns how many failed."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE job_items SET state = 'failed', error = ?, finished_at = ? "
                "WHERE job_id = ? AND state = 'pending' AND position >= ? AND position < ?",
                (error, to_iso(now), job_id, first, end),
            )
            count = cursor.rowcount
            await db.execute(
                "UPDATE jobs SET failed = failed + ?, params = ? WHERE id = ?",
                (count, json.dumps(params), job_id),
            )
        return count

    async def unclaim_item(self, item_id: int) -> None:
        """Put back an item claimed but never started (its claim is not an attempt)."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET state = 'pending', attempts = MAX(attempts - 1, 0), "
                "started_at = NULL WHERE id = ? AND state = 'running'",
                (item_id,),
            )

    async def release_item(self, item_id: int) -> None:
        """Put a running item back to pending (to be tried again)."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET state = 'pending' WHERE id = ? AND state = 'running'",
                (item_id,),
            )

    async def finish_item(
        self,
        item: JobItemRow,
        state: str,
        now: datetime,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Record an item's outcome and the job's counters in one transaction."""
        at = to_iso(now)
        async with self.transaction():
            await self.run_sync(
                lambda conn: finish_item_sync(conn, item, state, at, error=error, result=result)
            )

    async def set_item_result(self, item_id: int, result: dict[str, Any]) -> None:
        """Replace a finished item's result (a re-import's, once its changes are applied)."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET result = ? WHERE id = ?", (json.dumps(result), item_id)
            )

    async def items_in_state(self, job_id: int, state: str) -> list[JobItemRow]:
        rows = await self._fetchall(
            "SELECT * FROM job_items WHERE job_id = ? AND state = ? ORDER BY position",
            (job_id, state),
        )
        return [_item_row(row) for row in rows]

    async def skip_pending_items(self, job_id: int, now: datetime) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE job_items SET state = 'skipped', finished_at = ? "
                "WHERE job_id = ? AND state = 'pending'",
                (to_iso(now), job_id),
            )

    async def job_items(
        self, job_id: int, state: str | None, offset: int, limit: int
    ) -> list[JobItemRow]:
        where = "WHERE i.job_id = ?" + (" AND i.state = ?" if state else "")
        params: list[Any] = [job_id] + ([state] if state else [])
        rows = await self._fetchall(
            "SELECT i.*, c.name AS name FROM job_items i JOIN clients c ON c.id = i.client_id "
            f"{where} ORDER BY i.position LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_item_row(row) for row in rows]


def _job_row(row: sqlite3.Row) -> JobRow:
    job = dict(row)
    job["params"] = json.loads(job["params"])
    return JobRow(**job)


def _item_row(row: sqlite3.Row) -> JobItemRow:
    item = dict(row)
    item["result"] = json.loads(item["result"]) if item.get("result") else None
    return JobItemRow(**item)


# The statements of an item's claim and outcome, as plain functions of the connection
# (see ``Database.run_sync``): the job engine's commit of an item runs its outcome in the
# same unit as the item's own effect.

_CLAIM = (
    "UPDATE job_items SET state = 'running', attempts = attempts + 1, "
    "started_at = ? WHERE id = (SELECT id FROM job_items WHERE job_id = ? AND "
    "state = 'pending' AND (? IS NULL OR position < ?) ORDER BY position LIMIT 1) "
    "RETURNING *"
)
_CLAIMED_CLIENT = f"SELECT {CLIENT_COLUMNS} FROM {CLIENT_FROM} WHERE c.id = ?"


def claim_sync(
    conn: sqlite3.Connection, job_id: int, at: str | None, below: int | None
) -> JobItemRow | None:
    cursor = conn.execute(_CLAIM, (at, job_id, below, below))
    row = cursor.fetchone()
    cursor.close()
    if row is None:
        return None
    item = dict(row)
    found = conn.execute(_CLAIMED_CLIENT, (item["client_id"],)).fetchone()
    client = client_row(found) if found else None
    item["name"] = client.name if client else None
    item["result"] = json.loads(item["result"]) if item.get("result") else None
    return JobItemRow(**item, client=client)


def finish_item_sync(
    conn: sqlite3.Connection,
    item: JobItemRow,
    state: str,
    at: str | None,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    """An item's outcome and the job's counter."""
    conn.execute(
        "UPDATE job_items SET state = ?, error = ?, result = ?, finished_at = ? WHERE id = ?",
        (state, error, json.dumps(result) if result is not None else None, at, item.id),
    )
    if state == "done":
        conn.execute("UPDATE jobs SET done = done + 1 WHERE id = ?", (item.job_id,))
    elif state == "failed":
        conn.execute("UPDATE jobs SET failed = failed + 1 WHERE id = ?", (item.job_id,))
