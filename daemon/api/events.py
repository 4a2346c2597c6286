"""``events.*``: a connection's subscription to the daemon's events."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.events import EventBus
from clientlink.daemon.rpc_server import CallContext


class EventsApi(Api):
    def __init__(self, events: EventBus) -> None:
        self._events = events

    @handles("events.subscribe")
    async def subscribe(
        self, params: p.EventsSubscribeParams, ctx: CallContext
    ) -> p.EventsSubscribeResult:
        """Push events to this connection from now on (and replay after ``since_seq``)."""
        topics = set(params.topics) if params.topics else None
        subscription, replayed, gap = self._events.subscribe(
            ctx.connection.send_event, topics, params.since_seq
        )
        ctx.connection.subscriptions.append(subscription)
        return p.EventsSubscribeResult(seq=self._events.last_seq, replayed=replayed, gap=gap)
