"""Notifications: what the daemon told the practice, read or not, and their desktop copy."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class NotificationRow:
    """A notification; returned as a dict in round 1 of the store split."""

    id: int
    at: str
    kind: str
    title: str
    body: str
    client_ids: list[int]
    read: bool
    desktop: str
    desktop_id: str | None


class NotificationQueries(Database):
    """Reads and writes of ``notifications``."""

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


def _notification_dict(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["client_ids"] = json.loads(item["client_ids"])
    item["read"] = bool(item["read"])
    return item
