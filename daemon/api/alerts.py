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
        items = []
        for mail in await self._store.list_alert_mails(params.limit):
            clients = [item.client_id for item in await self._store.alert_items(mail.id)]
            items.append(mail.to_protocol(clients))
        return p.AlertsListResult(items=items)
