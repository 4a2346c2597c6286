"""``clientlinkd``: the daemon in the foreground, logging to stderr."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys

from clientlink.common.config import Config, ConfigError, load_config
from clientlink.common.paths import Paths, resolve_paths
from clientlink.common.version import VERSION
from clientlink.daemon.rpc_server import DaemonAlreadyRunning
from clientlink.daemon.service import Daemon
from clientlink.daemon.vault import VaultUnavailable

log = logging.getLogger("clientlinkd")

EX_CONFIG = 78  # sysexits: a configuration problem the person must fix
EX_TEMPFAIL = 75


def main(argv: list[str] | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="clientlinkd", description="clientlink's background daemon (runs in the foreground)"
    )
    parser.add_argument("--home", help="keep config, data and the socket under this folder")
    parser.add_argument("--log-level", default=os.environ.get("CLIENTLINK_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"clientlinkd {VERSION}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request line; request URLs are ours but keep the journal quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    paths = resolve_paths(args.home)
    try:
        config = load_config(paths.config_file)
    except ConfigError as exc:
        log.error("%s", exc)
        return EX_CONFIG
    paths.ensure()
    with open(paths.lock_file, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.error("another clientlinkd is already running for %s", paths.runtime_dir)
            return 1
        try:
            return asyncio.run(_serve(paths, config))
        except KeyboardInterrupt:
            return 0


async def _serve(paths: Paths, config: Config) -> int:
    daemon = Daemon(paths, config)
    try:
        await daemon.start()
    except VaultUnavailable as exc:
        log.error("cannot open the vault: %s", exc)
        return EX_CONFIG
    except DaemonAlreadyRunning as exc:
        log.error("%s", exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("ready")
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
