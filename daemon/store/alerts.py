"""Alert digests by email: the mails (one per recipient per window) and the clients in each.

A mail is ``queued`` until its window ends (``due_at``), ``sending`` from the moment its
bytes may leave, then ``sent``; or ``failed`` (refused for good), ``uncertain`` (the
connection broke after DATA, or the daemon stopped while sending: never resent), or
``dropped`` (nothing left to say: every client recovered, or the person opted out).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.timeutil import from_iso, to_iso
from clientlink.daemon.store.core import Database

MAIL_COLUMNS = (
    "id, recipient, staff_login, state, due_at, attempts, error, message_id, created_at, sent_at"
)


@dataclass(frozen=True)
class AlertMailRow:
    id: int
    recipient: str
    staff_login: str | None
    state: str
    due_at: str
    attempts: int
    error: str | None
    message_id: str | None
    created_at: str
    sent_at: str | None

    def to_protocol(self, client_ids: list[int]) -> p.AlertMail:
        return p.AlertMail(
            id=self.id,
            recipient=self.recipient,
            staff_login=self.staff_login,
            state=self.state,  # type: ignore[arg-type]
            due_at=self.due_at,
            attempts=self.attempts,
            error=self.error,
            client_ids=client_ids,
            created_at=self.created_at,
            sent_at=self.sent_at,
        )


@dataclass(frozen=True)
class AlertItemRow:
    """One client in a mail: its status, why, and since when (the episode it names)."""

    client_id: int
    status: str
    reason: str | None
    since: str


def _mail(row: Any) -> AlertMailRow:
    return AlertMailRow(**dict(row))


class AlertQueries(Database):
    """Reads and writes of ``alert_mails`` and ``alert_items``."""

    async def queue_alert(
        self,
        *,
        recipient: str,
        staff_login: str | None,
        client_id: int,
        status: str,
        reason: str | None,
        since: str,
        window: timedelta,
        now: datetime,
        busy: Collection[int] = (),
    ) -> int:
        """Put one client's alert in ``recipient``'s queued mail, opening one whose window
        ends ``window`` after now, and no sooner than ``window`` after their last mail went
        out. A mail in ``busy`` (being sent right now) takes no more clients: they wait
        for the next one. Returns the mail's id."""
        async with self.transaction() as db:
            busy_ids = sorted(busy)
            row = await self._fetchone(
                "SELECT id FROM alert_mails WHERE recipient = ? AND state = 'queued' "
                f"AND id NOT IN ({', '.join('?' * len(busy_ids))}) ORDER BY id LIMIT 1",
                (recipient, *busy_ids),
            )
            if row is not None:
                mail_id = int(row["id"])
            else:
                last = await self._fetchone(
                    "SELECT MAX(COALESCE(sent_at, created_at)) AS last FROM alert_mails "
                    "WHERE recipient = ? AND state IN ('sending', 'sent', 'uncertain', 'failed')",
                    (recipient,),
                )
                start = now
                last_at = from_iso(last["last"]) if last is not None else None
                if last_at is not None and last_at > start:
                    start = last_at
                cursor = await db.execute(
                    "INSERT INTO alert_mails (recipient, staff_login, state, due_at, created_at) "
                    "VALUES (?, ?, 'queued', ?, ?)",
                    (recipient, staff_login, to_iso(start + window), to_iso(now)),
                )
                assert cursor.lastrowid is not None
                mail_id = cursor.lastrowid
            await db.execute(
                "INSERT OR IGNORE INTO alert_items (mail_id, client_id, status, reason, since) "
                "VALUES (?, ?, ?, ?, ?)",
                (mail_id, client_id, status, reason, since),
            )
            return mail_id

    async def get_alert_mail(self, mail_id: int) -> AlertMailRow | None:
        row = await self._fetchone(
            f"SELECT {MAIL_COLUMNS} FROM alert_mails WHERE id = ?", (mail_id,)
        )
        return _mail(row) if row else None

    async def alert_mails_in(self, state: str) -> list[AlertMailRow]:
        rows = await self._fetchall(
            f"SELECT {MAIL_COLUMNS} FROM alert_mails WHERE state = ? ORDER BY due_at, id", (state,)
        )
        return [_mail(row) for row in rows]

    async def alert_items(self, mail_id: int) -> list[AlertItemRow]:
        rows = await self._fetchall(
            "SELECT client_id, status, reason, since FROM alert_items WHERE mail_id = ? "
            "ORDER BY id",
            (mail_id,),
        )
        return [AlertItemRow(**dict(row)) for row in rows]

    async def update_alert_mail(self, mail_id: int, **fields: Any) -> None:
        allowed = {"state", "due_at", "attempts", "error", "message_id", "sent_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not alert mail columns: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in fields)
        async with self.transaction() as db:
            await db.execute(
                f"UPDATE alert_mails SET {assignments} WHERE id = ?", [*fields.values(), mail_id]
            )

    async def list_alert_mails(self, limit: int) -> list[AlertMailRow]:
        rows = await self._fetchall(
            f"SELECT {MAIL_COLUMNS} FROM alert_mails ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_mail(row) for row in rows]
