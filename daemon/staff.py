"""Who is calling: the practice's staff on a firm-mode daemon, by the peer's Unix login.

In single-user mode (the default) the daemon serves only its own user, who is its admin
(:func:`clientlink.daemon.rpc_server.owner_only`). In firm mode (``[firm] enabled = true``)
the socket is open to the practice's group, and the peer's uid (SO_PEERCRED) names a login;
the login must be on the staff list and active. Its role decides what it may call: every
method names its least role (``Method.role``) and the RPC server checks it before the
handler runs. The daemon's own service user is always an admin (only root can become it).

Staff records are few and read on every call, so they are held in memory and re-read after
each change (:meth:`StaffDirectory.reload`). Changes go through :meth:`StaffDirectory.add`
and :meth:`StaffDirectory.update`, which check what they are given (a login the system
knows, a display name without control characters, a valid email, a role) and never leave
the practice without an active admin.

The staff list can be kept in single-user mode too (the owner is admin there): it prepares
a switch to firm mode and names people in the audit, but only the owner is served.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd

from clientlink.common import protocol as p
from clientlink.common.config import FirmConfig
from clientlink.common.protocol import ErrorCode, Role
from clientlink.common.safe_text import visible
from clientlink.common.timeutil import from_iso
from clientlink.common.wording import owner_label
from clientlink.daemon.clock import Clock
from clientlink.daemon.contacts import normalise_email
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


DISPLAY_NAME_MAX = 100


def _refuse(message: str) -> RpcFailure:
    return RpcFailure(ErrorCode.INVALID_PARAMS, message)


def check_login(login: str) -> str:
    """``login`` when the system has such a user, else a sentence saying what to do."""
    if login != login.strip() or not login or visible(login) != login or "/" in login:
        raise _refuse(f"{visible(login)!r} is not a Unix login; give the name `id -un` prints")
    try:
        pwd.getpwnam(login)
    except KeyError:
        raise _refuse(
            f"there is no user {login!r} on this system; create the account first "
            f"(`useradd {login}`) and add it to the practice's group, then add it here"
        ) from None
    return login


def check_display_name(text: str) -> str:
    """A display name as people will see it: trimmed, not empty, no control characters."""
    name = " ".join(text.split())
    if not name:
        raise _refuse("the display name is empty; give the person's name, such as Sam Lee")
    if visible(name) != name:
        raise _refuse(
            f"the display name {visible(name)!r} holds control or direction characters "
            "(shown as ␛, ␊ or �); type it plainly"
        )
    if len(name) > DISPLAY_NAME_MAX:
        raise _refuse(f"the display name is longer than {DISPLAY_NAME_MAX} characters")
    return name


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
        # One change to the list at a time: "the last active admin" is checked and kept
        # under it (two admins demoting each other at once leave one).
        self.changing = asyncio.Lock()

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

    # ------------------------------------------------------------------ names

    def name_of(self, login: str | None) -> str | None:
        """How people know ``login``: their display name on the staff list, else the login."""
        if login is None:
            return None
        row = self._by_login.get(login)
        return row.display_name if row else login

    def client(self, client: p.Client, software: str) -> p.Client:
        """``client`` with its owner in words (the staff member and the provider user)."""
        name = self.name_of(client.owner_login)
        return client.model_copy(
            update={
                "owner_name": name,
                "owner_label": owner_label(name, client.provider_user, software),
            }
        )

    # ------------------------------------------------------------------ changes

    async def add(
        self, login: str, display_name: str | None, email: str | None, role: Role
    ) -> StaffRow:
        """Put ``login`` on the staff list; a clear error (nothing changed) when it cannot be."""
        async with self.changing:
            return await self._add(login, display_name, email, role)

    async def _add(
        self, login: str, display_name: str | None, email: str | None, role: Role
    ) -> StaffRow:
        check_login(login)
        existing = await self._store.get_staff(login)
        if existing is not None:
            what = "is already on the staff list" if existing.active else "left the practice"
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{login} {what} (as {existing.role}); change them with "
                f"`clientlink staff update {login}`",
            )
        if display_name is None:
            system_name = " ".join(login_display_name(login).split())
            # The system's name for them, unless it would need escaping to be shown.
            display_name = system_name if visible(system_name) == system_name else login
        name = check_display_name(display_name)
        address = normalise_email(email) if email and email.strip() else None
        row = await self._store.add_staff(
            login=login, display_name=name, email=address, role=role.value, now=self._clock.now()
        )
        await self.reload()
        return row

    async def update(
        self,
        login: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        role: Role | None = None,
        active: bool | None = None,
    ) -> StaffRow:
        """Change a staff member; a clear error (nothing changed) when it cannot be done."""
        async with self.changing:
            return await self._update(login, display_name, email, role, active)

    async def _update(
        self,
        login: str,
        display_name: str | None,
        email: str | None,
        role: Role | None,
        active: bool | None,
    ) -> StaffRow:
        row = await self._store.get_staff(login)
        if row is None:
            raise RpcFailure(
                ErrorCode.NOT_FOUND,
                f"{visible(login)} is not on the staff list; add them with "
                f"`clientlink staff add {visible(login)}`",
            )
        if active is False:
            raise _refuse(
                f"to take {login} off the staff list use `clientlink staff leave {login}`, "
                "which also lists the connections resting on their sign-ins"
            )
        fields: dict[str, object] = {}
        if display_name is not None:
            fields["display_name"] = check_display_name(display_name)
        if email is not None:
            fields["email"] = normalise_email(email) if email.strip() else None
        if role is not None and role.value != row.role:
            fields["role"] = role.value
        if active and not row.active:
            fields["state"] = "active"
            fields["left_at"] = None
        admin_after = fields.get("role", row.role) == Role.ADMIN.value
        if row.active and row.role == Role.ADMIN.value and not admin_after:
            others = [a for a in await self._store.list_staff() if a.login != login]
            if not any(a.active and a.role == Role.ADMIN.value for a in others):
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"{login} is the practice's last active admin, so their role stays admin; "
                    "make someone else admin first",
                )
        if fields:
            await self._store.update_staff(login, self._clock.now(), **fields)
            await self.reload()
        updated = await self._store.get_staff(login)
        assert updated is not None
        return updated

    # ------------------------------------------------------------------ handover

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
