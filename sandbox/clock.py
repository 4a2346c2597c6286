"""An adjustable clock so expiry can be rehearsed and tested without waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SandboxClock:
    """Real UTC time plus an offset that the admin API (or a test) can move.

    Keeping an offset rather than a frozen instant means time still flows while a demo runs,
    so TOTP codes roll over and tokens age naturally between manual clock jumps.
    """

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        """Return the sandbox's current time as an aware UTC datetime."""
        return datetime.now(UTC) + self._offset

    @property
    def offset_seconds(self) -> float:
        """How far the sandbox clock is ahead of (or behind) real time, in seconds."""
        return self._offset.total_seconds()

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by `seconds` (negative moves it back); return the new now."""
        self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, moment: datetime) -> datetime:
        """Jump the clock to `moment` (naive values are taken as UTC); return the new now."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        self._offset = moment - datetime.now(UTC)
        return self.now()

    def reset(self) -> None:
        """Go back to real time."""
        self._offset = timedelta()
