"""One client's connection: who authorised it, when it was last refreshed, its history."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Footer, Header, Static

from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    AuthCompleteResult,
    Client,
    ClientHistoryResult,
    ConnectionStatus,
    HistoryEntry,
)
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import format_abn, format_when, relative_expiry, relative_time
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner
from clientlink.tui.widgets.status_cell import status_text

HISTORY_LIMIT = 50
HISTORY_KINDS = {
    "reauthorised": "Re-authorised",
    "refresh": "Refreshed",
    "refresh_failed": "Refresh failed",
}
"""Words for the daemon's history kinds; others are shown as their name."""
CLOCK_REFRESH_SECONDS = 30.0


def history_event(entry: HistoryEntry) -> Text:
    """What happened, in words: ``Connected → Needs re-auth``, ``Re-authorised``."""
    if entry.kind == "status" and entry.status is not None:
        text = Text()
        if entry.old_status is not None:
            text.append_text(status_text(entry.old_status))
            text.append(" → ")
        text.append_text(status_text(entry.status))
        return text
    return Text(HISTORY_KINDS.get(entry.kind, entry.kind.replace("_", " ").capitalize()))


def history_table(entries: list[HistoryEntry]) -> Table | Text:
    """The history as a table that wraps to the screen: when, what, why and who."""
    if not entries:
        return Text("Nothing recorded yet.", style="dim")
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style="dim")
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    for entry in entries:
        detail = Text(entry.reason or "")
        if entry.actor:
            detail.append(f"{' — ' if entry.reason else ''}by {entry.actor}", style="italic")
        table.add_row(relative_time(entry.at), history_event(entry), detail)
    return table


class ClientDetailScreen(DaemonScreen[None]):
    """A client's connection in full, live, with Re-Authorise and Refresh now."""

    TITLE = "Connection"
    HELP = (
        "Everything clientlinkd knows about one client's connection: its status and why, "
        "who authorised it and when, when its tokens were last refreshed and when they end, "
        "when clientlinkd checks it next, and its history, newest first. It updates by "
        "itself when the connection changes.\n\n"
        "Refresh now (f) asks clientlinkd to refresh the tokens and check the connection at "
        "once. Re-Authorise (r) opens a sign-in for this client. Arrow keys and PgUp/PgDn "
        "scroll; Esc goes back."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="client_detail.back"),
        Binding("r", "reauthorise", "Re-Authorise", id="client_detail.reauthorise"),
        Binding("f", "refresh_now", "Refresh now", id="client_detail.refresh_now"),
        Binding("f5", "reload", "Reload", show=False, id="client_detail.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="client_detail.reload_ctrl"),
    ]

    refreshing: reactive[bool] = reactive(False)
    """Whether a Refresh now is under way."""

    def __init__(self, client_id: int, client: Client | None = None) -> None:
        super().__init__()
        self.client_id = client_id
        self.client = client
        """The client as the daemon last described it (None until it answers)."""
        self.history: list[HistoryEntry] | None = None
        """Newest first; None until the daemon answers."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with VerticalScroll(id="detail-body"):
            yield Static("Loading…", id="detail-fields")
            yield Static("Refreshing…", id="detail-refreshing")
            yield Static(Text("History", style="bold underline"), id="detail-history-title")
            yield Static("Loading…", id="detail-history")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self._show_client()
        self.set_interval(CLOCK_REFRESH_SECONDS, self._show_all)
        self.query_one("#detail-body").focus()
        if self.clientlink.connected:
            self.load_client()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_client()

    @work(exclusive=True, group="load-client", exit_on_error=False)
    async def load_client(self) -> None:
        """Read the client and its history from the daemon and show them."""
        if not self.clientlink.connected:
            return  # the banner says why; the screen reloads on reconnect
        daemon = self.clientlink.daemon
        client = Client.model_validate(
            await daemon.call("clients.get", {"client_id": self.client_id})
        )
        history = ClientHistoryResult.model_validate(
            await daemon.call(
                "clients.history", {"client_id": self.client_id, "limit": HISTORY_LIMIT}
            )
        )
        self.client = client
        self.history = history.items
        self._show_all()

    def action_reload(self) -> None:
        """Ask the daemon for this client again."""
        self.load_client()

    # ------------------------------------------------------------------ showing

    def _show_all(self) -> None:
        self._show_client()
        if self.history is not None:
            self.query_one("#detail-history", Static).update(history_table(self.history))

    def _show_client(self) -> None:
        client = self.client
        fields = self.query_one("#detail-fields", Static)
        if client is None:
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_row("ABN", format_abn(client.abn))
        grid.add_row("Software", self.clientlink.provider_name(client.provider))
        status = status_text(client.status)
        if client.status_since:
            status.append(f"  since {format_when(client.status_since)}")
        grid.add_row("Status", status)
        if client.status_reason:
            grid.add_row("Reason", Text(client.status_reason))
        authorised = Text(client.authorised_by or "—")
        if client.authorised_at:
            authorised.append(f", {format_when(client.authorised_at)}")
        grid.add_row("Authorised by", authorised)
        grid.add_row("Last refresh", format_when(client.last_refresh_at))
        grid.add_row("Last verified", format_when(client.last_verified_at))
        grid.add_row("Next check", format_when(client.next_check_at))
        grid.add_row("Access token ends", format_when(client.access_expires_at))
        grid.add_row("Refresh token ends", format_when(client.refresh_expires_at))
        if client.hard_expires_at:
            grid.add_row("Grant ends for good", format_when(client.hard_expires_at))
        fields.update(Group(Text(client.name, style="bold"), grid))

    def watch_refreshing(self, refreshing: bool) -> None:
        self.set_class(refreshing, "-refreshing")

    # ------------------------------------------------------------------ live updates

    def on_client_status_changed(self, message: messages.ClientStatusChanged) -> None:
        event = message.event
        if event.client_id != self.client_id:
            return
        if self.client is not None:
            # Show the new status and its reason at once; the reload fills in the rest.
            self.client = self.client.model_copy(
                update={
                    "status": event.status,
                    "status_reason": event.reason,
                    "status_since": event.at,
                }
            )
            self._show_client()
        self.load_client()

    def on_client_reauthorised(self, message: messages.ClientReauthorised) -> None:
        if message.event.client_id == self.client_id:
            self.load_client()

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        """Back to where this screen was opened from."""
        self.dismiss()

    def action_reauthorise(self) -> None:
        """Open a sign-in for this client."""
        client = self.client
        if client is None:
            self.notify("This client has not loaded yet.", severity="warning")
            return

        def reload_after_sign_in(result: AuthCompleteResult | None) -> None:
            if result is not None:
                self.load_client()

        self.app.push_screen(
            SignInScreen(client, self.clientlink.provider_name(client.provider)),
            reload_after_sign_in,
        )

    def action_refresh_now(self) -> None:
        """Have the daemon refresh this client's tokens and check the connection now."""
        if not self.refreshing:
            self.refresh_now()

    @work(exclusive=True, group="refresh-now", exit_on_error=False)
    async def refresh_now(self) -> None:
        """``clients.refresh {force: true}``, then a toast saying how it went."""
        self.refreshing = True
        try:
            client = Client.model_validate(
                await self.clientlink.daemon.call(
                    "clients.refresh", {"client_id": self.client_id, "force": True}
                )
            )
        except RpcError as exc:
            self.notify(exc.message, title="Refresh failed", severity="error")
            return
        finally:
            self.refreshing = False
        self.client = client
        self._show_client()
        if client.status == ConnectionStatus.CONNECTED:
            self.notify(
                f"Refreshed: connected, access token ends "
                f"{relative_expiry(client.access_expires_at)}.",
                title=client.name,
            )
        else:
            outcome = f"Refreshed: {client.status.label}."
            if client.status_reason:
                outcome += f" {client.status_reason}"
            self.notify(outcome, title=client.name, severity="warning")
        self.load_client()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Client: refresh now",
                "Refresh the tokens and check the connection (f)",
                self.action_refresh_now,
            ),
            PaletteCommand(
                "Client: re-authorise", "Sign in again for this client (r)", self.action_reauthorise
            ),
            PaletteCommand(
                "Client: reload", "Read it from clientlinkd again (F5)", self.action_reload
            ),
            PaletteCommand("Client: back to list", "Close this screen (Esc)", self.action_back),
        ]
