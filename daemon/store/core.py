"""The database itself: opening it, the one writer, its identity, the disk reserve and
write transactions. Every aggregate's queries build on :class:`Database`.

One aiosqlite connection in WAL mode. Writes go through :meth:`Database.transaction`,
which holds an asyncio lock for the whole transaction: several coroutines share the
connection, and without the lock their statements would interleave inside each
other's transactions.

Every ``await`` on the connection is a hop to its thread and back, and on a busy daemon
the hops cost more than the statements. So a unit of work that knows its statements runs
them in one hop (:meth:`Database.run_sync`, a plain function of the ``sqlite3``
connection), and the job engine's per-item commits go through :meth:`Database.commit_unit`:
units that arrive while one is being written are written together, in one transaction
(group commit), each in a savepoint of its own, so one unit's error undoes only that unit,
and a unit (an item's effect with its outcome) is always wholly in or wholly out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self, TypeVar

import aiosqlite

from clientlink.daemon.datafiles import (
    MIN_FREE_BYTES,
    DatabaseIdentity,
    DatabaseLost,
    DiskFull,
    DiskReserve,
    check_writable,
    free_bytes,
    is_disk_full,
    take_writer_lock,
)
from clientlink.daemon.store import schema

log = logging.getLogger("clientlink.daemon.store")
T = TypeVar("T")

Unit = Callable[[sqlite3.Connection], T]
"""Statements run in the database's thread, in one hop (see :meth:`Database.run_sync`)."""

GROUP_LIMIT = 64
"""At most this many units in one group commit (a bounded transaction, a bounded wait)."""


@dataclass
class _Pending:
    unit: Unit[Any]
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Database:
    """The connection and its write discipline; no queries of any aggregate."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._write_lock = _ReentrantLock()
        self._writer_lock: IO[str] | None = None
        self._identity: DatabaseIdentity | None = None
        self.reserve: DiskReserve | None = None
        self._folder = Path(".")
        # Called once, with the reason, when the database turns out deleted or replaced.
        self.on_lost: Callable[[str], None] | None = None
        self._after_commit: list[Callable[[], None]] = []
        self._pending: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) and migrate the database at ``path``.

        Takes the writer's lock beside the database first (a second writer is refused with
        :class:`~clientlink.daemon.datafiles.DataFilesProblem`, as is a database or folder
        that cannot be written), and keeps a disk reserve in the data folder.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(check_writable, path)
        writer_lock = take_writer_lock(path.with_name(path.name + ".lock"), path)
        try:
            db = await aiosqlite.connect(str(path), isolation_level=None)
        except BaseException:
            writer_lock.close()
            raise
        db.row_factory = aiosqlite.Row
        store = cls(db)
        store._writer_lock = writer_lock
        store._folder = path.parent
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await asyncio.to_thread(path.chmod, 0o600)
            store._identity = DatabaseIdentity(path)
            store.reserve = DiskReserve(path.parent)
            if not await asyncio.to_thread(store.reserve.ensure):
                log.warning("no room for clientlink's disk reserve in %s", path.parent)
            await store._migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection and give up the writer's lock."""
        try:
            await self._db.close()
        finally:
            if self._writer_lock is not None:
                self._writer_lock.close()
                self._writer_lock = None

    def check_database(self) -> str | None:
        """Look whether the database is still the file that was opened (cheap: one stat)."""
        if self._identity is None:
            return None
        known = self._identity.problem
        problem = self._identity.check()
        if problem and known is None:
            log.error("%s", problem)
            if self.on_lost is not None:
                self.on_lost(problem)
        return problem

    async def with_reserve(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` (whole transactions, outside any other); if the disk is full, give
        up the disk reserve and run it once more. For commits that must not be lost, such as
        a rotated refresh token or the marker written before a token call."""
        try:
            return await write()
        except DiskFull:
            if self.reserve is None or not await asyncio.to_thread(self.reserve.release):
                raise
        return await write()

    async def ensure_writable_reserve(self) -> None:
        """Before an outside call whose result must be committed (a token refresh): make
        sure the commit will fit. Puts the reserve back when the disk has room again; raises
        :class:`DiskFull` (make no call then) when neither the reserve nor the room is there."""
        if self.reserve is None:
            return
        if await asyncio.to_thread(self.reserve.ensure):
            return
        if await asyncio.to_thread(free_bytes, self.reserve.folder) < MIN_FREE_BYTES:
            raise DiskFull(self.reserve.folder)

    async def _migrate(self) -> None:
        await schema.migrate(self._db, self.transaction)

    @property
    def schema_version(self) -> int:
        return len(schema.MIGRATIONS)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block in one write transaction (nested blocks join the outer one)."""
        async with self._write_lock as depth:
            if depth > 1:
                yield self._db
                return
            problem = self.check_database()
            if problem:
                raise DatabaseLost(problem)
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                self._after_commit = []
                try:
                    yield self._db
                except BaseException:
                    self._after_commit = []
                    await self._rollback()
                    raise
                try:
                    await self._db.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (a full disk) can leave the transaction open.
                    self._after_commit = []
                    await self._rollback()
                    raise
            except sqlite3.OperationalError as exc:
                if is_disk_full(exc):
                    raise DiskFull(self._folder) from exc
                raise
            callbacks, self._after_commit = self._after_commit, []
            for callback in callbacks:
                callback()

    async def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await self._db.execute("ROLLBACK")

    def in_transaction(self) -> bool:
        """Whether the calling task is inside :meth:`transaction`."""
        return self._write_lock.held_by_current_task()

    async def run_sync(self, unit: Unit[T]) -> T:
        """Run ``unit(connection)`` in the database's thread: its statements take one hop,
        not one each. Inside :meth:`transaction` it joins that transaction; outside one it
        runs in autocommit, so a unit of more than one write belongs in a transaction (or in
        :meth:`commit_unit`)."""
        # aiosqlite queues calls for its thread through ``_execute``; this is the one place
        # that reaches past its statement methods.
        db = self._db
        return await db._execute(unit, db._conn)

    async def commit_unit(self, unit: Unit[T]) -> T:
        """Commit ``unit`` in a transaction of its own or together with others that came
        meanwhile (group commit); returns its result once it is committed, or raises its
        error (then none of its statements were kept, and the others' were). Must not be
        called inside :meth:`transaction`."""
        assert not self._write_lock.held_by_current_task(), "commit_unit inside a transaction"
        pending = _Pending(unit)
        self._pending.append(pending)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending(), name="group-commit")
        return await pending.future

    async def _commit_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:GROUP_LIMIT], self._pending[GROUP_LIMIT:]
            try:
                async with self._write_lock:
                    problem = self.check_database()
                    if problem:
                        raise DatabaseLost(problem)
                    outcomes = await self.run_sync(
                        lambda conn, group=group: _write_group(conn, group)
                    )
            except sqlite3.OperationalError as exc:
                failure: BaseException = DiskFull(self._folder) if is_disk_full(exc) else exc
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(failure)
                continue
            except BaseException as exc:
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for pending, (ok, value) in zip(group, outcomes, strict=True):
                if pending.future.done():
                    continue
                if ok:
                    pending.future.set_result(value)
                else:
                    pending.future.set_exception(value)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the caller's transaction has committed (at once outside
        one); never if it rolls back. Events announce only what readers can see."""
        if self._write_lock.held_by_current_task():
            self._after_commit.append(callback)
        else:
            callback()

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        # One trip to the database thread (execute + fetch + close), not three.
        return list(await self._db.execute_fetchall(sql, tuple(params)))

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self._db.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)


def _write_group(conn: sqlite3.Connection, group: list[_Pending]) -> list[tuple[bool, Any]]:
    """One transaction for the group, a savepoint for each unit: (ok, result or error)."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for pending in group:
            conn.execute("SAVEPOINT unit")
            try:
                value = pending.unit(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE unit")
                outcomes.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return outcomes


class _ReentrantLock:
    """An asyncio lock the holding task may enter again; yields the nesting depth."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: object | None = None
        self._depth = 0

    def held_by_current_task(self) -> bool:
        return self._depth > 0 and self._owner is asyncio.current_task()

    async def __aenter__(self) -> int:
        task = asyncio.current_task()
        if self._owner is task:
            self._depth += 1
            return self._depth
        await self._lock.acquire()
        self._owner = task
        self._depth = 1
        return 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()
