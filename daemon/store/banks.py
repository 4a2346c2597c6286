"""Bank feeds: each client's bank-feed user and the state of its bank connections."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class BankConnectionRow:
    """A client's connection to one bank, as last followed up."""

    id: str
    client_id: int
    institution_id: str
    status: str
    updated_at: str

    def to_protocol(self, bank_name: str) -> p.BankConnection:
        return p.BankConnection(
            id=self.id,
            institution_id=self.institution_id,
            bank_name=bank_name,
            status=self.status,
            needs_reconnect=self.status == "invalid",
            updated_at=self.updated_at,
        )


class BankQueries(Database):
    """Reads and writes of ``bank_users`` and ``bank_connections``."""

    async def bank_user(self, client_id: int) -> str | None:
        row = await self._fetchone(
            "SELECT user_id FROM bank_users WHERE client_id = ?", (client_id,)
        )
        return row["user_id"] if row else None

    async def set_bank_user(self, client_id: int, user_id: str) -> None:
        async with self.transaction():
            await self.run_sync(lambda conn: set_bank_user_sync(conn, client_id, user_id))

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

    async def bank_connections(self, client_id: int) -> list[BankConnectionRow]:
        rows = await self._fetchall(
            "SELECT * FROM bank_connections WHERE client_id = ? ORDER BY institution_id",
            (client_id,),
        )
        return [BankConnectionRow(**row) for row in rows]


def set_bank_user_sync(conn: sqlite3.Connection, client_id: int, user_id: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO bank_users (client_id, user_id) VALUES (?, ?)",
        (client_id, user_id),
    )
