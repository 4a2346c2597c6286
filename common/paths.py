"""Where clientlink keeps its files: XDG folders, or everything under one ``--home``."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

APP_NAME = "clientlink"
HOME_ENV = "CLIENTLINK_HOME"
SOCKET_NAME = "clientlinkd.sock"
RUNTIME_ENV = "XDG_RUNTIME_DIR"
SOCKET_ENV = "CLIENTLINK_SOCKET"
"""Names the socket of a firm's daemon to connect to (the CLI and TUI; not the daemon)."""

# Firm mode's layout (``clientlinkd --system``, as ``clientlink service install --firm`` runs it):
# config in /etc, the database in systemd's StateDirectory=, the socket in a folder shared
# with the practice's group (made at boot by systemd-tmpfiles, see cli/firm_install.py).
SYSTEM_CONFIG_DIR = Path("/etc") / APP_NAME
SYSTEM_STATE_DIR = Path("/var/lib") / APP_NAME
SYSTEM_RUNTIME_DIR = Path("/run") / APP_NAME
FIRM_SOCKET = SYSTEM_RUNTIME_DIR / SOCKET_NAME


@dataclass(frozen=True)
class Paths:
    """The folders and files one clientlink installation uses."""

    config_dir: Path
    data_dir: Path
    state_dir: Path
    runtime_dir: Path
    socket_group: str | None = None
    """Firm mode: the group the socket's folder (0750) and the socket (0660) are shared with;
    ``None`` (single-user mode): both are private to this user (0700, 0600)."""

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def database(self) -> Path:
        return self.data_dir / "clientlink.db"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / SOCKET_NAME

    @property
    def lock_file(self) -> Path:
        """The writer's lock: beside the database, so wiping the runtime folder keeps it."""
        return self.data_dir / "clientlink.db.lock"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "clientlinkd.log"

    def ensure(self) -> None:
        """Create the folders; the runtime folder is private to this user (0700), or in
        firm mode shared with the socket's group (0750)."""
        for folder in (self.config_dir, self.data_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if self.socket_group:
            ensure_group_dir(self.runtime_dir, self.socket_group)
        else:
            ensure_private_dir(self.runtime_dir)

    def shared_with(self, group: str | None) -> Paths:
        """These paths with the socket shared with ``group`` (firm mode), or private."""
        return replace(self, socket_group=group)


class UnsafeFolder(PermissionError):
    """A folder clientlink must keep private cannot be made so; the message says what to do."""


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` as 0700; refuse a symlink or a folder that another user owns.

    Never follows a symlink at ``folder`` itself (one planted in /tmp by another user would
    hand them the socket), and changes the mode only through the folder actually opened.
    """
    _ensure_dir(folder, 0o700, None)


def group_id(group: str) -> int:
    """The id of ``group``; an :class:`UnsafeFolder` saying what to do when there is none."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UnsafeFolder(
            f"the group {group!r} (`[firm] group` in config.toml) does not exist: create it "
            f"with `groupadd --system {group}` (`clientlink service install --firm` does), "
            "or name the practice's group in config.toml"
        ) from None


def ensure_group_dir(folder: Path, group: str) -> None:
    """Create ``folder`` as 0750, owned by this user and shared with ``group`` (firm mode's
    socket folder); the same refusals as :func:`ensure_private_dir`."""
    _ensure_dir(folder, 0o750, group_id(group))


def _ensure_dir(folder: Path, mode: int, gid: int | None) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    advice = f"set {RUNTIME_ENV} to a folder only you can write, or use --home"
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFolder(f"{folder} is a symbolic link, not a folder; refusing it ({advice})")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolder(f"{folder} is not a folder; refusing it ({advice})")
    if info.st_uid != os.getuid():
        raise UnsafeFolder(
            f"{folder} belongs to another user (uid {info.st_uid}); refusing it ({advice})"
        )
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        opened = os.fstat(descriptor)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise UnsafeFolder(f"{folder} changed while being checked; refusing it ({advice})")
        if gid is not None and opened.st_gid != gid:
            os.fchown(descriptor, -1, gid)
        if stat.S_IMODE(opened.st_mode) != mode:
            os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def default_runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/clientlink``; without it, a folder no other user can pre-create.

    That is systemd's ``/run/user/<uid>`` when it exists and is ours, else a ``run`` folder
    in the user's own state folder (never a guessable name in /tmp).
    """
    runtime = os.environ.get(RUNTIME_ENV)
    if runtime:
        return Path(runtime) / APP_NAME
    user_run = Path(f"/run/user/{os.getuid()}")
    try:
        info = os.lstat(user_run)
    except OSError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        return user_run / APP_NAME
    return Path(platformdirs.user_state_dir(APP_NAME)) / "run"


def resolve_paths(home: str | os.PathLike[str] | None = None) -> Paths:
    """The paths for ``home`` (or ``$CLIENTLINK_HOME``), else the XDG locations."""
    home = home or os.environ.get(HOME_ENV)
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(root / "config", root / "data", root / "state", root / "run")
    return Paths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_state_dir(APP_NAME)),
        default_runtime_dir(),
    )


def system_paths() -> Paths:
    """Firm mode's layout: ``clientlinkd --system`` under systemd as the ``clientlink`` user."""
    return Paths(SYSTEM_CONFIG_DIR, SYSTEM_STATE_DIR, SYSTEM_STATE_DIR, SYSTEM_RUNTIME_DIR)


def client_socket(home: str | os.PathLike[str] | None = None) -> Path:
    """The socket the CLI and TUI connect to, in this order:

    1. ``--home`` (``home``): that home's socket;
    2. ``$CLIENTLINK_SOCKET``: the socket it names (a firm's daemon somewhere else);
    3. ``$CLIENTLINK_HOME``: that home's socket;
    4. the firm's socket, ``/run/clientlink/clientlinkd.sock``, when it exists and this user
       may open its folder (is in the firm's group, or is its service user);
    5. this user's own daemon's socket (the XDG runtime folder).
    """
    if home:
        return resolve_paths(home).socket
    named = os.environ.get(SOCKET_ENV)
    if named:
        return Path(named).expanduser()
    if os.environ.get(HOME_ENV):
        return resolve_paths(None).socket
    if firm_socket_reachable(FIRM_SOCKET):
        return FIRM_SOCKET
    return resolve_paths(None).socket


def firm_socket_reachable(socket_path: Path) -> bool:
    """Whether ``socket_path`` exists and this user may reach it (not only root may)."""
    try:
        info = os.stat(socket_path.parent)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or not os.access(socket_path.parent, os.X_OK):
        return False
    return os.path.exists(socket_path)


def first_uid() -> int:
    """The first uid of a person's account (``UID_MIN`` of /etc/login.defs, 1000 without it):
    accounts below it are the system's own, made only by root (``useradd --system``)."""
    try:
        text = Path("/etc/login.defs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1000
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "UID_MIN" and words[1].isdigit():
            return int(words[1])
    return 1000


def firm_service_uid(socket_path: Path) -> int | None:
    """The system account that serves a firm's socket at ``socket_path``, or ``None``.

    A firm's socket is in a folder that a system account owns (or root), that only its owner
    may write, and that no one else could have put there: every folder above it belongs to
    root or that account and is writable by no one else (a root-owned sticky folder such as
    /tmp is fine: nobody can move another's entry out of it). Only root can make such a
    folder, so a server running as its owner is the firm's daemon and not an impostor.
    """
    folder = socket_path.parent
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
        return None
    owner = info.st_uid
    if owner != 0 and owner >= first_uid():
        return None
    for ancestor in folder.parents:
        try:
            above = os.lstat(ancestor)
        except OSError:
            return None
        if not stat.S_ISDIR(above.st_mode) or above.st_uid not in (0, owner):
            return None
        sticky_root = above.st_uid == 0 and above.st_mode & stat.S_ISVTX
        if above.st_mode & 0o022 and not sticky_root:
            return None
    return owner


def user_name(uid: int) -> str:
    """The login of ``uid``, else ``uid N``."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
