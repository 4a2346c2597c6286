"""A private D-Bus session and a notification server to test desktop notifications against.

A pytest plugin: ``pytest_plugins = ["tests.dbus_session"]`` in ``tests/conftest.py``
gives every test the ``dbus_session`` and ``notification_server`` fixtures.

``dbus_session`` starts a real ``dbus-daemon`` listening in a temporary folder (no service
activation, so nothing installed on the machine can answer in place of the test server)
and points ``DBUS_SESSION_BUS_ADDRESS`` at it for the test. ``notification_server`` runs an
``org.freedesktop.Notifications`` server in the test's event loop that records what it is
asked to do and can press a notification's buttons.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusInt32, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

NOTIFICATIONS_BUS_NAME = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
CLOSED_BY_CALL = 3  # NotificationClosed reason: closed by a call to CloseNotification

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">{users}
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusHints = Annotated[dict[str, Variant], DBusSignature("a{sv}")]


@dataclass(frozen=True)
class NotifyCall:
    """One Notify call, with the hints' variants unwrapped to plain values."""

    id: int
    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, Any]
    expire_timeout: int

    @property
    def action_titles(self) -> dict[str, str]:
        """The actions as ``{key: title}`` (the wire form is a flat key, title list)."""
        return dict(zip(self.actions[::2], self.actions[1::2], strict=True))


@dataclass(frozen=True)
class CloseCall:
    """One CloseNotification call; ``was_open`` is False when the id was not showing."""

    id: int
    was_open: bool


RecordedCall = NotifyCall | CloseCall


class _NotificationsInterface(ServiceInterface):
    def __init__(self, server: NotificationServer) -> None:
        super().__init__(NOTIFICATIONS_BUS_NAME)
        self._server = server

    @dbus_method(name="Notify")
    async def notify(
        self,
        app_name: DBusStr,
        replaces_id: DBusUInt32,
        app_icon: DBusStr,
        summary: DBusStr,
        body: DBusStr,
        actions: DBusStrList,
        hints: DBusHints,
        expire_timeout: DBusInt32,
    ) -> DBusUInt32:
        await self._server._answering.wait()
        notification_id = replaces_id or next(self._server._ids)
        self._server._record(
            NotifyCall(
                id=notification_id,
                app_name=app_name,
                replaces_id=replaces_id,
                app_icon=app_icon,
                summary=summary,
                body=body,
                actions=list(actions),
                hints={key: variant.value for key, variant in hints.items()},
                expire_timeout=expire_timeout,
            )
        )
        self._server.showing.add(notification_id)
        return notification_id

    @dbus_method(name="CloseNotification")
    def close_notification(self, notification_id: DBusUInt32):  # no reply body: no annotation
        was_open = notification_id in self._server.showing
        self._server._record(CloseCall(id=notification_id, was_open=was_open))
        if not was_open:
            # What the specification asks for when the notification no longer exists.
            raise DBusError("org.freedesktop.DBus.Error.Failed", "no such notification")
        self._server.showing.discard(notification_id)
        self.notification_closed(notification_id, CLOSED_BY_CALL)

    @dbus_method(name="GetCapabilities")
    def get_capabilities(self) -> DBusStrList:
        return list(self._server.capabilities)

    @dbus_method(name="GetServerInformation")
    def get_server_information(
        self,
    ) -> Annotated[tuple[str, str, str, str], DBusSignature("ssss")]:
        return ("clientlink-test-server", "clientlink", "1.0", "1.2")

    @dbus_signal(name="NotificationClosed")
    def notification_closed(
        self, notification_id: int, reason: int
    ) -> Annotated[tuple[int, int], DBusSignature("uu")]:
        return (notification_id, reason)

    @dbus_signal(name="ActionInvoked")
    def action_invoked(
        self, notification_id: int, action_key: str
    ) -> Annotated[tuple[int, str], DBusSignature("us")]:
        return (notification_id, action_key)


class NotificationServer:
    """A desktop's notification server, on the private session bus, recording its calls."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.calls: list[RecordedCall] = []
        # What GetCapabilities answers; a test adds "body-markup" to play a server that
        # reads the body's HTML subset, as most desktops' servers do.
        self.capabilities: list[str] = ["actions", "body"]
        self.showing: set[int] = set()
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._answering = asyncio.Event()
        self._answering.set()
        self._interface = _NotificationsInterface(self)
        self._bus: MessageBus | None = None

    @property
    def notifications(self) -> list[NotifyCall]:
        """The Notify calls, oldest first."""
        return [call for call in self.calls if isinstance(call, NotifyCall)]

    @property
    def closes(self) -> list[CloseCall]:
        """The CloseNotification calls, oldest first."""
        return [call for call in self.calls if isinstance(call, CloseCall)]

    async def start(self) -> None:
        """Connect and own ``org.freedesktop.Notifications``."""
        self._bus = await MessageBus(bus_address=self.address).connect()
        self._bus.export(NOTIFICATIONS_PATH, self._interface)
        await self._bus.request_name(NOTIFICATIONS_BUS_NAME)

    async def stop(self) -> None:
        """Disconnect, which gives up the name: the desktop's server has gone away."""
        if self._bus is not None:
            self._bus.disconnect()
            # Raises when the bus itself went away first, which some tests arrange.
            with contextlib.suppress(Exception):
                await self._bus.wait_for_disconnect()
            self._bus = None

    def stop_answering(self) -> None:
        """Leave Notify calls unanswered, like a server that hangs, until resumed."""
        self._answering.clear()

    def resume_answering(self) -> None:
        """Answer Notify calls again, including those left waiting."""
        self._answering.set()

    def invoke_action(self, notification_id: int, action_key: str) -> None:
        """Press a button (or, with key ``"default"``, click the notification)."""
        self._interface.action_invoked(notification_id, action_key)

    # A built-in timeout so that a test whose notification never arrives fails, not hangs.
    async def wait_for(self, count: int, timeout: float = 2.0) -> list[RecordedCall]:  # noqa: ASYNC109
        """Wait until at least ``count`` Notify/CloseNotification calls were recorded."""
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.calls)

    def _record(self, call: RecordedCall) -> None:
        self.calls.append(call)
        self._changed.set()


def start_dbus_daemon(
    folder: Path, also_users: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], str]:
    """Start a private session bus listening in ``folder``; return it and its address.

    A session bus admits only its own user; ``also_users`` (logins) may connect too, and
    then ``folder`` is opened for them to reach the socket: a staff member's own session,
    which the test's notification server joins.

    Fails the test, naming the Debian package, when dbus-daemon is not installed.
    """
    executable = shutil.which("dbus-daemon")
    if executable is None:
        pytest.fail(
            "dbus-daemon is not installed: desktop-notification tests need a private "
            "D-Bus session (Debian package: dbus-daemon)",
            pytrace=False,
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "session.conf"
    users = "".join(
        f'\n    <allow user="{login}"/>'
        for login in (pwd.getpwuid(os.getuid()).pw_name, *also_users)
    )
    config.write_text(_BUS_CONFIG.format(socket=folder / "bus", users=users if also_users else ""))
    if also_users:
        folder.chmod(0o755)
    process = subprocess.Popen(
        [executable, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    address = process.stdout.readline().strip()
    if not address:
        process.kill()
        _, errors = process.communicate()
        pytest.fail(f"dbus-daemon did not start: {errors.strip()}", pytrace=False)
    return process, address


@pytest.fixture
def dbus_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The address of a private session bus, also set as DBUS_SESSION_BUS_ADDRESS."""
    # Short folder: Unix socket paths must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="cl-dbus-"))
    try:
        process, address = start_dbus_daemon(folder)
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        try:
            yield address
        finally:
            process.kill()
            process.communicate()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def notification_server(dbus_session: str) -> AsyncIterator[NotificationServer]:
    """A running notification server owning org.freedesktop.Notifications on the bus."""
    server = NotificationServer(dbus_session)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
