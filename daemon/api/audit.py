"""``audit.*``: who did what to which client."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store


class AuditApi(Api):
    def __init__(self, store: Store) -> None:
        self._store = store

    @handles("audit.list")
    async def list(self, params: p.AuditListParams, ctx: CallContext) -> p.AuditListResult:
        """Who did what to which client, newest first."""
        rows = await self._store.list_audit(params.client_id, params.limit)
        return p.AuditListResult(items=[row.to_protocol() for row in rows])
