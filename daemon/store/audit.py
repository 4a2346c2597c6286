"""The audit trail: who did what, to which client."""

from __future__ import annotations

import dataclasses
import json
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
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO audit (at, actor, action, client_id, detail) VALUES (?, ?, ?, ?, ?)",
                (to_iso(now), actor, action, client_id, json.dumps(detail, sort_keys=True)),
            )

    async def list_audit(self, client_id: int | None, limit: int) -> list[AuditRow]:
        if client_id is None:
            rows = await self._fetchall("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                "SELECT * FROM audit WHERE client_id = ? ORDER BY id DESC LIMIT ?",
                (client_id, limit),
            )
        return [AuditRow(**{**dict(row), "detail": json.loads(row["detail"])}) for row in rows]
