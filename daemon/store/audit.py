"""The audit trail: who did what, to which client."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class AuditRow:
    """One audit entry."""

    id: int
    at: str
    actor: str
    action: str
    client_id: int | None
    detail: dict[str, Any]
    client_name: str | None = None

    def to_protocol(self) -> p.AuditEntry:
        return p.AuditEntry.model_validate(dataclasses.asdict(self))


class AuditQueries(Database):
    """Reads and writes of ``audit``."""

    async def add_audit(
        self,
        *,
        actor: str,
        action: str,
        client_id: int | None,
        detail: dict[str, Any],
        now: datetime,
    ) -> None:
        at = to_iso(now)
        async with self.transaction():
            await self.run_sync(
                lambda conn: add_audit_sync(
                    conn, actor=actor, action=action, client_id=client_id, detail=detail, at=at
                )
            )

    async def list_audit(
        self,
        client_id: int | None,
        limit: int,
        *,
        actor: str | None = None,
        offset: int = 0,
    ) -> list[AuditRow]:
        """Entries newest first, by client and by staff member (login), a page at a time;
        each with the client's name as it is now."""
        where, params = _audit_filter(client_id, actor)
        rows = await self._fetchall(
            "SELECT a.id, a.at, a.actor, a.action, a.client_id, a.detail, "
            f"c.name AS client_name FROM audit a LEFT JOIN clients c ON c.id = a.client_id "
            f"{where} ORDER BY a.id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [AuditRow(**{**dict(row), "detail": json.loads(row["detail"])}) for row in rows]

    async def count_audit(self, client_id: int | None, *, actor: str | None = None) -> int:
        where, params = _audit_filter(client_id, actor)
        row = await self._fetchone(f"SELECT count(*) FROM audit a {where}", params)
        assert row is not None
        return int(row[0])


def _audit_filter(client_id: int | None, actor: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if client_id is not None:
        clauses.append("a.client_id = ?")
        params.append(client_id)
    if actor is not None:
        clauses.append("a.actor = ?")
        params.append(actor)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def add_audit_sync(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    client_id: int | None,
    detail: dict[str, Any],
    at: str | None,
) -> None:
    """The audit entry's statement (see ``Database.run_sync``)."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, client_id, detail) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, client_id, json.dumps(detail, sort_keys=True)),
    )
