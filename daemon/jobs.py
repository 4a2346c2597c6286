"""The job engine: every bulk action is a persistent job that survives a killed daemon.

A job and all of its items are written to SQLite before any work starts. A worker claims
an item by marking it ``running`` (committed), does the work, and records the outcome
together with the work's own database effect in one transaction — so an item is either
wholly done or not done at all. After a crash, items left ``running`` are handed to their
job kind's ``recover``: for work that is safe to redo they simply run again; a kind whose
effect leaves the machine (a message sent) says otherwise. Nothing is done twice.

A re-authorisation across provider businesses (one sign-in each, ``sign_in_plan``) runs
the items of the businesses it holds a sign-in for and then waits (state ``waiting``,
``waiting_for_sign_in`` on the job and its events) without a worker, until the person's
next sign-in is added (``add_sign_in``) or that business is skipped (``skip_sign_in``).

Progress is announced as ``job.progress`` events at most ten times a second per job
(the final ``job.finished`` is never dropped); the event bus never waits on a subscriber,
so a slow reader cannot slow a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from clientlink.common.protocol import (
    ErrorCode,
    ItemState,
    Job,
    JobKind,
    JobProgress,
    JobState,
    SkippedClient,
    Topic,
)
from clientlink.common.timeutil import to_iso
from clientlink.common.wording import plural
from clientlink.daemon.clock import Clock
from clientlink.daemon.events import EventBus
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.sign_in_plan import SignInPlan, plan_for
from clientlink.daemon.store import (
    ClientRow,
    GrantRow,
    JobItemRow,
    JobRow,
    Store,
    Unit,
    claim_sync,
    finish_item_sync,
)

if TYPE_CHECKING:
    from clientlink.daemon.holds import ClientHolds

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
"""Transient failures (outages, 429s) are retried this many times before an item fails."""

PROGRESS_INTERVAL = 0.1
"""At most ten progress events a second per job."""


class Finish:
    """An item's outcome, written with the item's own effect. Awaited (``await
    finish(result)``) inside the transaction that writes the effect; or, for a kind that
    writes its effect as statements, :meth:`statements` joins the effect's unit of the
    store's group commit (``Store.commit_unit``), several items in one trip."""

    __slots__ = ("_claimed", "_clock", "_item", "_store", "claim_next")

    def __init__(self, store: Store, item: JobItemRow, clock: Clock, claim_next: bool) -> None:
        self._store = store
        self._item = item
        self._clock = clock
        self.claim_next = claim_next
        """Claim the job's next item with this outcome (same commit, no trip of its own)."""
        self._claimed: JobItemRow | None = None

    @property
    def next_item(self) -> JobItemRow | None:
        """The item claimed with the outcome; the engine takes it only once the outcome is
        committed (the handler returned)."""
        return self._claimed

    async def __call__(self, result: dict[str, Any] | None) -> None:
        if self._store.in_transaction():
            await self._store.run_sync(self.statements(result))
        else:
            await self._store.commit_unit(self.statements(result))

    def statements(self, result: dict[str, Any] | None) -> Unit[None]:
        at = to_iso(self._clock.now())
        item = self._item

        def write(conn: sqlite3.Connection) -> None:
            finish_item_sync(conn, item, ItemState.DONE.value, at, result=result)
            if self.claim_next:
                self._claimed = claim_sync(conn, item.job_id, at, None)

        return write


# Given the clients a re-authorisation may take (none held elsewhere): the job's params and
# its client ids in the order the job does them (a sign-in plan may reorder them).
BuildReauthorisation = Callable[[list[ClientRow]], tuple[dict[str, Any], list[int]]]


class ItemFailed(Exception):
    """The item cannot be done: its reason is shown to the person."""


class ItemRetry(Exception):
    """A transient failure: try the item again later."""

    def __init__(self, reason: str, after: float = 1.0) -> None:
        super().__init__(reason)
        self.after = after


class JobHandler(Protocol):
    """What one job kind does to each item."""

    concurrency: int

    async def run(self, job: JobRow, item: JobItemRow, finish: Finish) -> None:
        """Do the item's work, then call ``finish(result)`` inside the transaction that
        writes the work's own effect (so both commit together)."""

    async def recover(self, job: JobRow, item: JobItemRow) -> str:
        """An item found ``running`` after a crash: ``"redo"`` or ``"uncertain"``."""

    async def finished(self, job: JobRow) -> None:
        """After the job's last item (e.g. start watching a grant)."""


class JobEngine:
    """Runs jobs, resumes them after a restart, and reports their progress."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        clock: Clock,
        handlers: dict[JobKind, JobHandler],
        holds: ClientHolds | None = None,
    ) -> None:
        self.holds = holds
        """Who else is re-authorising a client (None: nobody is ever asked)."""
        self._store = store
        self._events = events
        self._clock = clock
        self._handlers = handlers
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._running_kinds: dict[int, JobKind] = {}
        self._control: dict[int, JobState] = {}
        self._current: dict[int, str] = {}
        self._finished_at: dict[int, deque[float]] = {}
        self._started_at: dict[int, float] = {}
        self._dirty: set[int] = set()
        self._publisher: asyncio.Task[None] | None = None
        self._stopping = False
        self._random = random.Random()
        self._wake: set[int] = set()
        """Jobs given a sign-in while their task was winding down: it runs on."""
        self._sign_in_lock = asyncio.Lock()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> int:
        """Resume every queued or running job; returns how many."""
        jobs = await self._store.jobs_in_states(
            (JobState.QUEUED.value, JobState.RUNNING.value, JobState.WAITING.value)
        )
        for job in jobs:
            handler = self._handlers[JobKind(job.kind)]
            for item in await self._store.items_in_state(job.id, ItemState.RUNNING.value):
                verdict = await handler.recover(job, item)
                if verdict == "redo":
                    await self._store.release_item(item.id)
                else:
                    await self._store.finish_item(
                        item,
                        ItemState.FAILED.value,
                        self._clock.now(),
                        error="Uncertain: the daemon stopped while this was under way and "
                        "cannot tell whether it happened; check before retrying",
                    )
            log.info("resuming job %s (%s)", job.id, job.kind)
            self._spawn(job.id)
        return len(jobs)

    async def stop(self, drain_seconds: float = 20.0) -> None:
        """Let items under way finish; jobs stay resumable for the next start."""
        self._stopping = True
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=drain_seconds)
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher

    # ------------------------------------------------------------------ requests

    async def submit(
        self,
        kind: JobKind,
        client_ids: list[int],
        params: dict[str, Any],
        actor: str,
        retry_of: int | None = None,
    ) -> int:
        """Record a job with its items, then start it."""
        job_id = await self._store.create_job(
            kind=kind.value,
            params=params,
            actor=actor,
            client_ids=client_ids,
            now=self._clock.now(),
            retry_of=retry_of,
        )
        self._spawn(job_id)
        return job_id

    async def submit_reauthorisation(
        self,
        clients: list[ClientRow],
        build: BuildReauthorisation,
        actor: str,
        retry_of: int | None = None,
    ) -> tuple[int, list[SkippedClient]]:
        """Record and start a re-authorisation of ``clients``, leaving out those another job
        or sign-in holds (recorded as skipped items saying who holds them); refused, with
        nothing recorded, when every one of them is held. Two jobs never re-authorise the
        same client at once: the check and the recording are one step under the holds lock."""
        if self.holds is None:
            params, client_ids = build(clients)
            return await self.submit(JobKind.REAUTHORISE, client_ids, params, actor, retry_of), []
        async with self.holds.lock:
            holds = await self.holds.held(clients)
            free = [client for client in clients if client.id not in holds]
            if not free:
                first = next(client for client in clients if client.id in holds)
                others = len(clients) - 1
                more = f" (and {others} more of these clients are held too)" if others else ""
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"{holds[first.id].doing(first.name)}{more}. Nothing was started: wait "
                    "for it to finish, or ask them to cancel it",
                    holds[first.id].detail(),
                )
            params, client_ids = build(free)
            skipped = [
                SkippedClient(
                    client_id=client.id,
                    name=client.name,
                    reason=f"skipped: {holds[client.id].doing(client.name)}",
                )
                for client in clients
                if client.id in holds
            ]
            job_id = await self._store.create_job(
                kind=JobKind.REAUTHORISE.value,
                params=params,
                actor=actor,
                client_ids=client_ids,
                now=self._clock.now(),
                retry_of=retry_of,
                skipped={each.client_id: each.reason for each in skipped},
            )
        self._spawn(job_id)
        return job_id, skipped

    async def cancel(self, job_id: int) -> None:
        job = await self._require(job_id)
        if JobState(job.state).finished:
            return
        self._control[job_id] = JobState.CANCELLED
        if job_id not in self._tasks:  # paused or waiting: nothing runs, finish it here
            await self._close(job_id)
            await self._handlers[JobKind(job.kind)].finished(await self._require(job_id))

    async def pause(self, job_id: int) -> None:
        job = await self._require(job_id)
        if job.state in (JobState.QUEUED.value, JobState.RUNNING.value):
            self._control[job_id] = JobState.PAUSED

    async def resume(self, job_id: int) -> None:
        job = await self._require(job_id)
        if job.state == JobState.PAUSED.value:
            self._control.pop(job_id, None)
            await self._store.set_job_state(job_id, JobState.QUEUED.value, self._clock.now())
            self._spawn(job_id)

    async def retry(self, job_id: int, actor: str) -> int:
        """A new job for the failed items of a finished job."""
        job = await self._require(job_id)
        if not JobState(job.state).finished:
            raise RpcFailure(
                ErrorCode.CONFLICT, f"job {job_id} is still {job.state}: wait for it to end"
            )
        failed = await self._store.items_in_state(job_id, ItemState.FAILED.value)
        if not failed:
            raise RpcFailure(ErrorCode.CONFLICT, f"job {job_id} has no failed items to retry")
        client_ids = [item.client_id for item in failed]
        params = job.params
        plan = SignInPlan.of(job.params)
        if JobKind(job.kind) == JobKind.REAUTHORISE:
            return await self._retry_reauthorisation(job, plan, client_ids, actor)
        if plan is not None:
            # The failed funds' businesses again; a sign-in still usable is kept, the
            # others (skipped, revoked since) are asked for again.
            held = {}
            for step in plan.steps:
                grant = await self._store.get_grant(step.grant_id) if step.grant_id else None
                if grant is not None and grant.state == "active":
                    held[step.business] = grant.id
            clients = [await self._store.get_client(client_id) for client_id in client_ids]
            present = [client for client in clients if client is not None and client.business]
            if not present:
                raise RpcFailure(ErrorCode.CONFLICT, f"job {job_id}'s failed clients are gone")
            plan, client_ids = plan_for(plan.provider, present, held)
            params = plan.as_params()
        return await self.submit(JobKind(job.kind), client_ids, params, actor, retry_of=job_id)

    async def _retry_reauthorisation(
        self, job: JobRow, plan: SignInPlan | None, client_ids: list[int], actor: str
    ) -> int:
        """The failed clients again, minus those held elsewhere since (as any new job)."""
        present = [
            client
            for client in [await self._store.get_client(client_id) for client_id in client_ids]
            if client is not None
        ]
        if plan is not None:
            present = [client for client in present if client.business]
        if not present:
            raise RpcFailure(ErrorCode.CONFLICT, f"job {job.id}'s failed clients are gone")
        held = {}
        if plan is not None:
            # The failed funds' businesses again; a sign-in still usable is kept, the
            # others (skipped, revoked since) are asked for again.
            for step in plan.steps:
                grant = await self._store.get_grant(step.grant_id) if step.grant_id else None
                if grant is not None and grant.state == "active":
                    held[step.business] = grant.id
        names = ("takeover_of", "takeover_name")
        keep = {key: job.params[key] for key in names if key in job.params}

        def build(free: list[ClientRow]) -> tuple[dict[str, Any], list[int]]:
            if plan is None:
                return {**job.params}, [client.id for client in free]
            replanned, ordered = plan_for(plan.provider, free, held)
            return {**replanned.as_params(), **keep}, ordered

        job_id, _ = await self.submit_reauthorisation(present, build, actor, retry_of=job.id)
        return job_id

    async def add_sign_in(self, job_id: int, grant: GrantRow) -> Job:
        """Give a job the sign-in to the business it waits for; its items of that business
        run. Anything else is refused and changes nothing."""
        async with self._sign_in_lock:
            job, plan, index = await self._waiting(job_id)
            step = plan.steps[index]
            if grant.provider != plan.provider:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"grant {grant.id} is a sign-in to {grant.provider}, but job {job_id} "
                    f"re-authorises {plan.provider} clients",
                )
            if grant.business != step.business:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"grant {grant.id} is a sign-in to business {grant.business or '(none)'}, "
                    f"but job {job_id} waits for a sign-in to {step.business}: sign in to "
                    f"{step.business}",
                )
            if grant.state != "active":
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"grant {grant.id} is {grant.state}: sign in to {step.business} again",
                )
            plan = plan.replace(index, grant_id=grant.id)
            await self._store.set_job_params(job_id, {**job.params, **plan.as_params()})
            log.info("job %s: signed in to business %s (grant %s)", job_id, step.business, grant.id)
        await self._wake_up(job)
        return await self.describe(job_id)

    async def skip_sign_in(self, job_id: int, business: str) -> Job:
        """Skip the business a job waits for: its items fail with the reason; the job
        moves on to the next business."""
        async with self._sign_in_lock:
            job, plan, index = await self._waiting(job_id)
            step = plan.steps[index]
            if business != step.business:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"job {job_id} waits for a sign-in to {step.business}, not {business}: "
                    "nothing skipped",
                )
            plan = plan.replace(index, skipped=True)
            await self._store.fail_pending_between(
                job_id,
                step.first,
                step.end,
                f"not signed in to business {step.business} (skipped)",
                self._clock.now(),
                {**job.params, **plan.as_params()},
            )
            log.info("job %s: business %s skipped", job_id, step.business)
        await self._wake_up(job)
        return await self.describe(job_id)

    async def _waiting(self, job_id: int) -> tuple[JobRow, SignInPlan, int]:
        """The job, its plan and the index of the business it waits for; or why not."""
        job = await self._require(job_id)
        plan = SignInPlan.of(job.params)
        if plan is None:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"job {job_id} does not sign in business by business: nothing to add or skip",
            )
        if JobState(job.state).finished or self._control.get(job_id) == JobState.CANCELLED:
            raise RpcFailure(
                ErrorCode.CONFLICT, f"job {job_id} has ended ({job.state}): it waits for nothing"
            )
        waiting = plan.next_step()
        if waiting is None:
            raise RpcFailure(ErrorCode.CONFLICT, f"job {job_id} already has every sign-in it needs")
        return job, plan, waiting[0]

    async def _wake_up(self, job: JobRow) -> None:
        """Run what a new sign-in (or a skip) lets run; a paused job stays paused. A waiting
        job is queued before the call answers, so nobody sees it still waiting for the
        business it was just given."""
        self._mark(job.id)
        if job.state == JobState.PAUSED.value:
            return
        if job.state == JobState.WAITING.value:
            await self._store.set_job_state(job.id, JobState.QUEUED.value, self._clock.now())
        self._wake.add(job.id)
        self._spawn(job.id)

    def is_running(self, kind: JobKind) -> bool:
        """Whether a job of ``kind`` has workers under way."""
        return kind in self._running_kinds.values()

    async def describe(self, job_id: int) -> Job:
        """The job as ``jobs.get`` reports it (without items)."""
        job = await self._require(job_id)
        return self._describe(job)

    async def _require(self, job_id: int) -> JobRow:
        job = await self._store.get_job(job_id)
        if job is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no job with id {job_id}")
        return job

    # ------------------------------------------------------------------ running

    def _spawn(self, job_id: int) -> None:
        if job_id in self._tasks or self._stopping:
            return
        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda done: self._forget(job_id, done))

    def _forget(self, job_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]

    async def _run(self, job_id: int) -> None:
        try:
            await self._run_job(job_id)
        finally:
            self._running_kinds.pop(job_id, None)
            # Forgotten here, with no await after it, so a sign-in added from now on
            # starts a new task (the done callback would come a loop turn too late).
            task = asyncio.current_task()
            if task is not None:
                self._forget(job_id, task)

    async def _run_job(self, job_id: int) -> None:
        job = await self._require(job_id)
        handler = self._handlers[JobKind(job.kind)]
        self._running_kinds[job_id] = JobKind(job.kind)
        self._started_at.setdefault(job_id, time.monotonic())
        self._finished_at.setdefault(job_id, deque(maxlen=500))
        while True:
            self._wake.discard(job_id)
            await self._store.set_job_state(
                job_id, JobState.RUNNING.value, self._clock.now(), started=True
            )
            self._mark(job_id)
            workers = [
                asyncio.create_task(self._work(job, handler)) for _ in range(handler.concurrency)
            ]
            await asyncio.gather(*workers)
            if self._stopping and job_id not in self._control:
                return  # resumed at the next start
            if self._control.get(job_id) == JobState.PAUSED and await self._store.items_in_state(
                job_id, ItemState.PENDING.value
            ):
                self._control.pop(job_id)
                await self._store.set_job_state(job_id, JobState.PAUSED.value, self._clock.now())
                self._current.pop(job_id, None)
                self._publish(job_id, Topic.JOB_PROGRESS, await self._require(job_id))
                return
            if self._control.get(job_id) is None and job_id in self._wake:
                continue  # a sign-in came while the workers ran: its items may run now
            if self._control.get(job_id) is None and await self._waits_for_sign_in(job_id):
                if job_id in self._wake:
                    continue  # a sign-in came in while the workers wound down
                return
            await self._close(job_id)
            await handler.finished(await self._require(job_id))
            return

    async def _waits_for_sign_in(self, job_id: int) -> bool:
        """After the workers: park a job whose next business has no sign-in (``waiting``,
        announced); False when it has nothing more to wait for."""
        job = await self._require(job_id)
        plan = SignInPlan.of(job.params)
        if plan is None or plan.next_step() is None:
            return False
        if job_id in self._wake:
            return True
        await self._store.set_job_state(job_id, JobState.WAITING.value, self._clock.now())
        if job_id in self._wake:
            return True
        self._current.pop(job_id, None)
        self._dirty.discard(job_id)
        self._publish(job_id, Topic.JOB_PROGRESS, await self._require(job_id))
        log.info("job %s waits for a sign-in to business %s", job_id, plan.next_step()[1].business)
        return True

    async def _close(self, job_id: int) -> None:
        now = self._clock.now()
        # A pause that came after the last item was handed out has nothing left to hold.
        if self._control.pop(job_id, None) == JobState.CANCELLED:
            await self._store.skip_pending_items(job_id, now)
            state = JobState.CANCELLED
        else:
            job = await self._require(job_id)
            all_failed = job.total > 0 and job.failed == job.total
            state = JobState.FAILED if all_failed else JobState.COMPLETED
        await self._store.set_job_state(job_id, state.value, now, finished=True)
        self._current.pop(job_id, None)
        job = await self._require(job_id)
        self._dirty.discard(job_id)
        self._publish(job_id, Topic.JOB_PROGRESS, job)
        self._publish(job_id, Topic.JOB_FINISHED, job)
        log.info("job %s %s: %s done, %s failed", job_id, state.value, job.done, job.failed)

    async def _work(self, job: JobRow, handler: JobHandler) -> None:
        job_id = job.id
        claimed: JobItemRow | None = None  # claimed with the last item's outcome
        try:
            while not self._stopping and job_id not in self._control:
                below = None
                plan = SignInPlan.of(job.params)
                if plan is not None:
                    # Sign-ins are added while the job runs: read which it holds, every item.
                    job = await self._require(job_id)
                    plan = SignInPlan.of(job.params)
                    below = plan.claim_limit() if plan is not None else None
                item, claimed = claimed, None
                if item is None:
                    item = await self._store.claim_item(job_id, self._clock.now(), below)
                if item is None:
                    return
                self._current[job_id] = item.name or f"client {item.client_id}"
                self._mark(job_id)
                claimed = await self._one(job, handler, item, claim_next=plan is None)
                self._mark(job_id)
        finally:
            if claimed is not None:  # paused, cancelled or stopping: it was never started
                await self._store.unclaim_item(claimed.id)

    async def _one(
        self, job: JobRow, handler: JobHandler, item: JobItemRow, *, claim_next: bool
    ) -> JobItemRow | None:
        """Do one item; the next item when it was claimed with this one's outcome."""
        finish = Finish(self._store, item, self._clock, claim_next)
        try:
            await handler.run(job, item, finish)
        except ItemRetry as retry:
            if item.attempts >= MAX_ATTEMPTS:
                await self._fail(
                    item, f"{retry} (gave up after {plural(item.attempts, 'attempt')})"
                )
                return None
            delay = retry.after * (2 ** (item.attempts - 1)) * self._random.uniform(0.8, 1.2)
            await self._clock.sleep(min(delay, 60))
            await self._store.release_item(item.id)
            return None
        except ItemFailed as failure:
            await self._fail(item, str(failure))
            return None
        except Exception as exc:
            log.exception("job %s item %s failed", job.id, item.id)
            await self._fail(item, f"internal error: {exc}")
            return None
        self._finished_at[job.id].append(time.monotonic())
        return finish.next_item

    async def _fail(self, item: JobItemRow, reason: str) -> None:
        at = to_iso(self._clock.now())
        failed = ItemState.FAILED.value
        await self._store.commit_unit(
            lambda conn: finish_item_sync(conn, item, failed, at, error=reason)
        )
        self._finished_at.setdefault(item.job_id, deque(maxlen=500)).append(time.monotonic())

    # ------------------------------------------------------------------ progress

    def _mark(self, job_id: int) -> None:
        self._dirty.add(job_id)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish_dirty(), name="job-progress")

    async def _publish_dirty(self) -> None:
        # Coalesce: whatever changed within one interval becomes one event per job.
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            for job_id in dirty:
                job = await self._store.get_job(job_id)
                if job is not None and not JobState(job.state).finished:
                    self._publish(job_id, Topic.JOB_PROGRESS, job)
            await asyncio.sleep(PROGRESS_INTERVAL)

    def _publish(self, job_id: int, topic: Topic, job: JobRow) -> None:
        described = self._describe(job)
        self._events.publish(
            JobProgress(
                topic=topic,
                job_id=job_id,
                kind=described.kind,
                state=described.state,
                total=described.total,
                done=described.done,
                failed=described.failed,
                current=described.current,
                rate_per_minute=described.rate_per_minute,
                eta_seconds=described.eta_seconds,
                waiting_for_sign_in=described.waiting_for_sign_in,
            )
        )

    def _describe(self, job: JobRow) -> Job:
        """The job as ``jobs.get`` reports it: the row, with what is under way and how fast."""
        job_id = job.id
        rate = eta = None
        finished = self._finished_at.get(job_id)
        started = self._started_at.get(job_id)
        if finished and started is not None and not JobState(job.state).finished:
            now = time.monotonic()
            recent = [t for t in finished if t > now - 60]
            span = min(60.0, now - started)
            if recent and span > 0:
                rate = len(recent) / span * 60
                remaining = job.total - job.done - job.failed
                eta = remaining / rate * 60 if rate else None
        plan = SignInPlan.of(job.params)
        signing: dict[str, Any] = {}
        if plan is not None:
            signing = {"provider": plan.provider, "sign_ins": plan.sign_ins()}
            if not JobState(job.state).finished:
                signing["waiting_for_sign_in"] = plan.wait()
        return Job.model_validate(
            {
                **dataclasses.asdict(job),
                "current": self._current.get(job_id),
                "rate_per_minute": rate,
                "eta_seconds": eta,
                "takeover_of": job.params.get("takeover_of"),
                "takeover_name": job.params.get("takeover_name"),
                **signing,
            }
        )
