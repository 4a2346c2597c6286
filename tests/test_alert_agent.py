"""``clientlink agent`` as a real staff member: cltest_sam's agent, running as cltest_sam
against a firm-mode clientlinkd (run as its service account, tests/firm.py), raises the
daemon's notifications on a private D-Bus session of its own, for Sam's connections only
under "mine" (cltest_alex's are ignored), for all once Sam chooses so, through a daemon
restart, and with a hostile client name shown as harmless text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clientlink.cli.agent import AGENT_UNIT, agent_command
from clientlink.cli.service_install import _exec_word
from clientlink.common import protocol as p
from clientlink.common.paths import SOCKET_ENV
from clientlink.sandbox.approve import approve
from tests.dbus_session import NotificationServer, start_dbus_daemon
from tests.firm import ADMIN, STAFF_MEMBER, FirmDaemon, FirmFactory, as_user
from tests.helpers import sandbox_get, sandbox_post, wait_until

pytestmark = pytest.mark.timeout(240)

HOSTILE = "Evil \x1b]0;owned\x07\u202e <b>Sam's</b> & Co"


@pytest.fixture
async def sams_session() -> AsyncIterator[NotificationServer]:
    """Sam's own session bus, and a desktop notification server on it."""
    folder = Path(tempfile.mkdtemp(prefix="cl-sam-"))
    process, address = start_dbus_daemon(folder, also_users=(STAFF_MEMBER,))
    server = NotificationServer(address)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        process.kill()
        process.communicate()
        shutil.rmtree(folder, ignore_errors=True)


class AgentProcess:
    """``clientlink agent`` as a user, with what it says on stderr."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def says(self, text: str, *, after: int = 0, within: float = 60) -> int:
        """Wait until a line from ``after`` on contains ``text``; returns the next index."""
        assert self.process.stderr is not None
        async with asyncio.timeout(within):
            while True:
                for index in range(after, len(self.lines)):
                    if text in self.lines[index]:
                        return index + 1
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError(f"the agent ended: {self.lines}")
                self.lines.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def agent_as(login: str, firm: FirmDaemon, bus: str) -> AsyncIterator[AgentProcess]:
    process = await asyncio.create_subprocess_exec(
        *as_user(login), sys.executable, "-m", "clientlink.cli", "agent",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/nonexistent",
            "PYTHONDONTWRITEBYTECODE": "1",
            SOCKET_ENV: str(firm.socket),
            "DBUS_SESSION_BUS_ADDRESS": bus,
        },
    )  # fmt: skip
    try:
        yield AgentProcess(process)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def sign_in_as(firm: FirmDaemon, login: str, client: dict[str, Any]) -> None:
    """``login`` re-authorises one client: it then rests on their own sign-in."""
    session = await firm.call(
        login, p.AUTH_BEGIN, {"provider": client["provider"], "client_id": client["id"]}
    )
    redirect = await approve(session["authorize_url"], orgs=[client["tenant_id"]])
    await firm.call(
        login, p.AUTH_COMPLETE, {"session_id": session["session_id"], "redirect_url": redirect}
    )
    again = await firm.call(login, p.CLIENTS_GET, {"client_id": client["id"]})
    assert (again["authorised_by"], again["status"]) == (login, "connected")


async def revoke_sign_in(firm: FirmDaemon, login: str, client: dict[str, Any]) -> None:
    """The provider user revokes ``login``'s sign-in; a check finds the client failing."""
    base = firm.sandbox.base_url
    grants = [
        g
        for g in await sandbox_get(base, "/_sandbox/grants")
        if client["tenant_id"] in g["tenant_ids"] and not g["revoked"]
    ]
    newest = max(grants, key=lambda g: g["created_at"])
    await sandbox_post(base, f"/_sandbox/grants/{newest['grant_id']}/revoke")
    await firm.call(login, p.CLIENTS_REFRESH, {"client_id": client["id"], "force": True})
    broken = await firm.call(login, p.CLIENTS_GET, {"client_id": client["id"]})
    assert broken["status"] == "needs_reauth"


async def rename_at_the_provider(firm: FirmDaemon, login: str, client: dict[str, Any]) -> str:
    """The business renames itself; a re-import, applied, brings the name in."""
    base = firm.sandbox.base_url
    await sandbox_post(base, f"/_sandbox/orgs/{client['tenant_id']}", {"name": HOSTILE})
    job = await firm.call(login, p.JOBS_START, {"kind": "reimport", "client_ids": [client["id"]]})

    async def done() -> bool:
        state = (await firm.call(login, p.JOBS_GET, {"job_id": job["job_id"]}))["state"]
        return state in ("completed", "failed", "cancelled")

    await wait_until(done, within=60, what="the re-import")
    await firm.call(login, p.CLIENTS_APPLY_REIMPORT, {"job_id": job["job_id"]})
    renamed = await firm.call(login, p.CLIENTS_GET, {"client_id": client["id"]})
    assert renamed["name"] == HOSTILE
    return HOSTILE


async def test_sams_agent_shows_sams_connections_then_all_and_survives_a_restart(
    make_firm: FirmFactory, sams_session: NotificationServer
) -> None:
    # No gathering: each failure is its own notification at once (the daemon's clock is
    # its own process's).
    firm = await make_firm(practice=True, config="\n[notifications]\ndigest_window_seconds = 0\n")
    listed = await firm.call(ADMIN, p.CLIENTS_LIST, {"filter": {"provider": "xero"}, "limit": 1000})
    xero = [c for c in listed["items"] if c["status"] == "connected"]
    sams, alex_first, alex_second, alex_third = xero[:4]
    await sign_in_as(firm, STAFF_MEMBER, sams)
    for client in (alex_first, alex_second, alex_third):
        await sign_in_as(firm, ADMIN, client)
    hostile = await rename_at_the_provider(firm, STAFF_MEMBER, sams)

    async with agent_as(STAFF_MEMBER, firm, sams_session.address) as agent:
        seen = await agent.says(f"for {STAFF_MEMBER} (my connections)")
        await revoke_sign_in(firm, ADMIN, alex_first)  # Alex's: not Sam's to hear about
        await revoke_sign_in(firm, STAFF_MEMBER, sams)
        [shown] = await sams_session.wait_for(1, timeout=30)
        assert shown.app_name == "clientlink"
        assert shown.summary == "Re-authorise Evil ␛]0;owned␇\ufffd <b>Sam's</b> & Co"
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown.summary)
        assert hostile not in shown.summary
        assert alex_first["name"] not in shown.summary + shown.body

        changed = await firm.call(STAFF_MEMBER, p.STAFF_SET_PREFERENCES, {"agent": "all"})
        assert changed["preferences"]["agent"] == "all"
        await revoke_sign_in(firm, ADMIN, alex_second)
        await sams_session.wait_for(2, timeout=30)
        assert sams_session.notifications[1].summary == f"Re-authorise {alex_second['name']}"

        await firm.stop()
        await firm.start()
        await agent.says(f"for {STAFF_MEMBER} (all connections)", after=seen)
        await revoke_sign_in(firm, ADMIN, alex_third)
        await sams_session.wait_for(3, timeout=30)
        assert sams_session.notifications[2].summary == f"Re-authorise {alex_third['name']}"
        assert len(sams_session.notifications) == 3
        assert agent.process.returncode is None  # never crashed


def test_agent_install_writes_a_user_unit_systemd_accepts_and_uninstall_removes_it(
    short_tmp: Path,
) -> None:
    from tests.test_systemd import systemd_analyze_verify

    env = {**os.environ, "XDG_CONFIG_HOME": str(short_tmp / "config")}
    home = short_tmp / "home with space"

    def clientlink(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clientlink.cli", *args],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    installed = clientlink("--home", str(home), "agent", "install", "--no-start")
    assert installed.returncode == 0, installed.stderr
    unit = short_tmp / "config" / "systemd" / "user" / AGENT_UNIT
    text = unit.read_text(encoding="utf-8")
    command = " ".join(_exec_word(arg) for arg in agent_command(str(home)))
    assert f"ExecStart={command}" in text.splitlines()
    assert command.endswith(" agent") and '"' in command  # the space is quoted
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert "systemctl --user enable --now clientlink-agent.service" in installed.stdout
    verified = systemd_analyze_verify(short_tmp, unit)
    assert verified.returncode == 0, verified.stderr
    assert "clientlink-agent" not in verified.stdout + verified.stderr, verified.stderr

    removed = clientlink("agent", "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists()


async def test_in_single_user_mode_the_agent_leaves_the_desktop_to_the_daemon(daemon) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clientlink.cli", "--home", str(daemon.paths.config_dir.parent),
        "agent", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    assert "single-user mode" in err.decode() and "shows its desktop notifications" in err.decode()
