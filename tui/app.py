"""The clientlink TUI: renders what clientlinkd says and sends it a person's intents."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from clientlink.common import protocol
from clientlink.common.client import DaemonClient, DaemonUnavailable, Resync, RpcError
from clientlink.common.safe_text import visible
from clientlink.common.xero_tiers import usage_line
from clientlink.tui import messages
from clientlink.tui.commands import ContextCommands, PaletteCommand
from clientlink.tui.formatting import ShownDaemonClient
from clientlink.tui.screens.communication_center import CommunicationCenterScreen
from clientlink.tui.screens.help import HelpScreen
from clientlink.tui.screens.jobs import JobsScreen
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.notifications import NotificationsScreen
from clientlink.tui.screens.reconnect_banks import ReconnectBanksScreen, marked_client_ids
from clientlink.tui.screens.staff import StaffScreen

AutoApprove = Callable[[str, list[str]], Awaitable[str]]
"""Plays the person in the browser: (authorize_url, tenant_ids) -> the final redirect URL."""

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 5.0
CONNECT_TIMEOUT = 10.0
NOTIFICATION_TOAST_SECONDS = 12.0
UNREAD_REFRESH_SECONDS = 30.0
"""How often the unread count is re-read: a recovered client's notifications are read
without an event saying so."""

OFFLINE_MESSAGE = (
    "clientlinkd is not running — reconnecting in {delay}. "
    "Start it with `clientlinkd` (or `clientlink service install`)"
)
UNUSABLE_MESSAGE = "Cannot use clientlinkd: {reason} — reconnecting in {delay}."


def browser_is_local() -> bool:
    """Whether a browser opened here would appear in front of the person (not over SSH)."""
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _seconds(delay: float) -> str:
    return f"{delay:g}s"


class ClientlinkApp(App[None]):
    """The clientlink terminal app. It keeps one connection to clientlinkd alive."""

    CSS_PATH = "app.tcss"
    TITLE = "clientlink"
    COMMANDS = App.COMMANDS | {ContextCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help"),
        Binding(
            "f2", "command_palette", "Command palette (also ctrl+p)", show=False, id="app.commands"
        ),
        Binding("f3", "notifications", "Notifications", id="app.notifications"),
        Binding("f4", "jobs", "Jobs", show=False, id="app.jobs"),
        Binding(
            "f6", "communication_center", "Communication Center", show=False, id="app.communication"
        ),
        Binding("o", "notifications", "Notifications", show=False, id="app.notifications_o"),
        Binding("f7", "staff", "Staff", show=False, id="app.staff"),
        Binding("f10", "quit", "Quit", id="app.quit"),
    ]

    offline_message: reactive[str] = reactive("")
    """Why the daemon cannot be used right now; empty while connected."""

    unread_notifications: reactive[int] = reactive(0)
    """How many of the daemon's notifications nobody has read; shown in every header."""

    usage_summary: reactive[str] = reactive("")
    """Xero connections and API egress against the configured tier; in every header."""

    def __init__(
        self,
        socket_path: Path,
        *,
        auto_approve: AutoApprove | None = None,
        open_browser: bool | None = None,
    ) -> None:
        super().__init__()
        self.socket_path = Path(socket_path)
        self.auto_approve = auto_approve
        self.open_browser = browser_is_local() if open_browser is None else open_browser
        self.provider_names: dict[str, str] = {}
        """Display names of the accounting software, by provider key (``providers.list``)."""
        self._daemon: DaemonClient | None = None

    # ------------------------------------------------------------------ connection

    @property
    def daemon(self) -> DaemonClient:
        """The live connection; raises :class:`DaemonUnavailable` while offline."""
        if self._daemon is None or self._daemon.closed.is_set():
            raise DaemonUnavailable("clientlinkd is not running; the app keeps trying to reconnect")
        return self._daemon

    @property
    def connected(self) -> bool:
        """Whether calls can be made right now."""
        return self._daemon is not None and not self._daemon.closed.is_set()

    def provider_name(self, provider: str) -> str:
        """The software's display name, or its key when the daemon did not name it."""
        return self.provider_names.get(provider, provider)

    def on_mount(self) -> None:
        self.push_screen(ManageClientsScreen())
        self.keep_connected()
        self.set_interval(UNREAD_REFRESH_SECONDS, self.refresh_unread_count)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast; its text is shown as written, never read as markup.

        Toasts quote client names and providers' messages: ``[@click=app.quit]`` in a
        name must be letters, not an action. Control characters are made visible too.
        """
        super().notify(
            visible(message),
            title=visible(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def watch_unread_notifications(self, unread: int) -> None:
        self._show_header()

    def watch_usage_summary(self, summary: str) -> None:
        self._show_header()

    def _show_header(self) -> None:
        unread = self.unread_notifications
        parts = [f"{unread} unread (press o)" if unread else "", self.usage_summary]
        self.sub_title = " · ".join(part for part in parts if part)

    @work(group="daemon-connection", exclusive=True, exit_on_error=False)
    async def keep_connected(self) -> None:
        """Connect, subscribe, relay events; on loss, say so and retry with backoff."""
        delay = RECONNECT_FIRST_DELAY
        while True:
            client = ShownDaemonClient(self.socket_path, client_name="clientlink-tui")
            message = OFFLINE_MESSAGE
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await client.connect()
                    await client.subscribe()
                    providers = await client.call(protocol.PROVIDERS_LIST)
                    unread = await client.call(
                        protocol.NOTIFICATIONS_LIST, unread_only=True, limit=1
                    )
                self.provider_names = {item.name: item.display_name for item in providers.items}
                self.unread_notifications = unread.unread
                self._daemon = client
                self.offline_message = ""
                delay = RECONNECT_FIRST_DELAY
                self._broadcast(lambda hello=client.hello: messages.DaemonConnected(hello))
                async for update in client.updates():
                    if isinstance(update, Resync):
                        self._resync(client, update)
                    else:
                        self._relay_event(update)
            except DaemonUnavailable as exc:
                self.log.warning(f"daemon unavailable: {exc}")
                if "not running" not in str(exc) and "ended" not in str(exc):
                    message = UNUSABLE_MESSAGE.replace("{reason}", str(exc))
            except RpcError as exc:
                message = UNUSABLE_MESSAGE.replace("{reason}", exc.message)
            except TimeoutError:
                message = UNUSABLE_MESSAGE.replace("{reason}", "it did not answer in time")
            except (OSError, ValidationError) as exc:
                message = UNUSABLE_MESSAGE.replace("{reason}", str(exc))
            finally:
                self._daemon = None
                await client.close()
            self.offline_message = message.format(delay=_seconds(delay))
            self._broadcast(lambda reason=self.offline_message: messages.DaemonDisconnected(reason))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _resync(self, client: DaemonClient, resync: Resync) -> None:
        """Events were missed: every screen reloads from the daemon, as after a reconnect."""
        self.log.warning(f"resyncing with clientlinkd: {resync.reason}")
        self.refresh_unread_count()
        self._broadcast(
            lambda hello=client.hello: messages.DaemonConnected(hello, resync=resync.reason)
        )

    def _relay_event(self, event: protocol.Event) -> None:
        if isinstance(event, protocol.NotificationsRead):
            self.unread_notifications = event.unread
            return
        message_type = messages.EVENT_MESSAGES.get(event.topic)
        if message_type is None:
            return
        if isinstance(event, protocol.NotificationEvent):
            self._announce(event)
        elif isinstance(event, protocol.BankConnectionChanged) and event.needs_reconnect:
            # Events come only on a change, so this one is the moment it broke.
            self.notify(
                f"{event.name}: a bank connection broke",
                title="Bank connection — i on the client invites a reconnect",
                severity="warning",
                timeout=NOTIFICATION_TOAST_SECONDS,
            )
        self._broadcast(lambda: message_type(event))  # type: ignore[call-arg]

    def _announce(self, event: protocol.NotificationEvent) -> None:
        self.unread_notifications = event.unread
        severity = "information" if event.kind == protocol.NotificationKind.RECOVERED else "warning"
        self.notify(
            event.title,
            title="Notification — o shows them all",
            severity=severity,
            timeout=NOTIFICATION_TOAST_SECONDS,
        )

    @work(group="unread-count", exclusive=True, exit_on_error=False)
    async def refresh_unread_count(self) -> None:
        """Re-read how many notifications are unread."""
        if not self.connected:
            return
        result = await self.daemon.call(protocol.NOTIFICATIONS_LIST, unread_only=True, limit=1)
        self.unread_notifications = result.unread
        status = await self.daemon.call(protocol.DAEMON_STATUS)
        names = {item.name: item.display_name for item in status.providers}
        self.usage_summary = " · ".join(
            usage_line(usage, names.get(usage["provider"], usage["provider"]))
            for usage in status.usage
            if usage.get("tier")
        )

    def _broadcast(self, make_message: Callable[[], Message]) -> None:
        # Every screen on the stack hears it, so the list under a sign-in stays current.
        for screen in self.screen_stack:
            screen.post_message(make_message())

    # ------------------------------------------------------------------ errors

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_failure(event.worker)

    def report_worker_failure(self, worker: Worker[Any]) -> None:
        """The one handler for failed workers: the daemon's message as a toast."""
        if worker.state != WorkerState.ERROR or worker.error is None:
            return
        error = worker.error
        if isinstance(error, RpcError):
            self.notify(error.message, title="clientlinkd refused", severity="error")
        elif isinstance(error, DaemonUnavailable):
            self.notify(str(error), title="Not connected", severity="warning")
        else:
            self.log.error(f"worker {worker.name} failed: {error!r}")
            self.notify(
                f"{type(error).__name__}: {error}", title="Unexpected error", severity="error"
            )

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        """Open help for the current screen."""
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        title = screen.title or screen.__class__.__name__
        about = screen.HELP or ""
        self.push_screen(HelpScreen(str(title), about, self._keys_for(screen)))

    def action_notifications(self) -> None:
        """Open the notifications (unless they are already open)."""
        if not isinstance(self.screen, NotificationsScreen):
            self.push_screen(NotificationsScreen())

    def action_jobs(self) -> None:
        """Open the Jobs screen (unless it is already open)."""
        if not isinstance(self.screen, JobsScreen):
            self.push_screen(JobsScreen())

    def action_communication_center(self) -> None:
        """Open the Communication Center (unless it is already open)."""
        if not isinstance(self.screen, CommunicationCenterScreen):
            self.push_screen(CommunicationCenterScreen())

    def action_staff(self) -> None:
        """Open the staff list (unless it is already open)."""
        if not isinstance(self.screen, StaffScreen):
            self.push_screen(StaffScreen())

    def action_reconnect_banks(self) -> None:
        """Reconnect and Add New Banks, for the clients marked on Manage Clients if any."""
        self.push_screen(ReconnectBanksScreen(marked_client_ids(self.screen_stack)))

    def show_manage_clients(self) -> None:
        """Close every screen above Manage Clients and reload its list."""
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ManageClientsScreen):
            self.pop_screen()
        if isinstance(self.screen, ManageClientsScreen):
            self.screen.load_clients()

    def palette_commands(self) -> list[PaletteCommand]:
        """Context actions offered on every screen."""
        return [
            PaletteCommand(
                "Notifications: show",
                f"What clientlinkd noticed; {self.unread_notifications} unread (F3 or o)",
                self.action_notifications,
            ),
            PaletteCommand(
                "Jobs: show",
                "Bulk jobs running and finished, and the audit log (F4, or j on Manage Clients)",
                self.action_jobs,
            ),
            PaletteCommand(
                "Templates: show",
                "The Communication Center: invitation templates (F6)",
                self.action_communication_center,
            ),
            PaletteCommand(
                "Staff: show",
                "The practice's staff and their roles; admins add and change them (F7)",
                self.action_staff,
            ),
            PaletteCommand(
                "Invitations: reconnect and add new banks",
                "Invite clients to connect banks, by email or SMS (also in Bulk Actions)",
                self.action_reconnect_banks,
            ),
        ]

    def _keys_for(self, screen: Screen[Any]) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            # Ours all carry an id; Textual's own (focus, copy) are listed by hand below.
            if not binding.id or not binding.description:
                continue
            key = self.get_key_display(binding)
            if key in seen:
                continue
            seen.add(key)
            keys.append((key, binding.description))
        keys.append(("Tab / Shift+Tab", "Move between fields and buttons"))
        return keys
