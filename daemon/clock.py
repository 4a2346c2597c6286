"""The daemon's sense of time, injectable so expiry can be tested without waiting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock UTC time plus an offset that tests (and only tests) move forward.

    Waits the daemon makes on purpose (retry backoffs, rate-limit waits, the notification
    digest window) go through :meth:`sleep`, so moving the clock ends them as real time would.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset
        self._advanced = 0.0  # seconds moved by advance(), for monotonic() and sleep()
        self._sleepers: set[asyncio.Future[None]] = set()

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps back on its own (``time.monotonic``), moved by
        :meth:`advance` like :meth:`now`: for measuring intervals such as rate-limit windows."""
        return time.monotonic() + self._advanced

    def advance(self, seconds: float) -> None:
        """Move this clock forward (never used outside tests and the sandbox demo)."""
        self.offset += timedelta(seconds=seconds)
        self._advanced += seconds
        for waiter in list(self._sleepers):
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    async def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` have passed on this clock: in real time (measured
        monotonically, as :func:`asyncio.sleep` does) plus however far :meth:`advance`
        moved it meanwhile. Yields to the loop even for zero or less, like asyncio.sleep."""
        loop = asyncio.get_running_loop()
        started = self.monotonic()
        waited = False
        while (remaining := seconds - (self.monotonic() - started)) > 0:
            waited = True
            waiter: asyncio.Future[None] = loop.create_future()
            self._sleepers.add(waiter)
            timer = loop.call_later(remaining, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._sleepers.discard(waiter)
        if not waited:
            await asyncio.sleep(0)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
