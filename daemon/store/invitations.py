"""Invitations sent to clients (email or SMS) and how each one fares."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from clientlink.common import protocol as p
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class InvitationRow:
    """An invitation (``client_name`` where the query joins it)."""

    id: int
    client_id: int
    job_item_id: int | None
    channel: str
    template_id: str
    bank_ids: list[str]
    link_sealed: bytes | None
    link_expires_at: str | None
    state: str
    provider_ref: str | None
    error: str | None
    actor: str
    reminder_of: int | None
    created_at: str
    sent_at: str | None
    delivered_at: str | None
    opened_at: str | None
    connected_at: str | None
    reminded_at: str | None
    client_name: str | None = None

    def to_protocol(self) -> p.Invitation:
        """The RPC's shape (no sealed link); needs ``client_name`` joined."""
        return p.Invitation.model_validate(dataclasses.asdict(self))


class InvitationQueries(Database):
    """Reads and writes of ``invitations``."""

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

    async def get_invitation(self, invitation_id: int) -> InvitationRow | None:
        row = await self._fetchone("SELECT * FROM invitations WHERE id = ?", (invitation_id,))
        return _invitation_row(row) if row else None

    async def invitation_for_item(self, item_id: int) -> InvitationRow | None:
        row = await self._fetchone("SELECT * FROM invitations WHERE job_item_id = ?", (item_id,))
        return _invitation_row(row) if row else None

    async def list_invitations(
        self, client_id: int | None, states: tuple[str, ...] | None, limit: int
    ) -> list[InvitationRow]:
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
        return [_invitation_row(row) for row in rows]


def _invitation_row(row: sqlite3.Row) -> InvitationRow:
    item = dict(row)
    item["bank_ids"] = json.loads(item["bank_ids"])
    return InvitationRow(**item)
