"""``notifications.*``: the stored notifications and marking them read."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.notifications import Notifier
from clientlink.daemon.rpc_server import CallContext


class NotificationsApi(Api):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    @handles("notifications.list")
    async def list(
        self, params: p.NotificationsListParams, ctx: CallContext
    ) -> p.NotificationsListResult:
        """Stored notifications, newest first, and how many are unread."""
        return await self._notifier.list(params.unread_only, params.limit)

    @handles("notifications.ack")
    async def ack(
        self, params: p.NotificationsAckParams, ctx: CallContext
    ) -> p.NotificationsAckResult:
        """Mark notifications read (all unread ones when no ids are given)."""
        return p.NotificationsAckResult(unread=await self._notifier.ack(params.ids))
