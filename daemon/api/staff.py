"""``staff.*``: the practice's staff list (admins only), and each person's own alert
preferences (``staff.preferences``, ``staff.set_preferences``: anyone on the staff list,
read-only staff included, reads and changes their own).

Each change is written, then the directory re-reads the list (so the next call, on any
connection, sees it), then the audit records who changed what.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clock import Clock
from clientlink.daemon.handover import Handover
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import StaffRow, Store


def preferences_of(row: StaffRow | None) -> p.StaffPreferences:
    """A member's alert preferences; a stored value that no longer reads keeps its default."""
    stored: dict[str, Any] = dict(row.preferences) if row is not None else {}
    known: dict[str, Any] = {}
    for name in p.StaffPreferences.model_fields:
        if name in stored:
            try:
                p.StaffPreferences.model_validate({name: stored[name]})
            except ValidationError:
                continue
            known[name] = stored[name]
    return p.StaffPreferences.model_validate(known)


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

    def _answer(self, ctx: CallContext) -> p.StaffPreferencesResult:
        row = self._staff.member(ctx.identity.login)
        return p.StaffPreferencesResult(
            login=ctx.identity.login,
            display_name=ctx.identity.display_name,
            firm=self._staff.firm,
            on_staff_list=row is not None,
            email=row.email if row is not None else None,
            preferences=preferences_of(row),
        )

    @handles("staff.preferences")
    async def preferences(self, params: p.Empty, ctx: CallContext) -> p.StaffPreferencesResult:
        """Who the caller is to the daemon, and their own alert preferences (the defaults
        when they have none: desktop notices for their own connections, alert emails on)."""
        return self._answer(ctx)

    @handles("staff.set_preferences")
    async def set_preferences(
        self, params: p.StaffSetPreferencesParams, ctx: CallContext
    ) -> p.StaffPreferencesResult:
        """Change the caller's own alert preferences; fields left out keep their value."""
        login = ctx.identity.login
        row = self._staff.member(login)
        if row is None:
            where = (
                "this daemon serves one person (single-user mode), so it keeps no staff "
                "preferences: alert emails go to [alerts] address in config.toml"
                if not self._staff.firm
                else f"{login} is not on the staff list: ask an admin to run "
                f"`clientlink staff add {login}`"
            )
            raise RpcFailure(p.ErrorCode.NOT_FOUND, f"nothing was changed: {where}")
        changes = params.model_dump(exclude_none=True)
        if changes:
            merged = {**row.preferences, **changes}
            await self._store.update_staff(login, self._clock.now(), preferences=merged)
            await self._staff.reload()
        return self._answer(ctx)
