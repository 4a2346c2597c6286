"""The event bus: numbered events, a replay buffer and per-subscriber delivery."""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from clientlink.common.protocol import EVENT_MODELS, Event, Topic
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
        self.epoch = secrets.token_hex(8)
        """A random id of this daemon start (``daemon.hello``): seq numbers restart with it."""
        self._seq = itertools.count(1)
        self.last_seq = 0
        self._buffer: deque[dict[str, Any]] = deque(maxlen=buffer_size)
        self._subscribers: dict[int, tuple[set[Topic] | None, Deliver]] = {}
        self._subscriber_ids = itertools.count(1)

    def publish(self, event: Event) -> dict[str, Any]:
        """Number, stamp and deliver one event built from its protocol model; returns it.

        The model is the topic's own (``EVENT_MODELS``), so what subscribers read is what
        the protocol says, checked where the event is made.
        """
        topic = event.topic
        if type(event) is not EVENT_MODELS.get(topic):
            raise TypeError(
                f"a {topic} event is a {EVENT_MODELS[topic].__name__}, not a {type(event).__name__}"
            )
        self.last_seq = next(self._seq)
        stamped = event.model_copy(update={"seq": self.last_seq, "at": to_iso(self._clock.now())})
        wire = stamped.model_dump(mode="json")
        self._buffer.append(wire)
        for topics, deliver in list(self._subscribers.values()):
            if topics is None or topic in topics:
                deliver(wire)
        return wire

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
