"""Small settings (``meta``) and sealed secrets (app client secrets, channel keys).

Secrets arrive here already sealed by the vault; this module never sees plaintext.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


class MetaAndSecrets(Database):
    """The ``meta`` key/value table and the ``secrets`` table."""

    async def get_meta(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction():
            await self.run_sync(lambda conn: set_meta_sync(conn, key, value))

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


def set_meta_sync(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
