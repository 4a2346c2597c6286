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
        return self.runtime_dir / "clientlinkd.lock"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "clientlinkd.log"

    def ensure(self) -> None:
        """Create the folders; the runtime folder is private to this user (0700)."""
        for folder in (self.config_dir, self.data_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        ensure_private_dir(self.runtime_dir)


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` as 0700 and refuse one that another user owns."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user (uid {info.st_uid}); refusing")
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)


def resolve_paths(home: str | os.PathLike[str] | None = None) -> Paths:
    """The paths for ``home`` (or ``$CLIENTLINK_HOME``), else the XDG locations."""
    home = home or os.environ.get(HOME_ENV)
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(root / "config", root / "data", root / "state", root / "run")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    runtime_dir = Path(runtime) / APP_NAME if runtime else Path(f"/tmp/{APP_NAME}-{os.getuid()}")
    return Paths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_state_dir(APP_NAME)),
        runtime_dir,
    )
