"""Who is calling: the practice's staff on a firm-mode daemon, by the peer's Unix login.

In single-user mode (the default) the daemon serves only its own user, who is its admin
(:func:`clientlink.daemon.rpc_server.owner_only`). In firm mode (``[firm] enabled = true``)
the socket is open to the practice's group, and the peer's uid (SO_PEERCRED) names a login;
the login must be on the staff list and active. Its role decides what it may call: every
method names its least role (``Method.role``) and the RPC server checks it before the
handler runs. The daemon's own service user is always an admin (only root can become it).

Staff records are few and read on every call, so they are held in memory and re-read after
each change (:meth:`StaffDirectory.reload`).
"""

from __future__ import annotations

import logging
import os
import pwd

from clientlink.common.config import FirmConfig
from clientlink.common.protocol import ErrorCode, Role
from clientlink.common.timeutil import from_iso
from clientlink.daemon.clock import Clock
from clientlink.daemon.rpc_connection import Identity, Peer
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.store import StaffRow, Store

log = logging.getLogger(__name__)


def login_display_name(login: str) -> str:
    """The name the system knows for ``login`` (its GECOS field), else the login."""
    try:
        gecos = pwd.getpwnam(login).pw_gecos.split(",")[0].strip()
    except KeyError:
        return login
    return gecos or login


class StaffDirectory:
    """The staff list, and who a peer is on it."""

    def __init__(
        self, store: Store, config: FirmConfig, clock: Clock, service_uid: int | None = None
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._service_uid = os.getuid() if service_uid is None else service_uid
        self._by_login: dict[str, StaffRow] = {}

    @property
    def firm(self) -> bool:
        return self._config.enabled

    async def start(self) -> None:
        """Load the list; a firm with no staff yet gets its first admin (the installer)."""
        if self.firm and self._config.first_admin and not await self._store.list_staff():
            login = self._config.first_admin
            await self._store.add_staff(
                login=login,
                display_name=login_display_name(login),
                email=None,
                role=Role.ADMIN.value,
                now=self._clock.now(),
            )
            log.info("firm mode: %s is the first admin", login)
        await self.reload()

    async def reload(self) -> None:
        """Re-read the staff list (after every change to it)."""
        self._by_login = {row.login: row for row in await self._store.list_staff()}

    def member(self, login: str) -> StaffRow | None:
        return self._by_login.get(login)

    def admins(self) -> list[str]:
        return sorted(r.login for r in self._by_login.values() if r.active and r.role == "admin")

    async def identify(self, peer: Peer) -> Identity:
        """Who ``peer`` is, or an RpcFailure (PERMISSION_DENIED) with a sentence saying why
        not and who can change that."""
        row = self._by_login.get(peer.user)
        if peer.uid == self._service_uid:
            name = row.display_name if row else peer.user
            return Identity(peer.user, name, Role.ADMIN, row.id if row else None)
        if not self.firm:
            raise RpcFailure(
                ErrorCode.PERMISSION_DENIED,
                f"clientlinkd serves only its own user (uid {self._service_uid})",
            )
        admins = ", ".join(self.admins()) or "the person who installed clientlink"
        if row is None:
            raise RpcFailure(
                ErrorCode.PERMISSION_DENIED,
                f"{peer.user} is not on this practice's clientlink staff list: ask an admin "
                f"({admins}) to run `clientlink staff add {peer.user}`",
            )
        if not row.active:
            raise RpcFailure(
                ErrorCode.PERMISSION_DENIED,
                f"{peer.user} has left the practice (since {(row.left_at or '')[:10]}), so "
                f"clientlink no longer serves them; an admin ({admins}) can change that with "
                f"`clientlink staff update {peer.user} --active`",
            )
        return Identity(row.login, row.display_name, Role(row.role), row.id)

    # ------------------------------------------------------------------ handover

    def name_of(self, login: str) -> str:
        """The display name of ``login`` (the login itself when not on the staff list)."""
        row = self._by_login.get(login)
        return row.display_name if row else login

    def owner_left(self, login: str) -> str | None:
        """Why a connection ``login`` authorised needs a person, when they have left: the
        one sentence staff.leave flags with and the watcher keeps (see handover.py)."""
        row = self._by_login.get(login)
        if row is None or row.active:
            return None
        return owner_left_reason(row.display_name, row.left_at)


def owner_left_reason(display_name: str, left_at: str | None) -> str:
    """The status reason of a client whose connection's owner left the practice."""
    day = from_iso(left_at)
    when = f" on {day.strftime('%d %b %Y')}" if day else ""
    return (
        f"owner {display_name} left{when}: take over their connections "
        "(Bulk Actions → Take over connections)"
    )
