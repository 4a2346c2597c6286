"""The practice's staff: who may use a firm-mode daemon, and in which role."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database

STAFF_COLUMNS = (
    "id, login, display_name, email, role, state, preferences, created_at, updated_at, left_at"
)


@dataclass(frozen=True)
class StaffRow:
    """One staff member, by Unix login."""

    id: int
    login: str
    display_name: str
    email: str | None
    role: str
    state: str
    preferences: dict[str, Any]
    created_at: str
    updated_at: str
    left_at: str | None

    @property
    def active(self) -> bool:
        return self.state == "active"

    def to_protocol(self) -> p.StaffMember:
        return p.StaffMember.model_validate(dataclasses.asdict(self))


def _row(row: Any) -> StaffRow:
    return StaffRow(**{**dict(row), "preferences": json.loads(row["preferences"] or "{}")})


class StaffQueries(Database):
    """Reads and writes of ``staff``."""

    async def list_staff(self) -> list[StaffRow]:
        rows = await self._fetchall(
            f"SELECT {STAFF_COLUMNS} FROM staff ORDER BY display_name COLLATE NOCASE, login"
        )
        return [_row(row) for row in rows]

    async def get_staff(self, login: str) -> StaffRow | None:
        row = await self._fetchone(f"SELECT {STAFF_COLUMNS} FROM staff WHERE login = ?", (login,))
        return _row(row) if row else None

    async def add_staff(
        self,
        *,
        login: str,
        display_name: str,
        email: str | None,
        role: str,
        now: datetime,
    ) -> StaffRow:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO staff (login, display_name, email, role, state, preferences, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'active', '{}', ?, ?)",
                (login, display_name, email, role, to_iso(now), to_iso(now)),
            )
        added = await self.get_staff(login)
        assert added is not None
        return added

    async def update_staff(self, login: str, now: datetime, **fields: Any) -> None:
        """Set plain columns (display_name, email, role, state, left_at, preferences)."""
        allowed = {"display_name", "email", "role", "state", "left_at", "preferences"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not staff columns: {sorted(unknown)}")
        if "preferences" in fields:
            fields["preferences"] = json.dumps(fields["preferences"], sort_keys=True)
        if not fields:
            return
        assignments = ", ".join(f"{column} = ?" for column in fields)
        async with self.transaction() as db:
            await db.execute(
                f"UPDATE staff SET {assignments}, updated_at = ? WHERE login = ?",
                [*fields.values(), to_iso(now), login],
            )
