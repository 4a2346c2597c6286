"""``clientlink service install|uninstall|status``: clientlinkd as a systemd user service.

The service is socket-activated (``clientlinkd.socket`` owns the socket file, so a restart
never leaves the TUI without a socket) and ``Type=notify`` (``READY=1`` once the daemon can
really serve), with a watchdog and the hardening a ``--user`` unit can have.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient, DaemonUnavailable, RpcError
from clientlink.common.paths import APP_NAME, HOME_ENV, SOCKET_NAME, Paths, resolve_paths
from clientlink.common.wording import plural

SERVICE_UNIT = "clientlinkd.service"
SOCKET_UNIT = "clientlinkd.socket"
UNITS = (SOCKET_UNIT, SERVICE_UNIT)
EXIT_ERROR = 2
EXIT_NOT_RUNNING = 3
# The socket systemd makes when there is no --home: where resolve_paths() looks for it.
RUNTIME_SOCKET = f"%t/{APP_NAME}/{SOCKET_NAME}"
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:@+,=-]+")
_SYSTEMCTL_TIMEOUT_SECONDS = 60


def configure_service_parser(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``clientlink service ...``."""
    commands = parser.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    install = commands.add_parser(
        "install", help="write the user units, then enable and start them"
    )
    install.add_argument("--no-start", action="store_true", help="only write the unit files")
    from clientlink.cli.firm_install import add_firm_arguments

    add_firm_arguments(install)
    commands.add_parser("uninstall", help="stop and disable the service, remove the unit files")
    status = commands.add_parser(
        "status", help="is the service installed, enabled, running; exits 3 when not running"
    )
    status.add_argument("--json", action="store_true", help="print JSON")


def run_service_command(args: argparse.Namespace) -> int:
    """Carry out ``clientlink service ACTION``."""
    home = args.home or os.environ.get(HOME_ENV) or None
    if args.service_command == "install" and (args.firm or args.root or args.dry_run):
        from clientlink.cli.firm_install import install_firm

        if not args.firm:
            print("--root and --dry-run go with --firm", file=sys.stderr)
            return EXIT_ERROR
        if args.home:
            print("--firm installs the system's clientlink: give no --home", file=sys.stderr)
            return EXIT_ERROR
        return install_firm(args)
    if args.service_command == "install":
        return install(home, start=not args.no_start)
    if args.service_command == "uninstall":
        return uninstall()
    return status(home, as_json=args.json)


# ---------------------------------------------------------------------- the unit files


def unit_dir() -> Path:
    """Where systemd looks for this user's own units."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user"


def daemon_command(home: str | None = None) -> list[str]:
    """How systemd starts clientlinkd from this installation (absolute paths)."""
    script = Path(sys.executable).parent / "clientlinkd"
    if os.access(script, os.X_OK):
        command = [str(script)]
    else:
        command = [sys.executable, "-m", "clientlink.daemon.main"]
    if home:
        command += ["--home", str(Path(home).expanduser().resolve())]
    return command


def render_units(command: Sequence[str], home: str | None = None) -> dict[str, str]:
    """The text of ``clientlinkd.socket`` and ``clientlinkd.service``, by file name.

    ``command`` is the daemon's command line (``daemon_command``); ``home`` the ``--home``
    it was given, which moves the socket and the folders the service may write.
    """
    paths = _service_paths(home)
    folders = [paths.config_dir, paths.data_dir, paths.state_dir]
    if home:
        folders.append(paths.runtime_dir)
        socket_path = _escape_specifiers(str(paths.socket))
    else:
        socket_path = RUNTIME_SOCKET  # under systemd, $XDG_RUNTIME_DIR is always %t
    writable = [_path_word(folder) for folder in folders]
    if not home:
        writable.append(f"%t/{APP_NAME}")
    private_tmp = (
        "# PrivateTmp= is off: clientlink's folders are under /tmp, which it would hide.\n"
        if any(_under_tmp(folder) for folder in folders)
        else "PrivateTmp=yes\n"
    )
    socket_unit = f"""\
# Written by `clientlink service install`; `clientlink service uninstall` removes it.
# systemd owns the socket file, so clients can connect while clientlinkd (re)starts.
[Unit]
Description=clientlink daemon socket

[Socket]
ListenStream={socket_path}
SocketMode=0600
DirectoryMode=0700

[Install]
WantedBy=sockets.target
"""
    service_unit = f"""\
# Written by `clientlink service install`; `clientlink service uninstall` removes it.
[Unit]
Description=clientlink daemon: keeps the practice's accounting connections alive
Requires={SOCKET_UNIT}
After={SOCKET_UNIT}

[Service]
Type=notify
NotifyAccess=main
ExecStart={" ".join(_exec_word(arg) for arg in command)}
WatchdogSec=30
Restart=on-failure
RestartSec=5
# 78 is a configuration problem (config.toml, the vault): restarting cannot fix it.
RestartPreventExitStatus=78
TimeoutStopSec=30

# Hardening. In a --user unit these need unprivileged user namespaces (systemd then
# implies PrivateUsers=); if the service fails with 218/CAPABILITIES or 226/NAMESPACE,
# the kernel forbids them: remove the lines from NoNewPrivileges= to ReadWritePaths=.
NoNewPrivileges=yes
{private_tmp}ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={" ".join(writable)}
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

# The vault. By default its key is in your keyring (Secret Service over the session
# D-Bus, which the user manager passes on), so no secret is written here. On a server
# without a keyring, choose the passphrase fallback in config.toml
# ([vault] backend = "passphrase"), keep the passphrase in a file only you can read,
# and hand it over as a systemd credential (clientlinkd reads
# $CREDENTIALS_DIRECTORY/clientlink-vault): uncomment and adjust this line.
#LoadCredential=clientlink-vault:%h/.config/clientlink/vault-passphrase

[Install]
WantedBy=default.target
Also={SOCKET_UNIT}
"""
    return {SOCKET_UNIT: socket_unit, SERVICE_UNIT: service_unit}


def _service_paths(home: str | None) -> Paths:
    """The paths the service will use: ``home``'s, else the XDG ones (ignoring
    ``$CLIENTLINK_HOME``, which the caller has already turned into ``home``)."""
    if home:
        return resolve_paths(home)
    saved = os.environ.pop(HOME_ENV, None)
    try:
        return resolve_paths(None)
    finally:
        if saved is not None:
            os.environ[HOME_ENV] = saved


def _under_tmp(folder: Path) -> bool:
    return any(folder.is_relative_to(tmp) for tmp in (Path("/tmp"), Path("/var/tmp")))


def _escape_specifiers(text: str) -> str:
    return text.replace("%", "%%")


def _path_word(path: Path) -> str:
    """One path in a space-separated list setting (ReadWritePaths=)."""
    return _quoted(_escape_specifiers(str(path)))


def _exec_word(arg: str) -> str:
    """One argument of ExecStart=, with specifiers and variables escaped."""
    return _quoted(_escape_specifiers(arg).replace("$", "$$"))


def _quoted(word: str) -> str:
    """``word`` as systemd reads one word: bare when plain, else in double quotes."""
    if _PLAIN_WORD.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------- systemctl


class UserManager:
    """``systemctl --user`` and ``loginctl``, or why they cannot be used here."""

    def __init__(self) -> None:
        self.systemctl = shutil.which("systemctl")
        self.loginctl = shutil.which("loginctl")
        self.problem: str | None = None
        if self.systemctl is None:
            self.problem = "systemctl is not installed"
        else:
            probe = self.run("show-environment")
            if probe.returncode != 0:
                self.problem = _one_line(probe.stderr) or "systemctl --user failed"

    @property
    def reachable(self) -> bool:
        return self.problem is None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``systemctl --user ARGS``; never raises for a failing command."""
        assert self.systemctl is not None
        return _run([self.systemctl, "--user", *args])

    def linger(self) -> str:
        """``yes``/``no`` for this user's lingering, or why it is unknown."""
        if self.loginctl is None:
            return "unknown (loginctl is not installed)"
        result = _run([self.loginctl, "show-user", getpass.getuser(), "-p", "Linger", "--value"])
        if result.returncode != 0:
            return f"unknown ({_one_line(result.stderr) or 'loginctl failed'})"
        return result.stdout.strip() or "unknown"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=_SYSTEMCTL_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 1, "", str(exc))


def _start_commands() -> list[str]:
    return [
        "systemctl --user daemon-reload",
        f"systemctl --user enable --now {SOCKET_UNIT} {SERVICE_UNIT}",
    ]


def _linger_advice() -> str:
    user = getpass.getuser()
    return (
        "If you reach this machine only over SSH: without lingering, systemd stops your user\n"
        "services when your last session ends, and clientlinkd would stop watching. Keep it\n"
        f"running with:\n    loginctl enable-linger {user}\n(or `sudo loginctl enable-linger "
        f"{user}` where you may not change it yourself)."
    )


# ---------------------------------------------------------------------- the actions


def install(home: str | None, *, start: bool = True) -> int:
    """Write the units; enable and start them when a user manager is reachable."""
    paths = _service_paths(home)
    # ReadWritePaths= folders must exist when the service starts (systemd refuses it else).
    for folder in (paths.config_dir, paths.data_dir, paths.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    target = unit_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_units(daemon_command(home), home).items():
        (target / name).write_text(text, encoding="utf-8")
        print(f"wrote {target / name}")
    if not start:
        print("Not started (--no-start). To start it:")
        print("\n".join(f"    {command}" for command in _start_commands()))
        return 0
    manager = UserManager()
    if not manager.reachable:
        print(
            f"systemctl --user cannot reach your user manager ({manager.problem}).\n"
            "This is common over SSH as root, in a container, or after `su`/`sudo -u` (use\n"
            "`machinectl shell USER@` instead). Log in as the user who will run clientlink (a\n"
            "login session starts `systemd --user`), then run:\n"
            + "\n".join(f"    {command}" for command in _start_commands())
            + "\n"
            + _linger_advice(),
            file=sys.stderr,
        )
        return 0
    for args in (("daemon-reload",), ("enable", "--now", SOCKET_UNIT, SERVICE_UNIT)):
        result = manager.run(*args)
        if result.returncode != 0:
            print(
                f"`systemctl --user {' '.join(args)}` failed: {result.stderr.strip()}\n"
                f"See `journalctl --user -u {SERVICE_UNIT}`.",
                file=sys.stderr,
            )
            return EXIT_ERROR
    print(f"enabled and started {SOCKET_UNIT} and {SERVICE_UNIT}")
    if manager.linger() != "yes":
        print(_linger_advice())
    return 0


def uninstall() -> int:
    """Stop and disable the service (best effort), remove the unit files."""
    manager = UserManager()
    if manager.reachable:
        manager.run("disable", "--now", SERVICE_UNIT, SOCKET_UNIT)
    target = unit_dir()
    removed = False
    for name in UNITS:
        path = target / name
        if path.exists():
            path.unlink()
            removed = True
            print(f"removed {path}")
    if manager.reachable:
        manager.run("daemon-reload")
    if not removed:
        print(f"nothing to remove: no clientlink units in {target}")
    return 0


def status(home: str | None, *, as_json: bool = False) -> int:
    """Report the units, the user manager's view, lingering and whether the daemon answers."""
    paths = _service_paths(home)
    manager = UserManager()
    report: dict[str, Any] = {
        "unit_files": {name: (unit_dir() / name).exists() for name in UNITS},
        "user_manager": manager.problem or "reachable",
        "units": {},
        "linger": manager.linger(),
        "socket": str(paths.socket),
    }
    if manager.reachable:
        for name in UNITS:
            report["units"][name] = {
                query: manager.run(query, name).stdout.strip() or "unknown"
                for query in ("is-active", "is-enabled")
            }
    report["daemon"] = asyncio.run(_daemon_answer(paths))
    running = report["daemon"]["answers"]
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(_status_text(report))
    return 0 if running else EXIT_NOT_RUNNING


async def _daemon_answer(paths: Paths) -> dict[str, Any]:
    try:
        async with asyncio.timeout(10), DaemonClient(paths.socket, client_name="cli") as daemon:
            answer = await daemon.call(p.DAEMON_STATUS)
    except (DaemonUnavailable, RpcError, TimeoutError, OSError) as exc:
        return {"answers": False, "problem": str(exc) or type(exc).__name__}
    return {
        "answers": True,
        "version": answer.version,
        "clients": sum(answer.clients_by_status.values()),
    }


def _status_text(report: dict[str, Any]) -> str:
    lines = []
    for name, present in report["unit_files"].items():
        lines.append(f"{name}: {'installed' if present else 'not installed'} in {unit_dir()}")
    if report["units"]:
        for name, state in report["units"].items():
            lines.append(f"{name}: {state['is-active']}, {state['is-enabled']}")
    else:
        lines.append(f"systemd --user: not reachable ({report['user_manager']})")
    lines.append(f"linger: {report['linger']}")
    daemon = report["daemon"]
    if daemon["answers"]:
        lines.append(
            f"clientlinkd {daemon['version']}: answering on {report['socket']}, "
            f"watching {plural(daemon['clients'], 'client')}"
        )
    else:
        lines.append(f"clientlinkd: not answering ({daemon['problem']})")
    return "\n".join(lines)
