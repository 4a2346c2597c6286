"""Where clientlink keeps its files: XDG folders, or everything under one ``--home``."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "clientlink"
HOME_ENV = "CLIENTLINK_HOME"
SOCKET_NAME = "clientlinkd.sock"
RUNTIME_ENV = "XDG_RUNTIME_DIR"


@dataclass(frozen=True)
class Paths:
    """The folders and files one clientlink installation uses."""

    config_dir: Path
    data_dir: Path
    state_dir: Path
    runtime_dir: Path

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
        """Create the folders; the runtime folder is private to this user (0700)."""
        for folder in (self.config_dir, self.data_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        ensure_private_dir(self.runtime_dir)


class UnsafeFolder(PermissionError):
    """A folder clientlink must keep private cannot be made so; the message says what to do."""


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` as 0700; refuse a symlink or a folder that another user owns.

    Never follows a symlink at ``folder`` itself (one planted in /tmp by another user would
    hand them the socket), and changes the mode only through the folder actually opened.
    """
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
        if stat.S_IMODE(opened.st_mode) != 0o700:
            os.fchmod(descriptor, 0o700)
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
