"""Notifications: what the daemon told the practice, read or not, and their desktop copy."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from clientlink.common import protocol as p
from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class NotificationRow:
    """A notification; ``desktop_id`` (the desktop's own id, to withdraw it) stays inside."""

    id: int
    at: str
    kind: str
    title: str
    body: str
    client_ids: list[int]
    read: bool
    desktop: str
    desktop_id: str | None

    def to_protocol(self) -> p.Notification:
        return p.Notification(
            id=self.id,
            at=self.at,
            kind=p.NotificationKind(self.kind),
            title=self.title,
            body=self.body,
            client_ids=self.client_ids,
            read=self.read,
            desktop=self.desktop,
        )


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

    async def update_notification(
        self, notification_id: int, *, title: str, body: str, client_ids: list[int]
    ) -> None:
        """A digest's new text and clients, once some of them no longer need attention."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE notifications SET title = ?, body = ?, client_ids = ? WHERE id = ?",
                (title, body, json.dumps(client_ids), notification_id),
            )

    async def list_notifications(self, unread_only: bool, limit: int) -> list[NotificationRow]:
        where = "WHERE read = 0" if unread_only else ""
        rows = await self._fetchall(
            f"SELECT * FROM notifications {where} ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_notification_row(row) for row in rows]

    async def unread_notifications_for(self, client_id: int) -> list[NotificationRow]:
        """Unread notifications that name this client (with or without others)."""
        rows = await self._fetchall(
            "SELECT n.* FROM notifications n, json_each(n.client_ids) j "
            "WHERE n.read = 0 AND j.value = ? ORDER BY n.id",
            (client_id,),
        )
        return [_notification_row(row) for row in rows]

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


def _notification_row(row: sqlite3.Row) -> NotificationRow:
    item = dict(row)
    item["client_ids"] = json.loads(item["client_ids"])
    item["read"] = bool(item["read"])
    return NotificationRow(**item)
