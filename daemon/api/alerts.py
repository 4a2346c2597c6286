"""``alerts.*``: the alert digest emails and what became of each."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store


class AlertsApi(Api):
    def __init__(self, store: Store) -> None:
        self._store = store

    @handles("alerts.list")
    async def list(self, params: p.AlertsListParams, ctx: CallContext) -> p.AlertsListResult:
        """Alert digest emails, newest first: to whom, about which clients, and whether
        each was sent, is waiting (and why), was dropped, failed or is uncertain."""
        return p.AlertsListResult(items=await self._store.list_alert_mails(params.limit))
