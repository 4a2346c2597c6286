"""The systemd service protocol, spoken directly: readiness, the watchdog, socket activation.

Each part is a few lines over environment variables and one AF_UNIX datagram, so no library:
``notify`` is sd_notify(3), ``watchdog_interval`` is sd_watchdog_enabled(3) and
``listen_sockets`` is sd_listen_fds_with_names(3), ``JournalFormatter`` the sd-daemon(3)
log-level prefixes. Outside systemd they all do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import IO

from clientlink.common.safe_text import SafeLogFormatter

log = logging.getLogger(__name__)

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START: systemd passes sockets from fd 3 on
_LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_SEND_TIMEOUT_SECONDS = 1.0


def notify(*messages: str) -> bool:
    """Tell the service manager ``messages`` (``READY=1``, ``STATUS=...``) in one datagram.

    Returns False, without raising, when there is no manager listening or the send fails.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or not messages:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    elif not address.startswith("/"):
        log.debug("ignoring NOTIFY_SOCKET=%r: not a socket path", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # The manager reads promptly; a full queue must not hang the event loop for long.
            sock.settimeout(_SEND_TIMEOUT_SECONDS)
            sock.connect(address)
            sock.sendall("\n".join(messages).encode())
    except OSError as exc:
        log.debug("could not notify the service manager (%s): %s", messages, exc)
        return False
    return True


def status_text(text: str) -> str:
    """``STATUS=`` with ``text`` on one line, as the protocol needs."""
    return "STATUS=" + " ".join(text.split())


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds (``WatchdogSec=``), or None when nobody watches us.

    Ping at half of it, as systemd advises.
    """
    watchdog_pid = os.environ.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(os.getpid()):
        return None  # the variables were meant for the process that started us
    try:
        microseconds = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if microseconds <= 0:
        return None
    return microseconds / 1_000_000


async def run_watchdog(stop: asyncio.Event) -> None:
    """Send ``WATCHDOG=1`` at half the watchdog timeout until ``stop`` is set.

    The pings come from the event loop itself, so a blocked loop stops them and systemd
    restarts the daemon.
    """
    timeout = watchdog_interval()
    if timeout is None:
        return
    period = timeout / 2
    while not stop.is_set():
        notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


def listen_sockets(name: str | None = None) -> list[socket.socket]:
    """The Unix stream sockets systemd passed us (socket activation), in order.

    ``name`` keeps only the sockets whose ``FileDescriptorName=`` is ``name``. The
    ``LISTEN_*`` variables are removed from the environment, so that children do not take
    the sockets for theirs, and the sockets are not inherited across exec.
    """
    values = {variable: os.environ.pop(variable, None) for variable in _LISTEN_VARIABLES}
    if values["LISTEN_PID"] is None or values["LISTEN_FDS"] is None:
        return []
    try:
        listen_pid, count = int(values["LISTEN_PID"]), int(values["LISTEN_FDS"])
    except ValueError:
        log.warning("ignoring malformed LISTEN_PID/LISTEN_FDS from the service manager")
        return []
    if listen_pid != os.getpid():
        return []  # meant for the process that started us
    names = (values["LISTEN_FDNAMES"] or "").split(":") if values["LISTEN_FDNAMES"] else []
    sockets = []
    for index, fd in enumerate(range(LISTEN_FDS_START, LISTEN_FDS_START + count)):
        fd_name = names[index] if index < len(names) else "unknown"
        if name is not None and fd_name != name:
            continue
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            log.warning("ignoring passed fd %d (%s): %s", fd, fd_name, exc)
            continue
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            log.warning("ignoring passed fd %d (%s): not a Unix stream socket", fd, fd_name)
            sock.detach()  # leave the fd as it was; it is not ours to close
            continue
        sockets.append(sock)
    return sockets


def stream_is_journal(stream: IO[str]) -> bool:
    """True when ``stream`` is the journal: ``JOURNAL_STREAM`` names its device and inode."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def journal_priority(levelno: int) -> int:
    """The syslog priority of a logging level (sd-daemon(3): <3> error ... <7> debug)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(SafeLogFormatter):
    """Escaped lines, each prefixed with its record's priority so journald files it right
    (``journalctl -p err`` shows errors); a traceback's lines carry its record's priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))
