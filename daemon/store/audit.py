"""The audit trail: who did what, to which client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class AuditRow:
    """One audit entry; returned as a dict in round 1 of the store split."""

    id: int
    at: str
    actor: str
    action: str
    client_id: int | None
    detail: dict[str, Any]


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
