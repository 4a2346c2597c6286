"""The daemon's own files: who may write them, whether they are still there, and room on disk.

- The writer's lock sits beside the database (``clientlink.db.lock`` in the data folder), so
  wiping the runtime folder (tmpfs cleaners do) can never let a second daemon write.
- Before opening, the database file and its folder must really be writable: by mode bits
  too, because root's writes ignore them and a file someone made 0444 means "keep out".
- While running, the database must still be the file that was opened: deleted or replaced,
  the daemon stops writing and says why (see :class:`DatabaseIdentity`).
- A small pre-allocated reserve file in the data folder is given up when the disk fills, so
  that a rotated refresh token can still be committed (see :class:`DiskReserve`).
- A missing database while the state folder (or the keyring) remembers an installation means
  data went missing: the daemon refuses to start afresh unless asked (``clientlinkd --init``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import stat
from pathlib import Path
from typing import IO

from clientlink.common.config import VaultConfig
from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.rpc_errors import RpcFailure

log = logging.getLogger(__name__)

RESERVE_NAME = ".clientlink-reserve"
RESERVE_BYTES = 4 * 1024 * 1024
# Below this much free space (with the reserve gone) a commit is not worth trying.
MIN_FREE_BYTES = 256 * 1024
INSTALLATION_MARKER = "installation.json"
KEYRING_SERVICE = "clientlink"


class DataFilesProblem(Exception):
    """The daemon cannot (or must not) use its data files; the message says what to do."""


class StoreUnwritable(RpcFailure):
    """A write was refused because the database cannot take it; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STORE_UNWRITABLE, message)


class DiskFull(StoreUnwritable):
    """The disk holding the data folder is full."""

    def __init__(self, folder: Path, consequence: str = "so nothing was changed") -> None:
        super().__init__(
            f"the disk holding clientlink's data folder {folder} is full, {consequence}; "
            "free some space on it and try again"
        )
        self.code = ErrorCode.STORAGE_FULL
        self.folder = folder


class DatabaseLost(StoreUnwritable):
    """The database file was deleted or replaced under the running daemon."""


# ---------------------------------------------------------------------- the writer's lock


def take_writer_lock(lock_path: Path, database: Path) -> IO[str]:
    """Hold the lock beside ``database`` for as long as the returned file stays open."""
    handle = open(lock_path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise DataFilesProblem(
            f"another clientlinkd{who} is already using the database {database}; "
            "stop it first (only one daemon may write it)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


# ---------------------------------------------------------------------- permissions


def write_problem(path: Path) -> str | None:
    """Why clientlinkd cannot write ``path`` (a file, or create files in a folder), or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    folder = stat.S_ISDIR(info.st_mode)
    mode = stat.S_IMODE(info.st_mode)
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = f"uid {info.st_uid}"
    what = f"its data folder {path}" if folder else f"its database file {path}"
    needed = os.W_OK | (os.X_OK if folder else 0)
    # Mode bits first: root may write anything, but a file nobody may write was made so on
    # purpose (or by mistake), and writing through it would hide that until it is too late.
    if mode & 0o222 == 0 or not os.access(path, needed):
        fix = f"chmod u+w{'x' if folder else ''} {path}"
        return (
            f"clientlinkd cannot write {what} (mode {mode:04o}, owner {owner}); "
            f"make it writable for the user running clientlinkd ({fix}) and start again"
        )
    return None


def check_writable(database: Path) -> None:
    """Refuse to start when the database or its folder cannot be written."""
    for candidate in (
        database.parent,
        database,
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
    ):
        problem = write_problem(candidate)
        if problem:
            raise DataFilesProblem(problem)


# ---------------------------------------------------------------------- the open database


class DatabaseIdentity:
    """Remembers which file was opened as the database, to notice it vanishing."""

    def __init__(self, database: Path) -> None:
        self.database = database
        info = os.stat(database)
        self._identity = (info.st_dev, info.st_ino)
        self.problem: str | None = None

    def check(self) -> str | None:
        """Why the database is no longer the file that was opened, or None (sticky)."""
        if self.problem is None:
            try:
                info = os.stat(self.database)
            except FileNotFoundError:
                self.problem = (
                    f"the database {self.database} was deleted while clientlinkd was running; "
                    "clientlinkd stopped writing. Restore it from a backup, then start "
                    "clientlinkd again"
                )
            else:
                if (info.st_dev, info.st_ino) != self._identity:
                    self.problem = (
                        f"the database {self.database} was replaced by another file while "
                        "clientlinkd was running; clientlinkd stopped writing. Check which file "
                        "is the practice's database, then start clientlinkd again"
                    )
        return self.problem


# ---------------------------------------------------------------------- room on disk


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on ``folder``'s file system."""
    info = os.statvfs(folder)
    return info.f_bavail * info.f_frsize


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite (or the OS) saying the disk is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == 13  # SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskReserve:
    """A pre-allocated file in the data folder, given up when the disk fills.

    Releasing it hands :data:`RESERVE_BYTES` back to the file system, enough for the
    commits that must not be lost (a rotated refresh token) after the disk filled up.
    """

    def __init__(self, folder: Path, size: int = RESERVE_BYTES) -> None:
        self.folder = folder
        self.path = folder / RESERVE_NAME
        self.size = size

    @property
    def present(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except FileNotFoundError:
            return False

    def ensure(self) -> bool:
        """Create the reserve if it is missing and the disk has room; whether it is there."""
        if self.present:
            return True
        if free_bytes(self.folder) < 2 * self.size:
            return False
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.posix_fallocate(descriptor, 0, self.size)
        except OSError as exc:
            os.close(descriptor)
            self.path.unlink(missing_ok=True)
            if is_disk_full(exc):
                return False
            raise
        os.close(descriptor)
        return True

    def release(self) -> bool:
        """Give the reserve back to the file system; whether there was one to give."""
        if not self.path.exists():
            return False
        self.path.unlink()
        log.warning(
            "the disk holding %s is full: released clientlink's reserve (%d KiB) so that "
            "pending commits fit; free some space there",
            self.folder,
            self.size // 1024,
        )
        return True


# ---------------------------------------------------------------------- a practice gone missing


def installation_marker(paths: Paths) -> Path:
    return paths.state_dir / INSTALLATION_MARKER


def remember_installation(paths: Paths, install_id: str, vault_backend: str) -> None:
    """Note, outside the data folder, that this home holds a practice's database."""
    marker = installation_marker(paths)
    record = {"install_id": install_id, "database": str(paths.database)}
    with contextlib.suppress(FileNotFoundError, ValueError):
        if json.loads(marker.read_text(encoding="utf-8")) == record:
            return
    temporary = marker.with_name(marker.name + ".tmp")
    try:
        temporary.write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.replace(temporary, marker)
    except OSError as exc:
        log.warning("could not note this installation in %s: %s", marker, exc.strerror)
    if vault_backend == "keyring":
        _keyring_remember(paths, install_id)


def _keyring_entry(paths: Paths) -> str:
    return f"installation:{paths.database}"


def _keyring_remember(paths: Paths, install_id: str) -> None:
    # Best effort: the vault itself has just used the keyring, so this rarely fails.
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, _keyring_entry(paths), install_id)
    except Exception as exc:
        log.warning("could not note this installation in the keyring: %s", exc)


def _keyring_remembers(paths: Paths) -> str | None:
    import keyring

    try:
        return keyring.get_password(KEYRING_SERVICE, _keyring_entry(paths))
    except Exception:
        return None


async def refuse_missing_database(paths: Paths, vault: VaultConfig) -> None:
    """Refuse to start afresh when the database is missing but an installation was known:
    the state folder's marker, or the keyring's note of a data key for this database."""
    if paths.database.exists():
        return
    found: list[str] = []
    marker = installation_marker(paths)
    if marker.exists():
        found.append(f"{marker} records a practice's database there")
    if vault.backend == "keyring":
        install_id = None
        # A keyring that does not answer is the vault's to report, with its advice.
        with contextlib.suppress(TimeoutError):
            install_id = await asyncio.wait_for(
                asyncio.to_thread(_keyring_remembers, paths), vault.keyring_timeout_seconds
            )
        if install_id:
            found.append(
                f"the system keyring holds clientlink's data key for it (data-key:{install_id})"
            )
    if found:
        raise DataFilesProblem(
            f"the database {paths.database} is missing, but {' and '.join(found)}. The "
            "practice's data may have been deleted or moved: restore it (or point --home at "
            "it), or start an empty practice on purpose with `clientlinkd --init`"
        )
