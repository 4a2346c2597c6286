"""Invitation templates written in the Communication Center."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clientlink.common.timeutil import to_iso
from clientlink.daemon.store.core import Database


@dataclass(frozen=True)
class TemplateRow:
    """A template the practice wrote (the built-in ones are not stored)."""

    id: int
    name: str
    channel: str
    subject: str | None
    body: str
    created_at: str
    updated_at: str


class TemplateQueries(Database):
    """Reads and writes of ``templates``."""

    async def list_templates(self) -> list[TemplateRow]:
        rows = await self._fetchall("SELECT * FROM templates ORDER BY name COLLATE NOCASE")
        return [TemplateRow(**row) for row in rows]

    async def get_template(self, template_id: int) -> TemplateRow | None:
        row = await self._fetchone("SELECT * FROM templates WHERE id = ?", (template_id,))
        return TemplateRow(**row) if row else None

    async def save_template(
        self,
        template_id: int | None,
        *,
        name: str,
        channel: str,
        subject: str | None,
        body: str,
        now: datetime,
    ) -> int:
        async with self.transaction() as db:
            if template_id is None:
                cursor = await db.execute(
                    "INSERT INTO templates (name, channel, subject, body, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, channel, subject, body, to_iso(now), to_iso(now)),
                )
                assert cursor.lastrowid is not None
                return cursor.lastrowid
            await db.execute(
                "UPDATE templates SET name = ?, subject = ?, body = ?, updated_at = ? WHERE id = ?",
                (name, subject, body, to_iso(now), template_id),
            )
            return template_id

    async def delete_template(self, template_id: int) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM templates WHERE id = ?", (template_id,))
