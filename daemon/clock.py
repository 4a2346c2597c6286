"""The daemon's sense of time, injectable so expiry can be tested without waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock UTC time plus an offset that tests (and only tests) move forward."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        """Move this clock forward (never used outside tests and the sandbox demo)."""
        self.offset += timedelta(seconds=seconds)
