"""Who is already re-authorising a client: one outcome when two staff reach for it at once.

A client is *held* while someone is re-authorising it: by a sign-in for that client that has
not finished (``auth.begin`` with ``client_id``), or by a re-authorisation job that has not
ended and still has the client's item to do. This module is the one place that says so:

- ``auth.begin`` for a held client is refused with who holds it and since when ("Sam Lee is
  already re-authorising Harper Holdings (since 10:42)"); a person may start their own
  sign-in for a client again (an earlier tab), but not while a job holds it;
- ``jobs.start`` (and ``jobs.retry``) of a re-authorisation leaves the held clients out,
  recorded as skipped items whose reason names the other job or sign-in and its staff
  member; when every client is held the start is refused and nothing is recorded.

Checking and recording happen under :attr:`ClientHolds.lock`, so two calls cannot both see
a client free and both take it. Nothing here is lost to a killed daemon: a job's items are
in the database, and sign-in sessions do not outlive the daemon anyway.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from clientlink.common.protocol import AuthSessionState, JobKind
from clientlink.common.timeutil import from_iso
from clientlink.daemon.auth import AuthSessions
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import ClientRow, Store

UNFINISHED_JOB_STATES = ("queued", "running", "waiting", "paused")
"""A job in these states will still re-authorise its pending items."""


@dataclass(frozen=True)
class Hold:
    """Someone re-authorising a client: a staff member's sign-in, or their job."""

    login: str
    name: str
    since: datetime
    job_id: int | None = None
    job_state: str | None = None

    @property
    def clock_time(self) -> str:
        """When it started, as the daemon's own wall clock shows it (``10:42``)."""
        return self.since.astimezone().strftime("%H:%M")

    def doing(self, client_name: str) -> str:
        """The sentence that says who is doing it: "Sam Lee is already re-authorising ..."."""
        if self.job_id is None:
            return f"{self.name} is already re-authorising {client_name} (since {self.clock_time})"
        return (
            f"{self.name}'s job {self.job_id} ({self.job_state}) is already re-authorising "
            f"{client_name} (since {self.clock_time})"
        )

    def detail(self) -> dict[str, object]:
        return {"held_by": self.login, "held_by_name": self.name, "job_id": self.job_id}


class ClientHolds:
    """Which clients are being re-authorised right now, and by whom."""

    def __init__(self, store: Store, auth: AuthSessions, staff: StaffDirectory) -> None:
        self._store = store
        self._auth = auth
        self._staff = staff
        self.lock = asyncio.Lock()
        """Held from the check to the recording of a new sign-in or job."""

    async def for_sign_in(self, client: ClientRow, actor: str) -> Hold | None:
        """What stops ``actor`` from opening a sign-in for ``client``: a job holding it, or
        another person's sign-in for it."""
        jobs = await self._job_holds()
        if client.id in jobs:
            return jobs[client.id]
        return self._session_holds(exclude_actor=actor).get(client.id)

    async def held(self, clients: list[ClientRow]) -> dict[int, Hold]:
        """Of ``clients``, those another job or an open sign-in (anyone's) holds."""
        holds = {**self._session_holds(exclude_actor=None), **await self._job_holds()}
        return {client.id: holds[client.id] for client in clients if client.id in holds}

    def _session_holds(self, exclude_actor: str | None) -> dict[int, Hold]:
        holds: dict[int, Hold] = {}
        for session in self._auth.open_sessions():
            if session.client_id is None or session.actor == exclude_actor:
                continue
            if session.status not in (AuthSessionState.PENDING, AuthSessionState.EXCHANGING):
                continue
            holds.setdefault(
                session.client_id,
                Hold(session.actor, self._staff.name_of(session.actor), session.created_at),
            )
        return holds

    async def _job_holds(self) -> dict[int, Hold]:
        holds: dict[int, Hold] = {}
        for client_id, job_id, actor, state, created_at in await self._store.held_job_items(
            JobKind.REAUTHORISE.value, UNFINISHED_JOB_STATES
        ):
            since = from_iso(created_at)
            assert since is not None
            holds.setdefault(
                client_id, Hold(actor, self._staff.name_of(actor), since, job_id, state)
            )
        return holds
