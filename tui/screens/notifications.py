"""Notifications: what clientlinkd told (or tried to tell) the practice, newest first."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.protocol import (
    Notification,
    NotificationsListResult,
)
from clientlink.common.wording import plural
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import format_when
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.manage_clients import ATTENTION, ManageClientsScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner

NOTIFICATIONS_LIMIT = 200
UNREAD_MARK = "●"


def notification_prompt(notification: Notification) -> Table:
    """A notification as a list entry: time and title, its body, and why no pop-up came."""
    unread = not notification.read
    entry = Text(format_when(notification.at), style="dim")
    entry.append("  ")
    entry.append(notification.title, style="bold" if unread else "")
    entry.append(f"\n{notification.body}", style="" if unread else "dim")
    # "sent" is the normal case; anything else explains a missing desktop pop-up.
    if notification.desktop != "sent":
        entry.append(f"\ndesktop: {notification.desktop}", style="italic yellow")
    # A grid, so wrapped lines stay indented past the unread mark.
    prompt = Table.grid()
    prompt.add_column(width=2, no_wrap=True)
    prompt.add_column(ratio=1)
    prompt.add_row(Text(UNREAD_MARK if unread else "", style="bold yellow"), entry)
    return prompt


class NotificationsScreen(DaemonScreen[None]):
    """The practice's notifications; Enter opens the client a notification is about."""

    TITLE = "Notifications"
    HELP = (
        "What clientlinkd noticed about the practice's connections, newest first; unread "
        "ones are marked ●. When a desktop pop-up could not be shown (for example over SSH, "
        "where there is no session bus) the entry says why.\n\n"
        "Enter on a notification about one client opens that client's connection; on one "
        "about several clients it shows Manage Clients' needs-attention view. m marks every "
        "notification read."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="notifications.back"),
        Binding(
            "d", "open_selected", "Open client (also Enter)", show=False, id="notifications.open"
        ),
        Binding("m", "mark_all_read", "Mark all read", id="notifications.mark_all_read"),
        Binding("f5", "reload", "Reload", id="notifications.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="notifications.reload_ctrl"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.notifications: list[Notification] = []
        """The entries shown, newest first."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield Static("Loading notifications…", id="notifications-summary")
        yield OptionList(id="notifications-list")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        if self.clientlink.connected:
            self.load_notifications()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_notifications()

    def on_notification_raised(self, message: messages.NotificationRaised) -> None:
        self.load_notifications()

    @work(exclusive=True, group="load-notifications", exit_on_error=False)
    async def load_notifications(self) -> None:
        """Read the stored notifications and show them, keeping the highlighted one."""
        if not self.clientlink.connected:
            return  # the banner says why; the list reloads on reconnect
        result = await self.clientlink.daemon.call(p.NOTIFICATIONS_LIST, limit=NOTIFICATIONS_LIMIT)
        self.clientlink.unread_notifications = result.unread
        self._show(result)

    def action_reload(self) -> None:
        """Ask the daemon for the notifications again."""
        self.load_notifications()

    def _show(self, result: NotificationsListResult) -> None:
        options = self.query_one(OptionList)
        highlighted = options.highlighted_option
        keep_id = highlighted.id if highlighted is not None else None
        self.notifications = result.items
        entries: list[Option | None] = []
        for notification in result.items:
            if entries:
                entries.append(None)  # a separator line between entries
            entries.append(Option(notification_prompt(notification), id=str(notification.id)))
        options.set_options(entries)
        if keep_id is not None and any(str(n.id) == keep_id for n in result.items):
            options.highlighted = options.get_option_index(keep_id)
        elif result.items:
            options.highlighted = 0
        summary = Text()
        if result.items:
            summary.append(f"{result.unread} unread", style="bold" if result.unread else "")
            summary.append(
                f" of {len(result.items)}  ·  Enter opens the client  ·  m marks all read"
            )
        else:
            summary.append(
                "No notifications yet: clientlinkd tells you here when a connection needs you."
            )
        self.query_one("#notifications-summary", Static).update(summary)

    # ------------------------------------------------------------------ actions

    def _selected(self) -> Notification | None:
        option = self.query_one(OptionList).highlighted_option
        if option is None:
            return None
        return next((n for n in self.notifications if str(n.id) == option.id), None)

    @on(OptionList.OptionSelected, "#notifications-list")
    def _option_selected(self) -> None:
        self.action_open_selected()

    def action_open_selected(self) -> None:
        """Open the client the highlighted notification is about (and mark it read)."""
        notification = self._selected()
        if notification is not None:
            self.open_notification(notification)

    @work(exclusive=True, group="open-notification", exit_on_error=False)
    async def open_notification(self, notification: Notification) -> None:
        """Mark it read, then show its client, or everyone needing attention for a digest."""
        if not notification.read:
            # Before leaving: a dismissed screen's workers are cancelled.
            await self._acknowledge([notification.id])
        if len(notification.client_ids) == 1:
            self.app.push_screen(ClientDetailScreen(notification.client_ids[0]))
            return
        below = self.app.screen_stack[-2] if len(self.app.screen_stack) > 1 else None
        if isinstance(below, ManageClientsScreen):
            self.dismiss()
            below.action_show_status(ATTENTION)
        else:
            self.notify(
                f"This notification is about {plural(len(notification.client_ids), 'client')}: "
                "press t on Manage Clients to see everyone who needs attention."
            )

    def action_mark_all_read(self) -> None:
        """Mark every notification read."""
        self.mark_all_read()

    @work(exclusive=True, group="mark-all-read", exit_on_error=False)
    async def mark_all_read(self) -> None:
        """``notifications.ack`` without ids: every unread one."""
        await self._acknowledge(None)
        self.notify("Every notification is marked read.")

    async def _acknowledge(self, ids: list[int] | None) -> None:
        params = {"ids": ids} if ids is not None else {}
        result = await self.clientlink.daemon.call(p.NOTIFICATIONS_ACK, **params)
        self.clientlink.unread_notifications = result.unread
        self.load_notifications()

    def action_back(self) -> None:
        """Back to where this screen was opened from."""
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Notifications: mark all read",
                "Clear the unread count (m)",
                self.action_mark_all_read,
            ),
            PaletteCommand(
                "Notification: open client",
                "The client the highlighted notification is about (Enter)",
                self.action_open_selected,
            ),
            PaletteCommand(
                "Notifications: reload", "Read them from clientlinkd again (F5)", self.action_reload
            ),
            PaletteCommand("Notifications: close", "Back (Esc)", self.action_back),
        ]
