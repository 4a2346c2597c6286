"""``staff.*``: the practice's staff on a firm-mode daemon (here: someone leaving)."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.daemon.api import Api, handles
from clientlink.daemon.handover import Handover
from clientlink.daemon.rpc_server import CallContext


class StaffApi(Api):
    def __init__(self, handover: Handover) -> None:
        self._handover = handover

    @handles("staff.leave")
    async def leave(self, params: p.StaffLeaveParams, ctx: CallContext) -> p.StaffLeaveResult:
        """Mark a staff member as left: list every grant they own and the clients resting on
        each, and flag those clients (expiring: owner left) before anything is revoked.
        ``dry_run`` only lists. The last active admin cannot leave."""
        return await self._handover.leave(params.login, params.dry_run, ctx.peer.actor)
