"""How calls take turns on the daemon's event loop, across every connection."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator


class FairGate:
    """Admits calls to run, ``capacity`` at a time, the least busy connection's first.

    A waiting call is ranked by how many calls its connection had in flight when it
    arrived, then by arrival: a client making one call at a time goes ahead of a client
    with a pipeline full, so a flood waits for itself and not others for it. A call still
    running after ``patience`` seconds is waiting on something outside (a provider, the
    disk) rather than using the loop, so it gives its turn on without being stopped.
    """

    def __init__(self, capacity: int, patience: float) -> None:
        self.capacity = max(1, capacity)
        self.patience = patience
        self.running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, load: int) -> AsyncIterator[None]:
        """Hold a turn for the body (a call of a connection with ``load`` calls in flight)."""
        await self._acquire(load)
        held = [True]

        def give_on() -> None:
            if held[0]:
                held[0] = False
                self._release()

        timer = asyncio.get_running_loop().call_later(self.patience, give_on)
        try:
            yield
        finally:
            timer.cancel()
            give_on()

    async def _acquire(self, load: int) -> None:
        if self.running < self.capacity and not self._waiting:
            self.running += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (load, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # admitted and cancelled at once: pass the turn on
            raise

    def _release(self) -> None:
        self.running -= 1
        while self._waiting and self.running < self.capacity:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                self.running += 1
                turn.set_result(None)
