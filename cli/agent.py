"""``clientlink agent``: the practice's alerts as desktop notifications in your own session.

A firm-mode clientlinkd is a system service: it has no desktop session, so it cannot show
anyone a notification. Each staff member runs this small agent in their own session (a
systemd user service: ``clientlink agent install``). It connects to the daemon over the
firm's socket as that person, subscribes to the daemon's notifications and raises them on
the person's own session bus, for their own connections (the clients resting on a sign-in
they made: ``agent = "mine"``, the default) or for every client (``"all"``), as their
preferences say (``clientlink rpc staff.set_preferences '{"agent": "all"}'``). Preferences
are read again for each notification, so a change applies at once.

The agent keeps going: when the daemon restarts it reconnects (waiting a little longer each
time, up to half a minute), and a desktop that cannot show a notice is reported on stderr
(the journal) and the next one is tried. Client names come from outside and reach the
notification only through the desktop channel's safe text (:mod:`clientlink.common.desktop`).

In single-user mode the daemon runs in your own session and shows its notifications
itself, so the agent says so and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.client import (
    DaemonClient,
    DaemonImpostor,
    DaemonUnavailable,
    Resync,
    RpcError,
)
from clientlink.common.desktop import DesktopNotifications, DesktopUnavailable
from clientlink.common.paths import HOME_ENV
from clientlink.common.safe_text import visible
from clientlink.common.wording import status_notice

AGENT_UNIT = "clientlink-agent.service"
FIRST_RETRY_SECONDS = 1.0
LONGEST_RETRY_SECONDS = 30.0
SINGLE_USER = (
    "this clientlinkd serves only you (single-user mode) and shows its desktop "
    "notifications itself; the agent is for the staff of a firm-mode daemon"
)
BAD = {"needs_reauth", "expiring", "error"}


def configure_agent_parser(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``clientlink agent [install|uninstall]``."""
    parser.description = (
        "Run in your own session: raise clientlinkd's notifications about your "
        "connections (or all, as staff.set_preferences says) on your desktop."
    )
    commands = parser.add_subparsers(dest="agent_command", metavar="ACTION")
    install = commands.add_parser("install", help="write the systemd user unit and start it")
    install.add_argument("--no-start", action="store_true", help="only write the unit file")
    commands.add_parser("uninstall", help="stop the agent and remove its unit file")


def run_agent_command(args: argparse.Namespace, socket_path: Path) -> int:
    """Carry out ``clientlink agent [ACTION]``."""
    if args.agent_command == "install":
        return install(args.home or os.environ.get(HOME_ENV), start=not args.no_start)
    if args.agent_command == "uninstall":
        return uninstall()
    agent = Agent(socket_path)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(agent.run())
    return 0


class Agent:
    """One staff member's relay from the daemon's notifications to their desktop."""

    def __init__(
        self,
        socket_path: Path,
        desktop: DesktopNotifications | None = None,
        *,
        out: Any = None,
    ) -> None:
        self.socket_path = socket_path
        self._desktop = desktop
        self._out = out or sys.stderr
        self.shown = 0

    def say(self, text: str) -> None:
        print(f"clientlink agent: {text}", file=self._out, flush=True)

    async def run(self) -> int:
        """Serve until stopped; returns an exit code when it cannot serve at all."""
        desktop = self._desktop or DesktopNotifications()
        delay = FIRST_RETRY_SECONDS
        told_waiting = False
        try:
            while True:
                try:
                    async with DaemonClient(self.socket_path, client_name="agent") as daemon:
                        told_waiting = False
                        delay = FIRST_RETRY_SECONDS
                        code = await self._serve(daemon, desktop)
                        if code is not None:
                            return code
                except DaemonImpostor as exc:
                    self.say(str(exc))
                    return 2
                except DaemonUnavailable as exc:
                    if not told_waiting:
                        self.say(f"{exc}; trying again")
                        told_waiting = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, LONGEST_RETRY_SECONDS)
        finally:
            await desktop.close()

    async def _serve(self, daemon: DaemonClient, desktop: DesktopNotifications) -> int | None:
        """Relay until the connection ends (None: reconnect) or the agent has no work."""
        try:
            me = await daemon.call(p.STAFF_PREFERENCES)
        except RpcError as exc:
            self.say(f"the daemon refused: {exc.message}")
            return 2
        if not me.firm:
            self.say(SINGLE_USER)
            return 0
        await daemon.subscribe([p.Topic.NOTIFICATION.value])
        self.say(
            f"watching {self.socket_path} for {visible(me.login)} "
            f"({'my connections' if me.preferences.agent == 'mine' else 'all connections'})"
        )
        async for update in daemon.updates():
            if isinstance(update, Resync) or not isinstance(update, p.NotificationEvent):
                continue
            try:
                await self._relay(daemon, desktop, update)
            except RpcError as exc:
                self.say(f"notification {update.id} skipped: {exc.message}")
        return None

    async def _relay(
        self, daemon: DaemonClient, desktop: DesktopNotifications, event: p.NotificationEvent
    ) -> None:
        me = await daemon.call(p.STAFF_PREFERENCES)
        title, body = event.title, event.body
        if me.preferences.agent == "mine":
            mine = await self._my_clients(daemon, event.client_ids, me.login)
            if not mine:
                return
            if len(mine) < len(event.client_ids):
                title, body = _my_part(mine)
        urgency = "critical" if event.kind == p.NotificationKind.ERROR else "normal"
        try:
            await desktop.send(title, body, urgency=urgency)
        except DesktopUnavailable as exc:
            self.say(f"notification {event.id} not shown: {exc}")
            return
        self.shown += 1

    async def _my_clients(
        self, daemon: DaemonClient, client_ids: Sequence[int], login: str
    ) -> list[p.Client]:
        mine = []
        for client_id in client_ids:
            try:
                client = await daemon.call(p.CLIENTS_GET, client_id=client_id)
            except RpcError as exc:
                if exc.error_code == p.ErrorCode.NOT_FOUND:
                    continue  # gone since
                raise
            if client.authorised_by == login:
                mine.append(client)
        return mine


def _my_part(clients: list[p.Client]) -> tuple[str, str]:
    """The notice for my share of a notification that named colleagues' clients too."""
    bad = [c for c in clients if c.status.value in BAD] or clients
    status = bad[0].status.value
    same = [c for c in bad if c.status.value == status]
    named = [(c.name, c.status_reason) for c in same]
    return status_notice(status, named, digest=len(named) > 1)


# ---------------------------------------------------------------------- the unit


def agent_command(home: str | None = None) -> list[str]:
    """How systemd starts the agent from this installation (absolute paths)."""
    script = Path(sys.executable).parent / "clientlink"
    command = (
        [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "clientlink.cli"]
    )
    if home:
        command += ["--home", str(Path(home).expanduser().resolve())]
    return [*command, "agent"]


def render_unit(command: Sequence[str]) -> str:
    """The text of ``clientlink-agent.service``."""
    from clientlink.cli.service_install import _exec_word

    return f"""\
# Written by `clientlink agent install`; `clientlink agent uninstall` removes it.
# Relays the practice's clientlinkd notifications to this user's desktop session.
[Unit]
Description=clientlink agent: the practice's alerts on your desktop
After=default.target

[Service]
Type=exec
ExecStart={" ".join(_exec_word(arg) for arg in command)}
# It reconnects by itself when clientlinkd restarts; this covers the agent itself.
Restart=on-failure
RestartSec=10
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes

[Install]
WantedBy=default.target
"""


def install(home: str | None, *, start: bool = True) -> int:
    """Write the agent's user unit; enable and start it when a user manager is reachable."""
    from clientlink.cli.service_install import UserManager, unit_dir

    target = unit_dir()
    target.mkdir(parents=True, exist_ok=True)
    path = target / AGENT_UNIT
    path.write_text(render_unit(agent_command(home)), encoding="utf-8")
    print(f"wrote {path}")
    commands = ["systemctl --user daemon-reload", f"systemctl --user enable --now {AGENT_UNIT}"]
    if not start:
        print("Not started (--no-start). To start it:\n" + "\n".join(f"    {c}" for c in commands))
        return 0
    manager = UserManager()
    if not manager.reachable:
        print(
            f"systemctl --user cannot reach your user manager ({manager.problem}). Log in to "
            "your desktop session and run:\n" + "\n".join(f"    {c}" for c in commands),
            file=sys.stderr,
        )
        return 0
    for args in (("daemon-reload",), ("enable", "--now", AGENT_UNIT)):
        result = manager.run(*args)
        if result.returncode != 0:
            print(
                f"`systemctl --user {' '.join(args)}` failed: {result.stderr.strip()}\n"
                f"See `journalctl --user -u {AGENT_UNIT}`.",
                file=sys.stderr,
            )
            return 2
    print(f"enabled and started {AGENT_UNIT}")
    return 0


def uninstall() -> int:
    from clientlink.cli.service_install import UserManager, unit_dir

    manager = UserManager()
    if manager.reachable:
        manager.run("disable", "--now", AGENT_UNIT)
    path = unit_dir() / AGENT_UNIT
    if path.exists():
        path.unlink()
        print(f"removed {path}")
        if manager.reachable:
            manager.run("daemon-reload")
    else:
        print(f"{AGENT_UNIT} was not installed")
    return 0
