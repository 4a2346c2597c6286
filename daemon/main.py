"""``clientlinkd``: the daemon in the foreground, logging to stderr."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from clientlink.common.config import Config, ConfigError, load_config
from clientlink.common.paths import Paths, UnsafeFolder, resolve_paths, system_paths
from clientlink.common.safe_text import SafeLogFormatter
from clientlink.common.version import VERSION
from clientlink.common.wording import plural
from clientlink.daemon import hardening, systemd
from clientlink.daemon.datafiles import DataFilesProblem
from clientlink.daemon.rpc_server import DaemonAlreadyRunning
from clientlink.daemon.service import Daemon
from clientlink.daemon.vault import VaultUnavailable

log = logging.getLogger("clientlinkd")

EX_CONFIG = 78  # sysexits: a configuration problem the person must fix
EX_TEMPFAIL = 75
EX_IOERR = 74  # the database was deleted or replaced under the running daemon


def main(argv: list[str] | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="clientlinkd", description="clientlink's background daemon (runs in the foreground)"
    )
    parser.add_argument("--home", help="keep config, data and the socket under this folder")
    parser.add_argument(
        "--system",
        action="store_true",
        help="firm mode's system service: config in /etc/clientlink, data in "
        "/var/lib/clientlink, the socket in /run/clientlink (see `clientlink service install "
        "--firm`)",
    )
    parser.add_argument(
        "--init",
        action="store_true",
        help="start an empty practice even though clientlink's database was known here before",
    )
    parser.add_argument("--log-level", default=os.environ.get("CLIENTLINK_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"clientlinkd {VERSION}")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    # httpx logs every request line; request URLs are ours but keep the journal quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # APScheduler logs every job it adds or runs: thousands of lines a day for a practice.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Taken first: the LISTEN_* variables must not outlive this call (see listen_sockets).
    inherited = _inherited_socket()
    if args.system and args.home:
        parser.error("--system and --home name different homes: give one of them")
    paths = system_paths() if args.system else resolve_paths(args.home)
    try:
        config = load_config(paths.config_file)
    except ConfigError as exc:
        return _failed(EX_CONFIG, str(exc))
    # Firm mode shares the socket's folder with the practice's group.
    paths = paths.shared_with(config.firm.group if config.firm.enabled else None)
    hardening.protect(config)  # before any secret is read: no core dumps, no env passphrase
    try:
        paths.ensure()
    except UnsafeFolder as exc:
        return _failed(EX_CONFIG, str(exc))
    # The writer's lock is taken with the database (beside it, in the data folder).
    try:
        return asyncio.run(_serve(paths, config, inherited, init=args.init))
    except KeyboardInterrupt:
        return 0


def configure_logging(level: str) -> logging.Handler:
    """Log to stderr, every line escaped: log lines carry client names and provider text.
    When stderr is the journal, each line starts with its syslog priority (``<3>``...)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = (
        systemd.JournalFormatter if systemd.stream_is_journal(sys.stderr) else SafeLogFormatter
    )
    handler.setFormatter(formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    return handler


def _inherited_socket() -> socket.socket | None:
    sockets = systemd.listen_sockets()
    for extra in sockets[1:]:
        log.warning("ignoring an extra socket passed by systemd: %s", extra.getsockname())
        extra.close()
    return sockets[0] if sockets else None


def _failed(exit_code: int, reason: str, *, traceback: bool = False) -> int:
    """Log why the daemon cannot run and tell systemd (``systemctl status`` shows it)."""
    log.error("%s", reason, exc_info=traceback)
    systemd.notify(systemd.status_text(reason))
    return exit_code


async def _serve(
    paths: Paths, config: Config, inherited: socket.socket | None = None, *, init: bool = False
) -> int:
    daemon = Daemon(paths, config, init=init)
    # Taken before the socket opens: a SIGTERM that comes as soon as it serves (systemd
    # stopping a unit that just started) is a clean stop, not a kill mid-start.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await daemon.start(inherited_socket=inherited)
    except VaultUnavailable as exc:
        return _failed(EX_CONFIG, f"cannot open the vault: {exc}")
    except DataFilesProblem as exc:
        return _failed(EX_CONFIG, str(exc))
    except DaemonAlreadyRunning as exc:
        return _failed(1, str(exc))
    except Exception as exc:
        return _failed(1, f"clientlinkd could not start: {exc}", traceback=True)
    watching = sum((await daemon.store.count_clients_by_status(active=True)).values())
    # Only now can the daemon really serve: store, vault, socket (and scheduler) are up.
    systemd.notify("READY=1", systemd.status_text(f"Watching {plural(watching, 'client')}"))
    log.info("ready")
    watchdog = asyncio.create_task(systemd.run_watchdog(stop), name="systemd-watchdog")
    failed = asyncio.create_task(daemon.failed.wait(), name="database-failure")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        failed.cancel()
        stopping.cancel()
        log.info("stopping")
        systemd.notify("STOPPING=1", systemd.status_text("Stopping"))
        stop.set()
        await watchdog
        await daemon.stop()
    if daemon.failure:
        return _failed(EX_IOERR, f"clientlinkd stopped: {daemon.failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
