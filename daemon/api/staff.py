"""``staff.*``: the practice's staff on a firm-mode daemon; here, each person's own
alert preferences (``staff.preferences``, ``staff.set_preferences``), which anyone on the
staff list may read and change for themselves, read-only staff included."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clock import Clock
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
    def __init__(self, staff: StaffDirectory, store: Store, clock: Clock) -> None:
        self._staff = staff
        self._store = store
        self._clock = clock

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
