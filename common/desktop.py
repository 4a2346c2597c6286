"""Desktop notifications over the session bus (``org.freedesktop.Notifications``).

Built on desktop-notifier, which shows the notification and routes clicks back to us, but
which on its own never reports a failed send (it logs a warning and returns an identifier
anyway), puts no time limit on a D-Bus round trip and never closes its bus connection.
This module adds those three things, so the daemon learns *why* no desktop can show a
notice instead of hanging or silently dropping it.

Identifiers returned by :meth:`DesktopNotifications.send` live as long as this object:
they are not meaningful to another process or after a restart.

Shared by the daemon (single-user mode: its own session is the person's) and by
``clientlink agent`` (firm mode: each staff member's agent raises notices in their own
session), so it lives in ``common/``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from desktop_notifier import Button, DesktopNotifier, Notification, Urgency

from clientlink.common.safe_text import visible

log = logging.getLogger(__name__)

OPEN_ACTION_TITLE = "Open clientlink"
OPEN_ACTION_KEY = "open-clientlink"
NOTIFICATIONS_BUS_NAME = "org.freedesktop.Notifications"
DEFAULT_OPEN_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("x-terminal-emulator", "-e", "clientlink"),
    ("xdg-terminal-exec", "clientlink"),
)

NO_SESSION_BUS = "no session bus"
NO_NOTIFICATION_SERVER = "no notification server"
BUS_NOT_ANSWERING = "session bus not answering"
SERVER_NOT_ANSWERING = "notification server not answering"
SERVER_REJECTED = "notification server rejected the notification"

_URGENCIES = {"low": Urgency.Low, "normal": Urgency.Normal, "critical": Urgency.Critical}


class DesktopUnavailable(Exception):
    """No desktop can show notifications right now; ``str()`` is a short reason."""


class DesktopNotifications:
    """Shows, and withdraws, clientlink's notifications on the person's desktop.

    Safe to construct anywhere: nothing touches D-Bus until :meth:`probe`, :meth:`send`
    or :meth:`withdraw`. Use one instance from one event loop (the D-Bus connections
    belong to the loop that made them).
    """

    def __init__(
        self,
        *,
        app_name: str = "clientlink",
        timeout: float = 5.0,
        open_command: list[str] | None = None,
    ) -> None:
        self._app_name = app_name
        self._timeout = timeout
        self._open_command = list(open_command) if open_command else None
        self._notifier = self._new_notifier()
        self._probe_bus: MessageBus | None = None
        self._open_tasks: set[asyncio.Task[None]] = set()
        self._disconnect_waiters: set[asyncio.Task[None]] = set()
        # One D-Bus conversation at a time: desktop-notifier connects lazily, and two
        # first sends at once would each open (and one would leak) a connection.
        self._lock = asyncio.Lock()

    async def probe(self) -> str | None:
        """None when notifications can be shown, else the reason they cannot."""
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._probe()
            except TimeoutError:
                self._drop_probe_bus()
                return BUS_NOT_ANSWERING

    async def send(
        self, title: str, body: str, *, urgency: str = "normal", open_action: bool = True
    ) -> str:
        """Show a notification and return the identifier :meth:`withdraw` takes.

        Raises DesktopUnavailable when it could not be shown; returns or raises within
        ``timeout`` seconds of its turn (calls on one instance take turns).

        ``title`` and ``body`` hold text from outside (client names, providers' reasons):
        control and bidi characters are made visible, and for a server that reads markup in
        the body (the specification's "body-markup" capability) ``&``, ``<`` and ``>`` are
        escaped, so a client named ``<a href=...>`` shows those characters, not a link.
        """
        if urgency not in _URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(_URGENCIES)}, not {urgency!r}")
        dispatched = asyncio.Event()
        open_clientlink = self._open_clientlink if open_action else None
        open_button = Button(
            OPEN_ACTION_TITLE, on_pressed=open_clientlink, identifier=OPEN_ACTION_KEY
        )
        async with self._lock:
            failure = BUS_NOT_ANSWERING
            try:
                async with asyncio.timeout(self._timeout):
                    await self._require_desktop()
                    failure = SERVER_NOT_ANSWERING
                    shown_body = visible(body)
                    if await self._server_reads_markup():
                        shown_body = escape_markup(shown_body)
                    notification = Notification(
                        title=visible(title),
                        message=shown_body,
                        urgency=_URGENCIES[urgency],
                        buttons=(open_button,) if open_action else (),
                        on_clicked=open_clientlink,
                        on_dispatched=dispatched.set,
                    )
                    await self._notifier.send_notification(notification)
                    if not dispatched.is_set():
                        # desktop-notifier logged the cause and carried on; find a reason
                        # a person can act on.
                        self._restart_notifier_if_disconnected()
                        failure = await self._probe() or SERVER_REJECTED
            except TimeoutError:
                self._restart_notifier()
                raise DesktopUnavailable(failure) from None
        if not dispatched.is_set():
            raise DesktopUnavailable(failure)
        return notification.identifier

    async def withdraw(self, identifier: str) -> None:
        """Close a notification shown by :meth:`send`; quietly done if it is already gone.

        Raises DesktopUnavailable when it may still be showing but cannot be closed.
        """
        async with self._lock:
            if not await self._is_showing(identifier):
                return
            failure = BUS_NOT_ANSWERING
            try:
                async with asyncio.timeout(self._timeout):
                    await self._require_desktop()
                    if not await self._is_showing(identifier):
                        return
                    failure = SERVER_NOT_ANSWERING
                    # desktop-notifier swallows the server's "already closed" answer.
                    await self._notifier.clear(identifier)
            except TimeoutError:
                self._restart_notifier()
                raise DesktopUnavailable(failure) from None
            except DesktopUnavailable:
                raise
            except Exception as error:
                self._restart_notifier_if_disconnected()
                raise DesktopUnavailable(failure) from error

    async def replace(
        self,
        identifier: str,
        title: str,
        body: str,
        *,
        urgency: str = "normal",
        open_action: bool = True,
    ) -> str:
        """Show ``title`` and ``body`` in place of the notification ``identifier`` (closed
        first, so the old text never stays beside the new); returns the new identifier.

        Raises DesktopUnavailable as :meth:`withdraw` and :meth:`send` do: when the old one
        cannot be closed, nothing new is shown.
        """
        await self.withdraw(identifier)
        return await self.send(title, body, urgency=urgency, open_action=open_action)

    async def close(self) -> None:
        """Disconnect from the session bus; open commands already started keep running."""
        for task in self._open_tasks:
            task.cancel()
        await asyncio.gather(*self._open_tasks, return_exceptions=True)
        async with self._lock:
            self._restart_notifier()
            self._drop_probe_bus()
        await asyncio.gather(*self._disconnect_waiters, return_exceptions=True)

    # ------------------------------------------------------------------ session bus

    async def _require_desktop(self) -> None:
        reason = await self._probe()
        if reason is not None:
            raise DesktopUnavailable(reason)
        # The bus may have restarted since desktop-notifier connected; it never notices.
        self._restart_notifier_if_disconnected()

    async def _is_showing(self, identifier: str) -> bool:
        # desktop-notifier forgets a notification once it is closed, clicked or dismissed.
        return identifier in await self._notifier.get_current_notifications()

    async def _server_reads_markup(self) -> bool:
        """Whether the notification server reads markup in the body; True when it cannot
        say (escaping then shows a stray ``&amp;`` at worst, never a live link)."""
        bus = await self._connected_probe_bus()
        if bus is None:
            return True
        try:
            reply = await bus.call(
                Message(
                    destination=NOTIFICATIONS_BUS_NAME,
                    path="/org/freedesktop/Notifications",
                    interface=NOTIFICATIONS_BUS_NAME,
                    member="GetCapabilities",
                )
            )
        except Exception as error:
            log.debug("cannot ask the notification server what it reads: %r", error)
            return True
        if reply.message_type is MessageType.ERROR or not reply.body:
            return True
        return "body-markup" in reply.body[0]

    async def _probe(self) -> str | None:
        bus = await self._connected_probe_bus()
        if bus is None:
            return NO_SESSION_BUS
        try:
            if await _ask_bus(bus, "NameHasOwner", "s", [NOTIFICATIONS_BUS_NAME]):
                return None
            # A desktop may start its notification server on the first Notify call.
            activatable = await _ask_bus(bus, "ListActivatableNames", "", [])
        except Exception as error:
            # The connection broke under us (the bus exited, a write failed).
            log.debug("session bus connection lost: %r", error)
            self._drop_probe_bus()
            return NO_SESSION_BUS
        return None if NOTIFICATIONS_BUS_NAME in activatable else NO_NOTIFICATION_SERVER

    async def _connected_probe_bus(self) -> MessageBus | None:
        if self._probe_bus is not None and self._probe_bus.connected:
            return self._probe_bus
        self._drop_probe_bus()
        try:
            self._probe_bus = await MessageBus().connect()
        except Exception as error:
            # Unset or unparsable address, missing socket, refused authentication: for the
            # person, all of them mean there is no session bus to talk to.
            log.debug("cannot connect to the session bus: %s", error)
            return None
        return self._probe_bus

    def _drop_probe_bus(self) -> None:
        if self._probe_bus is not None:
            self._disconnect(self._probe_bus)
            self._probe_bus = None

    def _new_notifier(self) -> DesktopNotifier:
        # app_icon=None: the default is a Python logo shipped inside desktop-notifier.
        return DesktopNotifier(app_name=self._app_name, app_icon=None)

    def _restart_notifier_if_disconnected(self) -> None:
        # desktop-notifier connects once, caches the proxy and never reconnects; a half
        # finished connect leaves a bus without a proxy, which it would then leak.
        bus = self._notifier_bus()
        if bus is not None and (not bus.connected or self._notifier_proxy_missing()):
            self._restart_notifier()

    def _restart_notifier(self) -> None:
        """Start desktop-notifier afresh, forgetting what it showed over the old connection."""
        bus = self._notifier_bus()
        if bus is not None:
            self._disconnect(bus)
        self._notifier = self._new_notifier()

    # desktop-notifier has no public close(); its Linux backend keeps its bus and proxy in
    # these attributes.
    def _notifier_bus(self) -> MessageBus | None:
        return getattr(self._notifier._backend, "bus", None)

    def _notifier_proxy_missing(self) -> bool:
        return getattr(self._notifier._backend, "interface", None) is None

    def _disconnect(self, bus: MessageBus) -> None:
        bus.disconnect()
        # A bus that died keeps its error in a future nobody awaits, which asyncio would
        # later report as "Future exception was never retrieved"; collect it.
        waiter = asyncio.get_running_loop().create_task(_wait_for_disconnect(bus))
        self._disconnect_waiters.add(waiter)
        waiter.add_done_callback(self._disconnect_waiters.discard)

    # ------------------------------------------------------------------ open action

    def _open_clientlink(self) -> None:
        # Called synchronously from a D-Bus signal handler inside the running loop.
        task = asyncio.get_running_loop().create_task(self._run_open_command())
        self._open_tasks.add(task)
        task.add_done_callback(self._open_tasks.discard)

    async def _run_open_command(self) -> None:
        command = self._open_command or _first_available(DEFAULT_OPEN_COMMANDS)
        if command is None:
            log.warning(
                "'%s' was chosen but no terminal launcher (%s) is installed",
                OPEN_ACTION_TITLE,
                ", ".join(candidate[0] for candidate in DEFAULT_OPEN_COMMANDS),
            )
            return
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            log.warning("cannot start %s: %s", command[0], error)
            return
        # Reap it when it exits; it runs in its own session, so it outlives the daemon.
        await process.wait()


def escape_markup(text: str) -> str:
    """``text`` for a notification body that a server reads as markup: shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def _ask_bus(bus: MessageBus, member: str, signature: str, body: list[Any]) -> Any:
    """Call a method of the bus itself (org.freedesktop.DBus) and return its one result."""
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature=signature,
            body=body,
        )
    )
    if reply.message_type is MessageType.ERROR:
        raise ConnectionError(f"the session bus refused {member}: {reply.error_name}")
    return reply.body[0]


async def _wait_for_disconnect(bus: MessageBus) -> None:
    try:
        await bus.wait_for_disconnect()
    except Exception as error:
        log.debug("session bus connection ended: %r", error)


def _first_available(commands: Sequence[Sequence[str]]) -> list[str] | None:
    for command in commands:
        if shutil.which(command[0]):
            return list(command)
    return None
