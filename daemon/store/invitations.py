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
        return await self.commit_unit(lambda conn: add_invitation_sync(conn, fields))

    async def update_invitation(self, invitation_id: int, **fields: Any) -> None:
        if self.in_transaction():
            await self.run_sync(lambda conn: update_invitation_sync(conn, invitation_id, fields))
        else:
            await self.commit_unit(lambda conn: update_invitation_sync(conn, invitation_id, fields))

    async def invitation_start(
        self, item_id: int, client_id: int
    ) -> tuple[InvitationRow | None, str | None]:
        """What sending a job item's invitation starts from, in one trip: the item's
        invitation (a redone item's) and the client's bank-feed user."""

        def read(conn: sqlite3.Connection) -> tuple[InvitationRow | None, str | None]:
            row = conn.execute(
                "SELECT * FROM invitations WHERE job_item_id = ?", (item_id,)
            ).fetchone()
            user = conn.execute(
                "SELECT user_id FROM bank_users WHERE client_id = ?", (client_id,)
            ).fetchone()
            return (_invitation_row(row) if row else None, user[0] if user else None)

        return await self.run_sync(read)

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


def bank_user_state_sync(
    conn: sqlite3.Connection, client_id: int, marker: str
) -> tuple[str | None, bool]:
    """The client's bank-feed user, and whether ``marker`` (set while a creation is under
    way; still set: its answer was lost) is set."""
    user = conn.execute(
        "SELECT user_id FROM bank_users WHERE client_id = ?", (client_id,)
    ).fetchone()
    pending = conn.execute("SELECT value FROM meta WHERE key = ?", (marker,)).fetchone()
    return (user[0] if user else None, bool(pending and pending[0]))


def add_invitation_sync(conn: sqlite3.Connection, fields: dict[str, Any]) -> int:
    """Insert an invitation (``fields`` are its columns, named by the code); its id."""
    columns = ", ".join(fields)
    marks = ", ".join("?" * len(fields))
    cursor = conn.execute(
        f"INSERT INTO invitations ({columns}) VALUES ({marks})", list(fields.values())
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def update_invitation_sync(
    conn: sqlite3.Connection, invitation_id: int, fields: dict[str, Any]
) -> None:
    assignments = ", ".join(f"{column} = ?" for column in fields)
    conn.execute(
        f"UPDATE invitations SET {assignments} WHERE id = ?", [*fields.values(), invitation_id]
    )
