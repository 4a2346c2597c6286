"""Times on the wire: ISO 8601 in UTC with a ``Z``, always timezone-aware in code."""

from __future__ import annotations

from datetime import UTC, datetime


def to_iso(moment: datetime | None) -> str | None:
    """``2026-11-22T22:38:43Z`` for an aware datetime; ``None`` stays ``None``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str | None) -> datetime | None:
    """Parse what :func:`to_iso` wrote (or any ISO 8601 with an offset) to aware UTC."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
