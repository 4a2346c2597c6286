"""The connection watcher: every grant refreshed ahead of time, every outcome classified.

Each watched grant has its own moment — the access token's end minus a margin, less some
jitter so a practice's grants do not all refresh at once, or the moment a hard end enters
the warning window, or a backoff after a failure. The moments live in memory in a heap,
rebuilt from SQLite at start (APScheduler's job stores are synchronous and would block the
loop), and one APScheduler date job is armed for the earliest of them: the daemon sleeps
until exactly the next moment, never scans rows on a timer, and 10,000 grants cost a heap
of tuples rather than 10,000 job objects. Each moment is also written to SQLite so the TUI
can show it.

Outcomes:
- refreshed → connected (or expiring inside the warning window); a Xero business no longer
  among the token's connections → needs_reauth for that client only;
- the provider refuses the grant (``invalid_grant``) → needs_reauth, final;
- the provider refuses the app's credentials → ``error`` at once, with a reason that says to
  fix them (the grants are intact; re-authorising would not help);
- 429 → wait as ``Retry-After`` says; nothing else changes;
- 5xx, timeouts, network errors → backoff with jitter; only after failures on several
  separate days do the clients show ``error``. While a token call's answer may have been
  lost (the provider may have rotated the token), retries come at a pace that fits inside
  the provider's grace for the previous refresh token, never backing off past it.
(:func:`clientlink.daemon.grants.classify_failure` decides which failure is which.)
- a full disk → the refresh is skipped (no token call whose result cannot be stored).

Unused sign-ins (grants no client was ever bound to) are watched too, so that they do not
expire silently; they have no client to show a status on.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from clientlink.common.config import WatchConfig
from clientlink.common.protocol import ConnectionStatus
from clientlink.common.timeutil import from_iso
from clientlink.common.wording import plural
from clientlink.daemon.clock import Clock
from clientlink.daemon.datafiles import DiskFull
from clientlink.daemon.grants import (
    FailureKind,
    GrantRevoked,
    Grants,
    ProviderFailure,
    classify_failure,
    refresh_deadline,
)
from clientlink.daemon.providers import ProviderAdapter
from clientlink.daemon.store import ClientRow, GrantRow, GrantTimes, Store

log = logging.getLogger(__name__)

WAKE_JOB = "wake"
MIN_INTERVAL = timedelta(seconds=60)
RUN_CONCURRENCY = 8
"""At most this many grants are refreshed at once (after a suspend, many are due)."""

HEARTBEAT_SECONDS = 60
"""How often the watcher checks that wall time has not jumped (suspend, clock change)."""

# Called as set_status(client, status, reason) for every client the watcher judges.
SetStatus = Callable[[ClientRow, ConnectionStatus, str | None], Awaitable[None]]
# Given a grant's owner (its ``authorised_by``): why it needs a person although it refreshes
# (its owner left the practice), or None.
OwnerNote = Callable[[str], str | None]


class Watcher:
    """Schedules and runs the refresh of every watched grant."""

    def __init__(
        self,
        store: Store,
        grants: Grants,
        adapters: dict[str, ProviderAdapter],
        clock: Clock,
        config: WatchConfig,
        set_status: SetStatus,
        owner_note: OwnerNote | None = None,
    ) -> None:
        self._owner_note = owner_note
        self._store = store
        self._grants = grants
        self._adapters = adapters
        self._clock = clock
        self._config = config
        self._set_status = set_status
        self._random = random.Random()
        # Coalesce: a job that missed several moments (suspend) runs once. No misfire grace
        # limit: however late the daemon wakes, an overdue refresh must still happen.
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        self._running: set[asyncio.Future[Any]] = set()
        self._moments: dict[int, datetime] = {}
        self._heap: list[tuple[datetime, int]] = []
        self._concurrency = asyncio.Semaphore(RUN_CONCURRENCY)
        # Jobs handed to the executor but not finished: between APScheduler taking a due
        # job off its list and our coroutine starting, only these events see it.
        self._submitted = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._scheduler.add_listener(
            self._on_job_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        self._wall_mark = (self._clock.now().timestamp(), time.monotonic())

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> int:
        """Start the scheduler in the running loop and schedule every watched grant."""
        self._scheduler.start()
        self._scheduler.add_job(
            self._heartbeat, "interval", seconds=HEARTBEAT_SECONDS, id="heartbeat"
        )
        # One read of the watched grants at start: their moments, and which were cut off.
        started = time.perf_counter()
        grants = await self._store.watched_grants()
        self._rebuild(grants, started)
        # A token call that was under way when the daemon stopped may have rotated the
        # refresh token: repeat it now, inside the provider's grace for the old one.
        now = self._clock.now()
        for grant in grants:
            if grant.refresh_pending_since is not None:
                self._schedule(grant.id, now)
        return len(grants)

    async def stop(self, drain_seconds: float = 20.0) -> None:
        """Stop scheduling; let refreshes already in flight finish (a rotated refresh token
        must be committed), then shut the scheduler down."""
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), drain_seconds)
        self._scheduler.shutdown(wait=False)

    async def reschedule_all(self) -> int:
        """Rebuild every grant's moment from SQLite; returns how many grants are watched."""
        started = time.perf_counter()
        grants = await self._store.watched_grants()
        self._rebuild(grants, started)
        return len(grants)

    def _rebuild(self, grants: list[GrantTimes], started: float) -> None:
        """Every grant's moment in memory (``started``: when the read began, for the log)."""
        self._moments = {
            grant.id: from_iso(grant.next_check_at) or self._next_moment(grant) for grant in grants
        }
        self._heap = [(moment, grant_id) for grant_id, moment in self._moments.items()]
        heapq.heapify(self._heap)
        self._arm()
        log.info("scheduled %d grants in %.2f s", len(grants), time.perf_counter() - started)

    @property
    def watched(self) -> int:
        return len(self._moments)

    def next_wakeup(self) -> datetime | None:
        """The earliest grant moment, on the daemon's clock."""
        entry = self._earliest()
        return entry[0] if entry else None

    async def watch(self, grant_id: int) -> None:
        """(Re)schedule one grant after it was created or changed."""
        grant = await self._store.get_grant(grant_id)
        if (
            grant is None
            or grant.state != "active"
            or not (grant.bound_at is None or await self._store.clients_of_grant(grant_id))
        ):
            self._unschedule(grant_id)
            return
        moment = self._next_moment(grant)
        await self._store.set_grant_schedule(grant_id, next_check_at=moment)
        self._schedule(grant_id, moment)

    async def run_now(self, grant_id: int, *, force: bool = False) -> None:
        """Judge a grant now (a person asked); refreshed if near its end, or ``force``."""
        await self._tracked(self._run(grant_id, force=force, asked=True))

    def idle(self) -> bool:
        """Nothing running and nothing overdue (tests wait for this after moving time)."""
        entry = self._earliest()
        overdue = entry is not None and entry[0] <= self._clock.now()
        return not self._submitted and not self._running and not overdue

    def _on_job_event(self, event: JobEvent) -> None:
        if event.job_id == WAKE_JOB:
            self._submitted += 1 if event.code == EVENT_JOB_SUBMITTED else -1
            self._update_quiet()

    def _update_quiet(self, _: object = None) -> None:
        if self._submitted or self._running:
            self._quiet.clear()
        else:
            self._quiet.set()

    # ------------------------------------------------------------------ scheduling

    def _schedule(self, grant_id: int, moment: datetime) -> None:
        self._moments[grant_id] = moment
        heapq.heappush(self._heap, (moment, grant_id))
        self._arm()

    def _unschedule(self, grant_id: int) -> None:
        self._moments.pop(grant_id, None)

    def _earliest(self) -> tuple[datetime, int] | None:
        # Entries whose grant was rescheduled or dropped are stale: discard them lazily.
        while self._heap:
            moment, grant_id = self._heap[0]
            if self._moments.get(grant_id) == moment:
                return moment, grant_id
            heapq.heappop(self._heap)
        return None

    def _arm(self) -> None:
        """Point the one wake-up job at the earliest moment (or remove it)."""
        if not self._scheduler.running:
            return
        entry = self._earliest()
        if entry is None:
            if self._scheduler.get_job(WAKE_JOB):
                self._scheduler.remove_job(WAKE_JOB)
            return
        # APScheduler runs on wall time; the daemon's clock may be offset (tests), so the
        # wake-up comes after the delay the daemon's clock says is left.
        delay = max(entry[0] - self._clock.now(), timedelta(0))
        self._scheduler.add_job(
            self._wake,
            DateTrigger(run_date=datetime.now(UTC) + delay),
            id=WAKE_JOB,
            replace_existing=True,
        )

    async def _wake(self) -> None:
        """Start every grant whose moment has come, then re-arm for the next one."""
        now = self._clock.now()
        due = []
        while (entry := self._earliest()) is not None and entry[0] <= now:
            heapq.heappop(self._heap)
            del self._moments[entry[1]]
            due.append(entry[1])
        for grant_id in due:
            task = asyncio.ensure_future(self._limited_run(grant_id))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(self._update_quiet)
        self._update_quiet()
        self._arm()

    async def _limited_run(self, grant_id: int) -> None:
        async with self._concurrency:
            await self._run(grant_id, force=False)

    def _next_moment(self, grant: GrantRow | GrantTimes) -> datetime:
        """The grant's own moment: refresh ahead of the access token's end, or sooner when
        the refresh token's idle end or a hard end's warning comes first.

        A provider with a keep-alive fraction (Class: 15-minute access tokens, 30-day
        single-use refresh tokens) is refreshed only when that much of the refresh token's
        life has passed: idle grants cost a token call every 10 days, not every 15 minutes,
        and API calls refresh the access token when they need one."""
        now = self._clock.now()
        margin = timedelta(seconds=self._config.refresh_margin_seconds)
        jitter = timedelta(seconds=self._random.uniform(0, self._config.jitter_seconds))
        candidates = []
        access = from_iso(grant.access_expires_at)
        refresh_end = from_iso(grant.refresh_expires_at)
        keep_alive = self._keep_alive_age(grant.provider) if grant.provider else None
        if keep_alive is not None and refresh_end is not None:
            lifetime, age = keep_alive
            candidates.append(refresh_end - lifetime + age - jitter)
        elif access is not None:
            candidates.append(access - margin - jitter)
        if refresh_end is not None and refresh_end - timedelta(days=1) > now:
            candidates.append(refresh_end - timedelta(days=1))
        hard_end = from_iso(grant.hard_expires_at)
        if hard_end is not None:
            warning = hard_end - timedelta(days=self._config.warning_days)
            candidates.append(warning if warning > now else hard_end)
        # Never sooner than a minute away: a refresh that cannot move a deadline (a refresh
        # token capped by a hard end) must not turn into a loop.
        return max(min(candidates, default=now), now + MIN_INTERVAL)

    def _keep_alive_age(self, provider: str) -> tuple[timedelta, timedelta] | None:
        """(refresh token lifetime, age to refresh at) for a keep-alive provider, else None."""
        adapter = self._adapters.get(provider)
        definition = adapter.definition if adapter is not None else None
        if definition is None or not definition.keep_alive_fraction:
            return None
        if not definition.refresh_idle_days:
            return None
        lifetime = timedelta(days=definition.refresh_idle_days)
        return lifetime, lifetime * definition.keep_alive_fraction

    def _refresh_window(self) -> timedelta:
        """An access token with less left than this is refreshed when its moment comes."""
        return timedelta(
            seconds=self._config.refresh_margin_seconds + self._config.jitter_seconds + 60
        )

    async def _tracked(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        self._update_quiet()
        task.add_done_callback(self._running.discard)
        task.add_done_callback(self._update_quiet)
        # Shielded: a cancelled caller (shutdown) must not cut a refresh off between the
        # provider rotating the token and the new one being committed.
        await asyncio.shield(task)

    def _heartbeat(self) -> None:
        self.check_clock()

    def check_clock(self) -> bool:
        """Catch up after a suspend or a wall-clock jump; returns whether one was seen.

        The wake-up job waits on the event loop's monotonic clock, which stands still while
        the machine sleeps; the heartbeat notices the wall clock moving away from it and
        re-arms for whatever became due meanwhile.
        """
        wall, mono = self._clock.now().timestamp(), time.monotonic()
        drift = (wall - self._wall_mark[0]) - (mono - self._wall_mark[1])
        self._wall_mark = (wall, mono)
        if abs(drift) <= 30:
            return False
        log.info("wall clock moved %+.0f s against the monotonic clock; catching up", drift)
        self._arm()
        return True

    # ------------------------------------------------------------------ one run

    async def _run(self, grant_id: int, *, force: bool, asked: bool = False) -> None:
        grant = await self._store.get_grant(grant_id)
        if grant is None or grant.state != "active":
            self._unschedule(grant_id)
            return
        clients = await self._store.clients_of_grant(grant_id)
        if not clients and grant.bound_at is not None:
            self._unschedule(grant_id)
            return
        adapter = self._adapters.get(grant.provider)
        if adapter is None:
            await self._judge_all(
                clients, ConnectionStatus.ERROR, f"{grant.provider} is not configured"
            )
            return
        try:
            tokens = await self._grants.refresh(
                grant_id, force=force, min_valid=self._refresh_window()
            )
            # A routine run may skip listing connections (fresh=False) to save egress.
            connected = await adapter.connected_tenants(tokens, fresh=force)
        except DiskFull as exc:
            await self._storage_full(grant_id, clients, str(exc))
            if asked:  # a person asked: they hear it at once, whatever could be written
                raise
            return
        except Exception as exc:
            failure = classify_failure(exc)
            if failure is None:
                raise
            await self._on_failure(grant, clients, failure, revoked=isinstance(exc, GrantRevoked))
            return
        await self._succeeded(grant_id, clients, connected)

    async def _on_failure(
        self,
        grant: GrantRow,
        clients: list[ClientRow],
        failure: ProviderFailure,
        *,
        revoked: bool,
    ) -> None:
        if failure.kind == FailureKind.RATE_LIMITED:
            wait = failure.retry_after if failure.retry_after is not None else 60.0
            log.info("grant %s rate-limited (%s); next in %.0f s", grant.id, failure.reason, wait)
            await self._retry_in(grant.id, timedelta(seconds=wait))
            return
        if failure.kind in (FailureKind.GRANT_REFUSED, FailureKind.TENANT_GONE):
            await self._judge_all(clients, ConnectionStatus.NEEDS_REAUTH, failure.reason)
            if revoked:
                await self._store.set_grant_schedule(grant.id, next_check_at=None)
                self._unschedule(grant.id)
            else:
                await self._failed(grant, clients, failure.reason, judge=False)
            return
        # An outage counts towards ``error`` only over several days; the app's credentials
        # or a refused request need a person now (not a re-authorisation).
        await self._failed(grant, clients, failure.reason, final=not failure.transient)

    async def _storage_full(self, grant_id: int, clients: list[ClientRow], message: str) -> None:
        """Nothing was called: say why where that can still be written, try again soon."""
        moment = self._clock.now() + timedelta(minutes=5)
        self._schedule(grant_id, moment)
        try:
            await self._judge_all(clients, ConnectionStatus.ERROR, message)
            await self._store.set_grant_schedule(grant_id, next_check_at=moment)
        except Exception:  # the disk is still full: the log and the caller hear of it
            log.warning("grant %s: %s", grant_id, message)

    async def _succeeded(
        self, grant_id: int, clients: list[ClientRow], connected: set[str] | None
    ) -> None:
        grant = await self._store.get_grant(grant_id)
        assert grant is not None
        status, reason = self._status_after_success(grant)
        for client in clients:
            if connected is not None and client.tenant_id not in connected:
                await self._set_status(
                    client,
                    ConnectionStatus.NEEDS_REAUTH,
                    "The business was disconnected from clientlink in "
                    f"{self._adapters[grant.provider].definition.display_name}",
                )
            else:
                await self._set_status(client, status, reason)
        moment = self._next_moment(grant)
        await self._store.set_grant_schedule(
            grant_id, next_check_at=moment, failure_count=0, failure_days=[], clear_error=True
        )
        self._schedule(grant_id, moment)

    def _status_after_success(self, grant: GrantRow) -> tuple[ConnectionStatus, str | None]:
        status, reason = self._status_by_expiry(grant)
        # A grant whose owner left keeps refreshing (nothing is lost meanwhile) but will end
        # when the provider removes that person: expiring, until a colleague takes it over.
        note = self._owner_note(grant.authorised_by) if self._owner_note else None
        if note is not None:
            return ConnectionStatus.EXPIRING, note if reason is None else f"{note}; {reason}"
        return status, reason

    def _status_by_expiry(self, grant: GrantRow) -> tuple[ConnectionStatus, str | None]:
        hard_end = from_iso(grant.hard_expires_at)
        if hard_end is None:
            return ConnectionStatus.CONNECTED, None
        if hard_end - self._clock.now() <= timedelta(days=self._config.warning_days):
            day = hard_end.strftime("%d %b %Y")
            return (
                ConnectionStatus.EXPIRING,
                f"The authorisation ends for good on {day}: re-authorise before then",
            )
        return ConnectionStatus.CONNECTED, None

    async def _failed(
        self,
        grant: GrantRow,
        clients: list[ClientRow],
        message: str,
        final: bool = False,
        judge: bool = True,
    ) -> None:
        today = self._clock.now().date().isoformat()
        days = sorted(set(json.loads(grant.failure_days)) | {today})
        count = grant.failure_count + 1
        log.warning("grant %s: refresh failed (%d in a row): %s", grant.id, count, message)
        if judge and (final or len(days) >= self._config.error_after_failure_days):
            # A client already known to need re-authorising keeps saying so.
            await self._judge_all(
                [c for c in clients if c.status != ConnectionStatus.NEEDS_REAUTH.value],
                ConnectionStatus.ERROR,
                f"{message} (failing since {days[0]}, {plural(count, 'attempt')})",
            )
        backoff = min(60 * 2 ** min(count - 1, 16), self._config.backoff_max_seconds)
        delay = timedelta(seconds=backoff * self._random.uniform(0.5, 1.0))
        moment = await self._within_grace(grant.id, self._clock.now() + delay)
        await self._store.set_grant_schedule(
            grant.id,
            next_check_at=moment,
            failure_count=count,
            failure_days=days,
            last_error=message,
        )
        self._schedule(grant.id, moment)

    async def _within_grace(self, grant_id: int, moment: datetime) -> datetime:
        """Bring a retry forward while a lost answer can still be recovered.

        A token call whose answer never arrived may have rotated the refresh token; the
        provider honours the previous one for a grace period (Xero 30 minutes, QuickBooks
        24 hours). Retries then come every tenth of the grace, the last one before it ends.
        """
        grant = await self._store.get_grant(grant_id)
        adapter = self._adapters.get(grant.provider) if grant else None
        if grant is None or adapter is None:
            return moment
        deadline = refresh_deadline(adapter, grant.refresh_pending_since)
        now = self._clock.now()
        if deadline is None or deadline <= now:
            return moment
        grace = timedelta(seconds=adapter.definition.refresh_grace_seconds or 0)
        paced = min(moment, now + grace / 10, deadline - grace / 20)
        return max(paced, now + timedelta(seconds=30))

    async def _retry_in(self, grant_id: int, delay: timedelta) -> None:
        moment = self._clock.now() + delay
        await self._store.set_grant_schedule(grant_id, next_check_at=moment)
        self._schedule(grant_id, moment)

    async def _judge_all(
        self, clients: list[ClientRow], status: ConnectionStatus, reason: str | None
    ) -> None:
        for client in clients:
            await self._set_status(client, status, reason)
