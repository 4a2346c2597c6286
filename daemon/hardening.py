"""What the daemon does to its own process before it holds a secret.

- No core dumps: ``prctl(PR_SET_DUMPABLE, 0)`` and a zero ``RLIMIT_CORE``. A dump would hold
  the data key and every decrypted token in plaintext. Non-dumpable also makes
  ``/proc/PID/mem``, ``environ`` and friends root's, so the same user cannot read them.
- No passphrase in the environment: ``os.environ.pop`` only removes the variable from the
  C library's list; ``/proc/PID/environ`` shows the block the kernel set up at ``exec``,
  which still holds it. That block is overwritten with NUL bytes in place (its bounds
  are in ``/proc/self/stat``), so neither the process's children nor ``/proc`` see it.
  (The other fix, re-executing without the variable and passing the value through a
  pipe, costs a second start-up and a second process image in front of systemd's
  ``LISTEN_PID``/``NOTIFY_SOCKET`` handling; overwriting needs neither.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clientlink.common.config import Config

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
_ENV_START_FIELD = 50  # proc(5): env_start and env_end are fields 50 and 51 of stat
_PROC_STAT = Path("/proc/self/stat")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def forbid_core_dumps() -> None:
    """Make this process non-dumpable, with no core file size."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        log.warning("could not make clientlinkd non-dumpable: %s", os.strerror(error))


def is_dumpable() -> bool:
    return bool(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def take_from_environment(name: str) -> str | None:
    """Remove ``name`` from the environment, including the kernel's copy; its value."""
    value = os.environ.pop(name, None)
    if value is None:
        return None
    if not _erase_from_env_block(name):
        log.warning(
            "$%s was removed from the environment but may still show in /proc/%d/environ: "
            "prefer a passphrase file or a systemd credential",
            name,
            os.getpid(),
        )
    return value


def _erase_from_env_block(name: str) -> bool:
    try:
        stat = _PROC_STAT.read_bytes()
        fields = stat[stat.rindex(b")") + 2 :].split()  # field 3 onwards
        start, end = (int(fields[_ENV_START_FIELD - 3 + i]) for i in (0, 1))
    except (OSError, ValueError, IndexError):
        return False
    if not 0 < start < end:
        return False
    block = ctypes.string_at(start, end - start)
    prefix = name.encode() + b"="
    offset = 0
    erased = False
    for entry in block.split(b"\0"):
        if entry.startswith(prefix):
            ctypes.memset(start + offset, 0, len(entry))
            erased = True
        offset += len(entry) + 1
    return erased or prefix not in block


def protect(config: Config) -> None:
    """Everything above, for the daemon's process (called once, from ``main``)."""
    from clientlink.daemon.vault import take_passphrase

    forbid_core_dumps()
    take_passphrase(config.vault)
