"""The event bus: numbered events, a replay buffer and per-subscriber delivery."""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from clientlink.common.protocol import Topic
from clientlink.common.timeutil import to_iso
from clientlink.daemon.clock import Clock

log = logging.getLogger(__name__)

Deliver = Callable[[dict[str, Any]], None]


class EventBus:
    """Publishes events with a daemon-wide sequence number to every subscriber.

    Delivery callbacks must not block: the RPC server queues the frame for the
    subscriber's own writer, so a slow reader never slows the publisher.
    """

    def __init__(self, clock: Clock, buffer_size: int = 2000) -> None:
        self._clock = clock
        self._seq = itertools.count(1)
        self.last_seq = 0
        self._buffer: deque[dict[str, Any]] = deque(maxlen=buffer_size)
        self._subscribers: dict[int, tuple[set[Topic] | None, Deliver]] = {}
        self._subscriber_ids = itertools.count(1)

    def publish(self, topic: Topic, **fields: Any) -> dict[str, Any]:
        """Number and deliver one event; returns it."""
        self.last_seq = next(self._seq)
        event = {"topic": str(topic), "seq": self.last_seq, "at": to_iso(self._clock.now())}
        event.update(fields)
        self._buffer.append(event)
        for topics, deliver in list(self._subscribers.values()):
            if topics is None or topic in topics:
                deliver(event)
        return event

    def subscribe(
        self, deliver: Deliver, topics: set[Topic] | None, since_seq: int | None = None
    ) -> tuple[int, int, bool]:
        """Register ``deliver``; replay buffered events after ``since_seq``.

        Returns ``(subscription id, events replayed, gap)`` where ``gap`` means some
        events after ``since_seq`` are no longer buffered and the caller must resync.
        """
        replayed, gap = 0, False
        if since_seq is not None and since_seq < self.last_seq:
            oldest = self._buffer[0]["seq"] if self._buffer else self.last_seq + 1
            gap = since_seq + 1 < oldest
            for event in self._buffer:
                if event["seq"] > since_seq and (topics is None or event["topic"] in topics):
                    deliver(event)
                    replayed += 1
        subscription = next(self._subscriber_ids)
        self._subscribers[subscription] = (topics, deliver)
        return subscription, replayed, gap

    def unsubscribe(self, subscription: int) -> None:
        """Stop delivering to a subscription (idempotent)."""
        self._subscribers.pop(subscription, None)
