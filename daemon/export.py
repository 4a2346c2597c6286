"""CSV files for people: client lists and job outcomes, safe to open in a spreadsheet.

A cell that a spreadsheet would run as a formula (starting with ``=``, ``@``, a tab, a
carriage return or a line feed, or with ``+``/``-`` unless the whole cell is a plain number
or an E.164 phone such as ``+61491579437``) gets a leading apostrophe, so a client named
``=HYPERLINK(...)`` stays text and a phone number stays as it was typed. Files are
written whole (a temporary file renamed into place) and readable only by their owner:
they hold client details.

Where a file may go (:func:`check_target`): never inside clientlink's own folders (config,
data, state, runtime: an export must not replace the database or the socket), and only as
a regular file; a symlink, socket, device or FIFO at the path is refused, not followed. A
missing folder is created only inside the caller's home, and the answer says so.

Where a file may be read from (:func:`check_source`, for an import): the same folders are
refused, the last component is never followed, and the caller (not the daemon, which in firm
mode runs as its own user) must be able to reach and read the file by its permissions.
"""

from __future__ import annotations

import csv
import io
import os
import pwd
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.store import ClientRow, Store

EXPORT_PAGE = 5000

_FORMULA_STARTS = ("=", "@", "\t", "\r", "\n")
_SIGNED_STARTS = ("+", "-")
# A cell that starts with a sign is left alone only when a spreadsheet reads the whole of
# it as a number (``-12.5``, ``+3e2``) or when it is an E.164 phone (``+`` then up to 15
# digits): neither can run anything.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_E164_PHONE = re.compile(r"\+[1-9]\d{1,14}")


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would evaluate ``text`` rather than show it."""
    if text.startswith(_FORMULA_STARTS):
        return True
    if text.startswith(_SIGNED_STARTS):
        return not (_PLAIN_NUMBER.fullmatch(text) or _E164_PHONE.fullmatch(text))
    return False


def neutralise(value: Any) -> str:
    """The cell's text, made inert for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if is_formula(text):
        return "'" + text
    return text


def _refuse(message: str) -> RpcFailure:
    return RpcFailure(ErrorCode.INVALID_PARAMS, message)


def caller_home(uid: int) -> Path:
    """The home folder of the user with ``uid``, or a clear error."""
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        home = ""
    if not home or not os.path.isabs(home):
        raise _refuse(f"uid {uid} has no home folder, so '~' cannot be used; give a full path")
    return Path(home)


def expand_home(path_text: str, uid: int) -> Path:
    """``path_text`` with a leading ``~/`` made the caller's home (``uid``'s)."""
    if path_text.rstrip("/") == "~":
        raise _refuse("'~' is your home folder; give a file name in it, such as ~/clients.csv")
    if path_text.startswith("~/"):
        return caller_home(uid) / path_text[2:]
    if path_text.startswith("~"):
        raise _refuse(f"{path_text!r}: only '~' (your own home) can be expanded; give a full path")
    return Path(path_text)


def refuse_own_folders(path: Path, target: Path, paths: Paths) -> None:
    """A clear error when ``target`` (``path`` with the folders above it resolved) lies in
    one of clientlink's own folders: no RPC reads or writes the database, settings or socket."""
    for own in (paths.config_dir, paths.data_dir, paths.state_dir, paths.runtime_dir):
        own_real = Path(os.path.realpath(own))
        if target == own_real or target.is_relative_to(own_real):
            raise _refuse(
                f"{path} is inside clientlink's own folder {own}, which holds its database, "
                "settings and socket; choose a path elsewhere"
            )


def _checked_path(path_text: str, paths: Paths, uid: int, what: str) -> tuple[Path, Path, Path]:
    """A caller's file path as given (``~`` expanded), its folder with symlinks resolved,
    and the file in that folder (its last component not followed); or a clear error. The
    one place that decides which path texts are refused, for writing and for reading."""
    if "\0" in path_text:
        raise _refuse("the path contains a NUL byte; give a plain file path")
    if not path_text.strip():
        raise _refuse(f"give the path of {what}")
    path = expand_home(path_text, uid)
    if not path.is_absolute():
        raise _refuse(f"give an absolute path (or one starting with '~/'), not {path_text!r}")
    if path.name in ("", ".", ".."):
        raise _refuse(f"{path_text!r} names a folder; give a file name too")
    parent = Path(os.path.realpath(path.parent))
    target = parent / path.name
    refuse_own_folders(path, target, paths)
    return path, parent, target


def check_target(
    path_text: str, overwrite: bool, paths: Paths, uid: int
) -> tuple[Path, Path | None]:
    """The file to write and the folder created for it (if one was), or a clear error that
    changes nothing. ``paths`` are clientlink's own folders, ``uid`` the caller."""
    # Symlinks in the folders above are resolved (the file lands where they point); the
    # final component is never followed (see below).
    path, parent, target = _checked_path(path_text, paths, uid, "the CSV file to write")
    created: Path | None = None
    if not parent.is_dir():
        if parent.exists():
            raise _refuse(f"{path.parent} is not a folder")
        home = Path(os.path.realpath(caller_home(uid)))
        if not parent.is_relative_to(home) or parent == home:
            raise _refuse(
                f"the folder {path.parent} does not exist; create it first (clientlinkd creates "
                f"missing folders only inside your home, {home})"
            )
        try:
            parent.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise _refuse(f"cannot create the folder {path.parent}: {exc.strerror}") from exc
        created = parent
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return target, created
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(f"{path} is a symbolic link; clientlinkd writes only regular files")
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(f"{path} is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(
            f"{path} is not a regular file (a socket, device or pipe); choose another name"
        )
    if not overwrite:
        raise RpcFailure(
            ErrorCode.CONFLICT, f"{path} already exists; choose another name or overwrite it"
        )
    return target, created


def check_source(path_text: str, paths: Paths, uid: int) -> Path:
    """The file to read (its folders resolved, its last component not followed), or a clear
    error. Whether it is a regular file the caller may read is checked as it is opened
    (:func:`caller_may_read`), so that a file swapped in between is caught."""
    path, parent, target = _checked_path(path_text, paths, uid, "the CSV or XLSX file to import")
    if not parent.is_dir():
        raise _refuse(f"the folder {path.parent} does not exist")
    check = caller_may_read(uid)
    folder = parent
    while True:
        check(os.stat(folder), folder, search=True)
        if folder.parent == folder:
            break
        folder = folder.parent
    return target


def caller_may_read(uid: int) -> Any:
    """``check(info, path, search=False)``: a clear error unless the user ``uid`` may read
    the file (or, with ``search``, pass through the folder) that ``info`` describes."""
    if uid in (0, os.geteuid()):
        return lambda info, path, search=False: None  # the system's own check applies
    try:
        user = pwd.getpwuid(uid)
        groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    except KeyError:
        groups = set()

    def check(info: os.stat_result, path: Path, search: bool = False) -> None:
        if info.st_uid == uid:
            bit = stat.S_IXUSR if search else stat.S_IRUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP if search else stat.S_IRGRP
        else:
            bit = stat.S_IXOTH if search else stat.S_IROTH
        if not info.st_mode & bit:
            what = "open the folder" if search else "read"
            raise _refuse(f"you cannot {what} {path} (its permissions do not allow it)")

    return check


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write the rows under ``header``; returns how many rows were written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise(value) for value in row])
        count += 1
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".clientlink-", dir=path.parent)
    except OSError as exc:
        raise _refuse(f"cannot write in {path.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(buffer.getvalue())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _refuse(f"cannot write {path}: {exc.strerror}; nothing was written") from exc
        raise
    return count


async def all_clients(store: Store, **flt: Any) -> list[ClientRow]:
    """Every client matching ``flt`` (the store's ``list_clients`` filter), page by page."""
    rows: list[ClientRow] = []
    while True:
        total, page = await store.list_clients(**flt, offset=len(rows), limit=EXPORT_PAGE)
        rows += page
        if not page or len(rows) >= total:
            return rows
