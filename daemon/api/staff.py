"""``staff.*``: the practice's staff list (admins only).

Each change is written, then the directory re-reads the list (so the next call, on any
connection, sees it), then the audit records who changed what.
"""

from __future__ import annotations

from typing import Any

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clock import Clock
from clientlink.daemon.handover import Handover
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import StaffRow, Store


class StaffApi(Api):
    def __init__(
        self, staff: StaffDirectory, store: Store, clock: Clock, handover: Handover
    ) -> None:
        self._staff = staff
        self._store = store
        self._clock = clock
        self._handover = handover

    @handles("staff.list")
    async def list(self, params: p.StaffListParams, ctx: CallContext) -> p.StaffListResult:
        """Everyone on the staff list, by name (those who left too, unless asked not)."""
        rows = await self._store.list_staff()
        if not params.include_left:
            rows = [row for row in rows if row.active]
        return p.StaffListResult(items=[row.to_protocol() for row in rows], firm=self._staff.firm)

    @handles("staff.add")
    async def add(self, params: p.StaffAddParams, ctx: CallContext) -> p.StaffMember:
        """Put an existing Unix login on the staff list with a role; they can connect at once
        (in firm mode, through the practice's group socket)."""
        row = await self._staff.add(params.login, params.display_name, params.email, params.role)
        await self._audit(ctx, "staff.added", row, {"role": row.role})
        return row.to_protocol()

    @handles("staff.update")
    async def update(self, params: p.StaffUpdateParams, ctx: CallContext) -> p.StaffMember:
        """Change a staff member's display name, email or role, or bring back one who left.
        The practice's last active admin stays admin."""
        before = await self._store.get_staff(params.login)
        row = await self._staff.update(
            params.login,
            display_name=params.display_name,
            email=params.email,
            role=params.role,
            active=params.active,
        )
        assert before is not None  # update refused an unknown login
        changed = {
            name: {"from": getattr(before, name), "to": getattr(row, name)}
            for name in ("display_name", "email", "role", "state")
            if getattr(before, name) != getattr(row, name)
        }
        if changed:
            await self._audit(ctx, "staff.updated", row, changed)
        return row.to_protocol()

    async def _audit(
        self, ctx: CallContext, action: str, row: StaffRow, detail: dict[str, Any]
    ) -> None:
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action=action,
            client_id=None,
            detail={"login": row.login, **detail},
            now=self._clock.now(),
        )

    @handles("staff.leave")
    async def leave(self, params: p.StaffLeaveParams, ctx: CallContext) -> p.StaffLeaveResult:
        """Mark a staff member as left: list every grant they own and the clients resting on
        each, and flag those clients (expiring: owner left) before anything is revoked.
        ``dry_run`` only lists. The last active admin cannot leave."""
        async with self._staff.changing:
            return await self._handover.leave(params.login, params.dry_run, ctx.peer.actor)
