"""``audit.*``: who did what to which client, and the trail as a CSV file."""

from __future__ import annotations

import json

from clientlink.common import protocol as p
from clientlink.common.paths import Paths
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clock import Clock
from clientlink.daemon.export import check_target, write_csv
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import AuditRow, Store

AUDIT_PAGE = 5000
AUDIT_CSV_HEADER = (
    "When (UTC)",
    "Staff login",
    "Staff member",
    "Action",
    "Client id",
    "Client",
    "Detail",
)


class AuditApi(Api):
    def __init__(self, store: Store, staff: StaffDirectory, paths: Paths, clock: Clock) -> None:
        self._store = store
        self._staff = staff
        self._paths = paths
        self._clock = clock

    @handles("audit.list")
    async def list(self, params: p.AuditListParams, ctx: CallContext) -> p.AuditListResult:
        """Who did what to which client, newest first: filtered by client and by staff
        member (login), a page at a time (``offset``, ``limit``; ``total`` counts them)."""
        rows = await self._store.list_audit(
            params.client_id, params.limit, actor=params.actor, offset=params.offset
        )
        total = await self._store.count_audit(params.client_id, actor=params.actor)
        return p.AuditListResult(items=[self._entry(row) for row in rows], total=total)

    @handles("audit.export")
    async def export(self, params: p.AuditExportParams, ctx: CallContext) -> p.ExportResult:
        """Write the audit trail (newest first, with the filters of audit.list) to a CSV file,
        checked and written like clients.export."""
        path, created = check_target(params.path, params.overwrite, self._paths, ctx.peer.uid)
        rows: list[AuditRow] = []
        while True:
            page = await self._store.list_audit(
                params.client_id, AUDIT_PAGE, actor=params.actor, offset=len(rows)
            )
            rows += page
            if len(page) < AUDIT_PAGE:
                break
        cells = (
            [
                row.at,
                row.actor,
                self._staff.name_of(row.actor),
                row.action,
                row.client_id,
                row.client_name,
                json.dumps(row.detail, sort_keys=True, ensure_ascii=False),
            ]
            for row in rows
        )
        count = write_csv(path, AUDIT_CSV_HEADER, cells)
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="audit.export",
            client_id=None,
            detail={"path": str(path), "rows": count},
            now=self._clock.now(),
        )
        return p.ExportResult(
            path=str(path), rows=count, created_folder=str(created) if created else None
        )

    def _entry(self, row: AuditRow) -> p.AuditEntry:
        return row.to_protocol().model_copy(update={"actor_name": self._staff.name_of(row.actor)})
