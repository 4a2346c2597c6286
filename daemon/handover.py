"""Handover when someone leaves: what rests on their sign-ins, and a colleague taking it over.

``staff.leave`` marks the person as left and answers every active grant they authorised
(``grants.authorised_by`` is their login) with every client resting on it. Nothing at the
provider is revoked: the grants keep working, and the watcher keeps refreshing them, until a
colleague has taken them over. Meanwhile those clients are flagged:

- a client whose connection works (``connected`` or ``expiring``) becomes ``expiring`` with
  the reason "owner Sam Lee left on 02 Dec 2026: take over their connections (...)". Expiring
  is the status of the vocabulary that says what is true: the connection works now and will
  end (when the provider removes that person's user, or the practice revokes their sign-in),
  so a person must act before then; it is listed under Needs attention. ``needs_reauth``
  would be untrue (nothing was refused), and a new status would break the one vocabulary.
  The watcher keeps the same reason after every successful refresh
  (:meth:`StaffDirectory.owner_left`), so the flag stays until the client rests on a
  colleague's grant;
- a client that already needs a person (``needs_reauth``, ``error``) keeps its status and
  reason, which say the more urgent thing; the leave answer lists it all the same.

Taking over is the ordinary bulk re-authorisation (``jobs.start kind=reauthorise``) with
``takeover_of``: one sign-in per provider business as the colleague, the same job engine,
and at the end every client rests on the colleague's new grant. The job's audit says whose
connections were taken over; the old grants no client rests on any more are named in the
final audit entry and are revoked only when asked (``grants.revoke``).
"""

from __future__ import annotations

import logging
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.protocol import ConnectionStatus, ErrorCode, Role
from clientlink.common.timeutil import to_iso
from clientlink.common.wording import plural
from clientlink.daemon.clients import ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.staff import StaffDirectory, owner_left_reason
from clientlink.daemon.store import ClientRow, JobRow, Store

log = logging.getLogger(__name__)

WORKING = (ConnectionStatus.CONNECTED.value, ConnectionStatus.EXPIRING.value)
"""Statuses the owner-left flag replaces; the others already say something more urgent."""


class Handover:
    """A staff member leaving, and a colleague taking over their connections."""

    def __init__(
        self, store: Store, staff: StaffDirectory, clients: ClientService, clock: Clock
    ) -> None:
        self._store = store
        self._staff = staff
        self._clients = clients
        self._clock = clock

    # ------------------------------------------------------------------ leaving

    async def leave(self, login: str, dry_run: bool, actor: str) -> p.StaffLeaveResult:
        """Mark ``login`` as left (unless ``dry_run``) and flag the clients resting on their
        grants; answers what rests on them. Nothing at the provider is revoked."""
        member = await self._store.get_staff(login)
        if member is None:
            raise RpcFailure(
                ErrorCode.NOT_FOUND,
                f"{login} is not on the staff list: nothing was changed "
                "(`clientlink staff list` shows who is)",
            )
        admins = [
            row.login
            for row in await self._store.list_staff()
            if row.active and row.role == Role.ADMIN.value
        ]
        if member.active and admins == [login]:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{member.display_name} ({login}) is the last active admin, and someone must "
                "be able to manage the staff: make a colleague admin first (`clientlink staff "
                "update LOGIN --role admin`). Nothing was changed",
            )
        grants = await self._store.grants_authorised_by(login)
        resting = {grant.id: await self._store.clients_resting_on(grant.id) for grant in grants}
        flagged: list[int] = []
        if not dry_run:
            now = self._clock.now()
            left_at = member.left_at or to_iso(now)
            reason = owner_left_reason(member.display_name, left_at)
            # One commit: the person left and their clients flagged, or neither.
            async with self._store.transaction():
                if member.active:
                    await self._store.update_staff(login, now, state="left", left_at=left_at)
                for clients in resting.values():
                    for client in clients:
                        if client.active and client.status in WORKING:
                            await self._clients.set_status(
                                client, ConnectionStatus.EXPIRING, reason
                            )
                            flagged.append(client.id)
                await self._store.add_audit(
                    actor=actor,
                    action="staff.left",
                    client_id=None,
                    detail={
                        "login": login,
                        "grants": [grant.id for grant in grants],
                        "clients": sum(len(clients) for clients in resting.values()),
                        "flagged": flagged,
                    },
                    now=now,
                )
            # From now on the watcher keeps the flag after every refresh, and the person's
            # own calls are refused.
            await self._staff.reload()
            log.info("%s left: %d grants, %d clients flagged", login, len(grants), len(flagged))
        member = await self._store.get_staff(login) or member
        count = sum(len(clients) for clients in resting.values())
        listed = [
            p.LeftGrant(
                grant_id=grant.id,
                provider=grant.provider,
                business=grant.business,
                state=grant.state,
                created_at=grant.created_at,
                clients=[_left_client(client) for client in resting[grant.id]],
            )
            for grant in grants
        ]
        name = member.display_name
        sign_ins = plural(len(grants), "sign-in")
        clients = plural(count, "client")
        if dry_run:
            resting_on = "resting on it" if len(grants) == 1 else "resting on them"
            message = (
                f"{name} owns {sign_ins} with {clients} {resting_on}; nothing was changed (dry run)"
            )
        else:
            rest = "rests" if count == 1 else "rest"
            flagged_words = "is" if len(flagged) == 1 else "are"
            message = (
                f"{name} has left. {clients} {rest} on their {sign_ins}, which keep working; "
                f"{len(flagged)} {flagged_words} flagged in Needs attention. Nothing was "
                "revoked: take them over with Bulk Actions → Take over connections"
            )
        return p.StaffLeaveResult(
            member=member.to_protocol(),
            dry_run=dry_run,
            grants=listed,
            flagged=sorted(flagged),
            message=message,
        )

    # ------------------------------------------------------------------ taking over

    async def takeover_params(self, login: str, clients: list[ClientRow]) -> dict[str, Any]:
        """The job params of a takeover of ``login``'s connections, or why these clients
        cannot be one (each must rest on a sign-in of theirs)."""
        name = self._staff.name_of(login)
        strangers = [client for client in clients if client.authorised_by != login]
        if strangers:
            first = strangers[0]
            owner = self._staff.name_of(first.authorised_by) if first.authorised_by else "nobody"
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"{first.name} does not rest on a sign-in of {name}'s (its owner is {owner}); "
                f"a takeover of {name}'s connections lists only theirs. Nothing was started",
            )
        return {"takeover_of": login, "takeover_name": name}

    async def record_takeover_started(
        self,
        job_id: int,
        takeover: dict[str, Any],
        clients: list[ClientRow],
        skipped: list[p.SkippedClient],
        ctx: CallContext,
    ) -> None:
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="connections.takeover_started",
            client_id=None,
            detail={
                "job_id": job_id,
                "takeover_of": takeover["takeover_of"],
                "clients": len(clients) - len(skipped),
                "skipped": [each.client_id for each in skipped],
                "old_grants": sorted({c.grant_id for c in clients if c.grant_id is not None}),
            },
            now=self._clock.now(),
        )

    async def takeover_finished(self, job: JobRow) -> None:
        """The final audit entry of a takeover: how it went, and which of the old owner's
        grants no client rests on any more (revocable on request)."""
        login = job.params.get("takeover_of")
        if not login:
            return
        unused = [
            grant.id
            for grant in await self._store.grants_authorised_by(login)
            if not await self._store.clients_resting_on(grant.id)
        ]
        await self._store.add_audit(
            actor=job.actor,
            action="connections.taken_over",
            client_id=None,
            detail={
                "job_id": job.id,
                "takeover_of": login,
                "done": job.done,
                "failed": job.failed,
                "old_grants_unused": unused,
            },
            now=self._clock.now(),
        )


def _left_client(client: ClientRow) -> p.LeftClient:
    return p.LeftClient(
        id=client.id,
        name=client.name,
        status=ConnectionStatus(client.status),
        status_reason=client.status_reason,
        active=client.active,
    )
