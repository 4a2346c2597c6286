"""Manage Clients: every client's connection, filtered by the daemon, re-authorised from here."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Footer, Header, Input, Select, Static

from clientlink.common.protocol import (
    AuthCompleteResult,
    Client,
    ClientsChangedResult,
    ClientsListResult,
    ConnectionStatus,
    JobKind,
    JobStartResult,
    ProviderInfo,
)
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import format_abn, relative_expiry, relative_time
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.bulk_actions import BulkAction, BulkActionsScreen
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.export_clients import ExportClientsScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner
from clientlink.tui.widgets.status_cell import status_text

PAGE_SIZE = 1000
TYPING_DEBOUNCE = 0.15
EXPIRY_REFRESH_SECONDS = 30.0

ALL = "all"
ATTENTION = "attention"
INACTIVE = "inactive"
ATTENTION_STATUSES = [status.value for status in ConnectionStatus if status.needs_attention]
STATUS_FILTERS: list[tuple[str, str]] = [
    ("All", ALL),
    ("Needs attention", ATTENTION),
    (ConnectionStatus.NEEDS_REAUTH.label, ConnectionStatus.NEEDS_REAUTH.value),
    (ConnectionStatus.EXPIRING.label, ConnectionStatus.EXPIRING.value),
    (ConnectionStatus.ERROR.label, ConnectionStatus.ERROR.value),
    (ConnectionStatus.CONNECTED.label, ConnectionStatus.CONNECTED.value),
    (ConnectionStatus.NOT_CONNECTED.label, ConnectionStatus.NOT_CONNECTED.value),
    ("Inactive", INACTIVE),
]
MARK = "✓"
NAMES_IN_CONFIRM = 3

# Widths of the columns other than Name (content only; the table pads each by 2).
ABN_WIDTH = 14
STATUS_WIDTH = max(len(status.label) for status in ConnectionStatus)
EXPIRY_WIDTH_NARROW = 8
EXPIRY_WIDTH_WIDE = 12
SOFTWARE_WIDTH_NARROW = 10
SOFTWARE_WIDTH_WIDE = 17
NAME_MIN_WIDTH = 12
SINCE_WIDTH = 8
REASON_MIN_WIDTH = 12
WIDE_TABLE = 100

MARK_COLUMN = ("mark", "✓", 1)

Column = tuple[str, str, int]
"""A table column: its key, its heading and its content width."""


def _ellipsise(text: str, width: int, style: str = "") -> Text:
    cell = Text(text, style=style, no_wrap=True)
    cell.truncate(width, overflow="ellipsis")
    return cell


class ManageClientsScreen(DaemonScreen[None]):
    """The main screen: the practice's clients and the state of their connections."""

    TITLE = "Manage Clients"
    HELP = (
        "Every active client and the state of its connection to the accounting software. "
        "The list is filtered by clientlinkd: type in the filter box to match names, or pick "
        "a status. Rows change live when a connection changes, and the pane under the list "
        "says why the highlighted client is in its status.\n\n"
        "Needs attention (t or !) lists every client that needs a person — needs re-auth, "
        "expiring or in error — with the reason and since when.\n\n"
        "Enter (or d) opens the highlighted client's connection: who authorised it, its "
        "tokens, its history, Refresh now. Re-Authorise (r, or the button) opens a sign-in "
        "for the client on the focused row: sign in to the software, tick the client's "
        "business, allow access. The header shows unread notifications; o (or F3) opens them."
        "\n\nspace marks the highlighted client (✓) and moves down; * marks every client "
        "shown, u unmarks all. Bulk Actions (b, or the button) works on the marked clients: "
        "re-authorise many clients after one sign-in, re-import their details, export the "
        "list to CSV, deactivate or reactivate. Deactivated clients are kept and listed under "
        "the Inactive status filter. j (or F4) shows the jobs clientlinkd runs and the audit "
        "log."
    )
    BINDINGS = [
        Binding("r", "reauthorise", "Re-Authorise", id="clients.reauthorise"),
        Binding("b", "bulk_actions", "Bulk", id="clients.bulk_actions"),
        Binding("space", "toggle_mark", "Mark", show=False, id="clients.mark"),
        Binding("asterisk", "mark_all", "Mark all shown", show=False, id="clients.mark_all"),
        Binding("u", "unmark_all", "Unmark all", show=False, id="clients.unmark_all"),
        Binding("j", "app.jobs", "Jobs", id="clients.jobs"),
        Binding("d", "details", "Details (also Enter)", show=False, id="clients.details"),
        Binding("t", "show_status('attention')", "Attention", id="clients.attention"),
        Binding(
            "exclamation_mark",
            "show_status('attention')",
            "Needs attention",
            show=False,
            id="clients.attention_bang",
        ),
        Binding(
            "n",
            "show_status('needs_reauth')",
            "Needs re-auth",
            show=False,
            id="clients.needs_reauth",
        ),
        Binding("a", "show_status('all')", "All", id="clients.show_all"),
        Binding("slash", "focus_filter", "Filter", show=False, id="clients.focus_filter"),
        Binding("f5", "reload", "Reload", show=False, id="clients.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="clients.reload_ctrl"),
        Binding("escape", "focus_table", "Back to list", show=False, id="clients.focus_table"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[int, Client] = {}
        """The rows shown, as the daemon last described them, by client id."""
        self.counts: dict[str, int] = {}
        self.total = 0
        self.marked: set[int] = set()
        """Clients marked with space for a bulk action; only ever ones that are shown."""
        self._columns: list[Column] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Horizontal(id="clients-filters"):
            yield Input(placeholder="Filter by name…  (/)", id="clients-filter-text", compact=True)
            yield Select(
                STATUS_FILTERS,
                value=ALL,
                allow_blank=False,
                compact=True,
                id="clients-filter-status",
            )
            yield Button("Re-Authorise", id="clients-reauthorise", variant="primary", compact=True)
            yield Button("Bulk Actions", id="clients-bulk", compact=True)
        yield Static("Connecting to clientlinkd…", id="clients-summary")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="clients-table")
        yield Static("", id="clients-detail")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self._build_columns()
        self.set_interval(EXPIRY_REFRESH_SECONDS, self._refresh_expiry_cells)
        self.query_one(DataTable).focus()
        if self.clientlink.connected:
            self.load_clients()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_clients()

    def on_clients_imported(self, message: messages.ClientsImported) -> None:
        self.load_clients()

    def _filter_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        text = self.query_one("#clients-filter-text", Input).value.strip()
        if text:
            params["text"] = text
        status = self.query_one("#clients-filter-status", Select).value
        if status == INACTIVE:
            params["active"] = False
        elif status == ATTENTION:
            params["status"] = ATTENTION_STATUSES
        elif status != ALL and isinstance(status, str):
            params["status"] = status
        return params

    @property
    def attention_view(self) -> bool:
        """Whether the list shows the clients needing attention (Reason and Since columns)."""
        return self.query_one("#clients-filter-status", Select).value == ATTENTION

    @work(exclusive=True, group="load-clients", exit_on_error=False)
    async def load_clients(self, debounce: float = 0.0) -> None:
        """Fetch every client matching the filter, a page at a time, and show them."""
        if debounce:
            await asyncio.sleep(debounce)  # a newer keystroke cancels this worker
        if not self.clientlink.connected:
            return  # the banner says why; the list reloads on reconnect
        daemon = self.clientlink.daemon
        filter_params = self._filter_params()
        items: list[Client] = []
        while True:
            page = ClientsListResult.model_validate(
                await daemon.call(
                    "clients.list",
                    {"filter": filter_params, "offset": len(items), "limit": PAGE_SIZE},
                )
            )
            items.extend(page.items)
            if not page.items or len(items) >= page.total:
                break
        self.counts = page.counts
        self.total = page.total
        self._show_clients(items)

    def action_reload(self) -> None:
        """Ask the daemon for the list again."""
        self.load_clients()

    @on(Input.Changed, "#clients-filter-text")
    def _filter_text_changed(self) -> None:
        self.load_clients(debounce=TYPING_DEBOUNCE)

    @on(Input.Submitted, "#clients-filter-text")
    def _filter_text_submitted(self) -> None:
        self.action_focus_table()

    @on(Select.Changed, "#clients-filter-status")
    def _filter_status_changed(self) -> None:
        self.set_class(self.attention_view, "-attention")
        if self._layout() != self._columns:
            self._build_columns()
            self._show_clients(list(self.clients.values()))
        self.load_clients()

    # ------------------------------------------------------------------ the table

    def on_resize(self, event: events.Resize) -> None:
        if self._layout() != self._columns:
            self._build_columns()
            self._show_clients(list(self.clients.values()))

    def _layout(self) -> list[Column]:
        """The columns for this width and view: Name (and Reason) take what the rest leave.

        At 80 columns the fixed ones shrink first; the needs-attention view trades ABN,
        Software and Expiry for Since and Reason.
        """
        width = self.size.width or 80
        wide = width >= WIDE_TABLE
        expiry = EXPIRY_WIDTH_WIDE if wide else EXPIRY_WIDTH_NARROW
        expiry_column = ("expiry", "Token expiry" if wide else "Expiry", expiry)
        status_column = ("status", "Status", STATUS_WIDTH)
        if self.attention_view:
            # Four columns padded by 2 each, plus the vertical scrollbar. No expiry: the
            # reason says when an expiring grant ends, and the others have nothing left.
            room = width - 5 * 2 - 2 - STATUS_WIDTH - SINCE_WIDTH - MARK_COLUMN[2]
            name = max(NAME_MIN_WIDTH, room * 2 // 5)
            return [
                MARK_COLUMN,
                ("name", "Name", name),
                status_column,
                ("since", "Since", SINCE_WIDTH),
                ("reason", "Reason", max(REASON_MIN_WIDTH, room - name)),
            ]
        software = SOFTWARE_WIDTH_WIDE if wide else SOFTWARE_WIDTH_NARROW
        # Six columns padded by 2 each, plus the vertical scrollbar.
        room = width - 6 * 2 - 2 - STATUS_WIDTH - expiry - MARK_COLUMN[2]
        return [
            MARK_COLUMN,
            ("name", "Name", max(NAME_MIN_WIDTH, room - ABN_WIDTH - software)),
            ("abn", "ABN", ABN_WIDTH),
            ("software", "Software", software),
            status_column,
            expiry_column,
        ]

    def _build_columns(self) -> None:
        self._columns = self._layout()
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for key, label, width in self._columns:
            table.add_column(label, key=key, width=width)

    def _expiry(self, client: Client) -> str:
        # Without a usable grant there is nothing left to expire.
        if client.status in (ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.NOT_CONNECTED):
            return "—"
        # The grant's end is what forces a re-authorisation; access tokens renew by themselves.
        return relative_expiry(client.refresh_expires_at or client.access_expires_at)

    def _cell(self, client: Client, key: str, width: int) -> Text | str:
        if key == "mark":
            return Text(MARK, style="bold green") if client.id in self.marked else ""
        if key == "name":
            return _ellipsise(client.name, width)
        if key == "abn":
            return format_abn(client.abn)
        if key == "software":
            return _ellipsise(self.clientlink.provider_name(client.provider), width)
        if key == "status":
            return status_text(client.status)
        if key == "since":
            return relative_time(client.status_since)
        if key == "reason":
            return _ellipsise(self._short_reason(client), width)
        return self._expiry(client)

    def _short_reason(self, client: Client) -> str:
        """The reason without the software's name it starts with: the column is narrow."""
        reason = client.status_reason or "—"
        software = self.clientlink.provider_name(client.provider)
        if reason.startswith(f"{software} "):
            reason = reason.removeprefix(f"{software} ")
            return reason[:1].upper() + reason[1:]
        return reason

    def _cells(self, client: Client) -> list[Text | str]:
        return [self._cell(client, key, width) for key, _, width in self._columns]

    def _update_row(self, client: Client) -> None:
        table = self.query_one(DataTable)
        for (key, _, _), value in zip(self._columns, self._cells(client), strict=True):
            table.update_cell(str(client.id), key, value)
        if client.id == self.focused_client_id():
            self._show_detail()

    def _show_clients(self, items: list[Client]) -> None:
        table = self.query_one(DataTable)
        focused_id = self.focused_client_id()
        focused_row = table.cursor_row
        table.clear()
        self.clients = {client.id: client for client in items}
        self.marked &= set(self.clients)
        for client in items:
            table.add_row(*self._cells(client), key=str(client.id))
        if focused_id in self.clients:
            table.move_cursor(row=table.get_row_index(str(focused_id)))
        elif items:
            table.move_cursor(row=min(focused_row, len(items) - 1))
        self._show_summary()
        self._show_detail()

    def _show_summary(self) -> None:
        summary = Text()
        everyone = sum(self.counts.values())
        summary.append(f"{everyone} clients", style="bold")
        for status in ConnectionStatus:
            count = self.counts.get(status.value, 0)
            if count:
                summary.append("  ")
                summary.append(f"{count} ")
                summary.append_text(status_text(status))
        if self.inactive_view:
            summary.append(f"  · {self.total} inactive, not watched", style="italic")
            summary.append("  (b 4 reactivates)", style="dim")
        elif self._filter_params():
            summary.append(f"  · showing {self.total}", style="italic")
        if self.marked:
            summary.append(f"  · {len(self.marked)} marked", style="bold reverse")
        self.query_one("#clients-summary", Static).update(summary)

    def _show_detail(self) -> None:
        """The pane under the list: the highlighted client's status, since when and why."""
        client = self.clients.get(self.focused_client_id() or -1)
        pane = self.query_one("#clients-detail", Static)
        if client is None:
            pane.update("")
            return
        heading = Text(client.name, style="bold", no_wrap=True, overflow="ellipsis")
        heading.append("  ")
        heading.append_text(status_text(client.status))
        if client.status_since:
            heading.append(f" since {relative_time(client.status_since)}")
        heading.append("  · Enter: details", style="dim")
        if client.status_reason:
            why = Text(client.status_reason, style="italic")
        elif client.authorised_at:
            why = Text(
                f"Authorised by {client.authorised_by or 'someone'} "
                f"{relative_time(client.authorised_at)}; next check "
                f"{relative_time(client.next_check_at)}",
                style="dim",
            )
        else:
            why = Text("Never authorised: press r to sign in for it.", style="dim")
        pane.update(Group(heading, why))

    @on(DataTable.RowHighlighted, "#clients-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    def _refresh_expiry_cells(self) -> None:
        # Relative times age: expiry, and (in the needs-attention view) since when.
        for client in self.clients.values():
            self._update_row(client)

    def focused_client_id(self) -> int | None:
        """The id of the client on the cursor row, if there is one."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    # ------------------------------------------------------------------ live updates

    def on_client_status_changed(self, message: messages.ClientStatusChanged) -> None:
        event = message.event
        if event.old_status is not None and self.counts.get(event.old_status.value):
            self.counts[event.old_status.value] -= 1
        self.counts[event.status.value] = self.counts.get(event.status.value, 0) + 1
        self._show_summary()
        client = self.clients.get(event.client_id)
        if client is None:
            return
        # The row stays where it is, even if it no longer matches the filter: no jumps.
        client = client.model_copy(
            update={"status": event.status, "status_reason": event.reason, "status_since": event.at}
        )
        self.clients[event.client_id] = client
        self._update_row(client)
        self.refresh_client(event.client_id)

    def on_client_reauthorised(self, message: messages.ClientReauthorised) -> None:
        if message.event.client_id in self.clients:
            self.refresh_client(message.event.client_id)

    @work(group="refresh-client", exit_on_error=False)
    async def refresh_client(self, client_id: int) -> None:
        """Re-read one client (its expiry changes with its status) and update its row."""
        client = Client.model_validate(
            await self.clientlink.daemon.call("clients.get", {"client_id": client_id})
        )
        if client_id not in self.clients:
            return
        self.clients[client_id] = client
        self._update_row(client)

    # ------------------------------------------------------------------ actions

    def action_reauthorise(self) -> None:
        """Open a sign-in for the client on the cursor row."""
        client = self.clients.get(self.focused_client_id() or -1)
        if client is None:
            self.notify("No client selected: move to a row first.", severity="warning")
            return

        def refresh_after_sign_in(result: AuthCompleteResult | None) -> None:
            if result is not None and client.id in self.clients:
                self.refresh_client(client.id)

        self.app.push_screen(
            SignInScreen(client, self.clientlink.provider_name(client.provider)),
            refresh_after_sign_in,
        )

    def action_details(self) -> None:
        """Open the connection of the client on the cursor row."""
        client = self.clients.get(self.focused_client_id() or -1)
        if client is None:
            self.notify("No client selected: move to a row first.", severity="warning")
            return

        def refresh_after_detail(_: None) -> None:
            # A Refresh now there may have changed the reason without a status event.
            if client.id in self.clients:
                self.refresh_client(client.id)

        self.app.push_screen(ClientDetailScreen(client.id, client), refresh_after_detail)

    @on(DataTable.RowSelected, "#clients-table")
    def _row_selected(self) -> None:
        self.action_details()

    @on(Button.Pressed, "#clients-reauthorise")
    def _reauthorise_pressed(self) -> None:
        self.action_reauthorise()

    def action_focus_filter(self) -> None:
        """Put the cursor in the name filter."""
        self.query_one("#clients-filter-text", Input).focus()

    def action_focus_table(self) -> None:
        """Back from the filters to the list."""
        self.query_one(DataTable).focus()

    def action_show_status(self, status: str) -> None:
        """Show only clients in ``status`` (``all`` for everyone); again reloads the list."""
        select = self.query_one("#clients-filter-status", Select)
        if select.value == status:
            self.load_clients()
        select.value = status
        self.action_focus_table()

    # ------------------------------------------------------------------ marks

    @property
    def inactive_view(self) -> bool:
        """Whether the list shows deactivated clients."""
        return self.query_one("#clients-filter-status", Select).value == INACTIVE

    def _show_mark(self, client_id: int) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            self._update_row(client)
        self._show_summary()

    def action_toggle_mark(self) -> None:
        """Mark or unmark the highlighted client, then move down a row."""
        client_id = self.focused_client_id()
        if client_id is None:
            return
        self.marked ^= {client_id}
        self._show_mark(client_id)
        self.query_one(DataTable).action_cursor_down()

    def action_mark_all(self) -> None:
        """Mark every client shown."""
        self.marked = set(self.clients)
        self._refresh_marks()

    def action_unmark_all(self) -> None:
        """Clear every mark."""
        self.marked = set()
        self._refresh_marks()

    def _refresh_marks(self) -> None:
        table = self.query_one(DataTable)
        for client in self.clients.values():
            table.update_cell(str(client.id), "mark", self._cell(client, "mark", 1))
        self._show_summary()

    def _marked_or_focused(self) -> list[Client]:
        """The marked clients, or else the highlighted one."""
        if self.marked:
            return [self.clients[client_id] for client_id in sorted(self.marked)]
        client = self.clients.get(self.focused_client_id() or -1)
        return [client] if client is not None else []

    def _scope(self) -> str:
        if self.marked:
            return (
                f"For the {len(self.marked)} marked clients (export writes all {self.total} shown)."
            )
        verb = "reactivate" if self.inactive_view else "deactivate"
        return (
            f"No clients marked (space marks one): re-import and export use all "
            f"{self.total} shown; {verb} uses the highlighted one."
        )

    # ------------------------------------------------------------------ bulk actions

    def action_bulk_actions(self) -> None:
        """Open the Bulk Actions menu."""
        self.app.push_screen(
            BulkActionsScreen(self._scope(), inactive_view=self.inactive_view), self._run_bulk
        )

    @on(Button.Pressed, "#clients-bulk")
    def _bulk_pressed(self) -> None:
        self.action_bulk_actions()

    def _run_bulk(self, action: BulkAction | None) -> None:
        if action == BulkAction.REAUTHORISE:
            self.action_bulk_reauthorise()
        elif action == BulkAction.REIMPORT:
            self.action_reimport()
        elif action == BulkAction.EXPORT:
            self.action_export()
        elif action == BulkAction.DEACTIVATE:
            self.action_set_active(False)
        elif action == BulkAction.REACTIVATE:
            self.action_set_active(True)

    def action_bulk_reauthorise(self) -> None:
        """Re-authorise Bulk Clients: choose the software, sign in once, tick clients."""

        def open_wizard(provider: ProviderInfo | None) -> None:
            if provider is not None:
                self.app.push_screen(BulkReauthScreen(provider))

        self.app.push_screen(ChooseSoftwareScreen(), open_wizard)

    def action_reimport(self) -> None:
        """Re-read the marked (or all shown) clients' details from the software, as a job."""
        client_ids = sorted(self.marked) if self.marked else list(self.clients)
        if not client_ids:
            self.notify("No clients shown to re-import.", severity="warning")
            return
        self.start_reimport(client_ids)

    @work(exclusive=True, group="start-job", exit_on_error=False)
    async def start_reimport(self, client_ids: list[int]) -> None:
        """``jobs.start {kind: reimport}``, then its progress screen."""
        started = JobStartResult.model_validate(
            await self.clientlink.daemon.call(
                "jobs.start", {"kind": JobKind.REIMPORT.value, "client_ids": client_ids}
            )
        )
        self.app.push_screen(JobProgressScreen(started.job_id, kind=JobKind.REIMPORT))

    def action_export(self) -> None:
        """Write the clients shown to a CSV file."""
        self.app.push_screen(
            ExportClientsScreen(self._filter_params_for_export(), f"the {self.total} clients shown")
        )

    def _filter_params_for_export(self) -> dict[str, Any]:
        params = self._filter_params()
        params.setdefault("active", True)
        return params

    def action_set_active(self, active: bool) -> None:
        """Deactivate (or reactivate) the marked or highlighted clients, after a confirm."""
        clients = self._marked_or_focused()
        if not clients:
            self.notify("No client selected: move to a row or mark some first.", severity="warning")
            return
        names = ", ".join(client.name for client in clients[:NAMES_IN_CONFIRM])
        if len(clients) > NAMES_IN_CONFIRM:
            names += f" and {len(clients) - NAMES_IN_CONFIRM} more"
        one = len(clients) == 1
        count = "1 client" if one else f"{len(clients)} clients"
        them, their = ("it", "its") if one else ("them", "their")
        if active:
            question = f"Reactivate {count} ({names})? clientlinkd watches {them} again."
        else:
            question = (
                f"Deactivate {count} ({names})? clientlinkd stops watching {them}; {their} "
                f"data is kept, and the Inactive status filter lists {them} for reactivation."
            )
        verb = "Reactivate" if active else "Deactivate"

        def change_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.set_active([client.id for client in clients], active)

        self.app.push_screen(ConfirmScreen(question, yes_label=verb), change_if_confirmed)

    @work(exclusive=True, group="set-active", exit_on_error=False)
    async def set_active(self, client_ids: list[int], active: bool) -> None:
        """``clients.reactivate`` or ``clients.deactivate``, then the list again."""
        method = "clients.reactivate" if active else "clients.deactivate"
        result = ClientsChangedResult.model_validate(
            await self.clientlink.daemon.call(method, {"client_ids": client_ids})
        )
        self.marked -= set(client_ids)
        done = len(result.changed)
        if active:
            self.notify(f"{done} clients reactivated: clientlinkd watches them again.")
        else:
            self.notify(f"{done} clients deactivated: the Inactive status filter lists them.")
        self.load_clients()

    def on_job_finished(self, message: messages.JobFinished) -> None:
        self.load_clients()  # a bulk job changed statuses and details

    def palette_commands(self) -> list[PaletteCommand]:
        client = self.clients.get(self.focused_client_id() or -1)
        commands = [
            PaletteCommand(
                "Clients: bulk actions", "The Bulk Actions menu (b)", self.action_bulk_actions
            ),
            PaletteCommand(
                "Clients: re-authorise in bulk",
                "One sign-in, then tick the clients to re-authorise",
                self.action_bulk_reauthorise,
            ),
            PaletteCommand(
                "Clients: re-import details",
                "Read the marked (or shown) clients' details from the software again",
                self.action_reimport,
            ),
            PaletteCommand(
                "Clients: export to CSV", "The clients shown, chosen columns", self.action_export
            ),
            PaletteCommand(
                "Clients: reactivate" if self.inactive_view else "Clients: deactivate",
                "The marked clients, or the highlighted one",
                lambda: self.action_set_active(self.inactive_view),
            ),
            PaletteCommand(
                "Clients: mark all shown", "Mark every client listed (*)", self.action_mark_all
            ),
            PaletteCommand("Clients: unmark all", "Clear the marks (u)", self.action_unmark_all),
        ]
        if client is not None:
            commands.append(
                PaletteCommand(
                    "Client: re-authorise",
                    f"Sign in again for {client.name}",
                    self.action_reauthorise,
                )
            )
            commands.append(
                PaletteCommand(
                    "Client: details",
                    f"{client.name}'s connection and history (Enter)",
                    self.action_details,
                )
            )
        for label, value in STATUS_FILTERS:
            if value == ALL:
                title, help_text = "Clients: show all", "Clear the status filter"
            elif value == ATTENTION:
                title = "Clients: needs attention"
                help_text = "Needs re-auth, expiring or in error, with the reason (t or !)"
            elif value == INACTIVE:
                title, help_text = "Clients: show inactive", "Deactivated clients, to reactivate"
            else:
                title = f"Clients: show {label.lower()}"
                help_text = f"Only clients whose status is {label}"
            commands.append(
                PaletteCommand(title, help_text, lambda value=value: self.action_show_status(value))
            )
        commands.append(
            PaletteCommand(
                "Clients: filter by name", "Type part of a name (/)", self.action_focus_filter
            )
        )
        commands.append(
            PaletteCommand(
                "Clients: reload", "Ask clientlinkd for the list again (F5)", self.action_reload
            )
        )
        return commands
