"""Manage Clients: every client's connection, filtered by the daemon, re-authorised from here."""

from __future__ import annotations

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
from clientlink.tui.widgets.fixed_width_table import FixedWidthTable
from clientlink.tui.widgets.offline_banner import OfflineBanner
from clientlink.tui.widgets.status_cell import status_text

PAGE_SIZE = 100
"""Rows fetched at a time: some eight screenfuls at 80x24, quick to query and to put in the
table (a filter keystroke waits for one page)."""
MAX_PAGE_SIZE = 1000
"""The most ``clients.list`` returns at once: for reloads and for collecting every match."""
LOAD_AHEAD = 50
"""Fetch the next page once the cursor or the bottom of the view is this near the last row."""
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
AGEING_COLUMNS = ("expiry", "since")
"""Columns showing a time relative to now, redrawn every EXPIRY_REFRESH_SECONDS."""

Column = tuple[str, str, int]
"""A table column: its key, its heading and its content width."""


def _ellipsise(text: str, width: int, style: str = "") -> Text:
    cell = Text(text, style=style, no_wrap=True)
    cell.truncate(width, overflow="ellipsis")
    return cell


def _names_and_more(loaded_names: list[str], count: int) -> str:
    """A few of ``count`` clients by name, "A, B, C and 7 more".

    Marks can be on clients not loaded yet (mark all): only the loaded ones have names.
    """
    named = loaded_names[:NAMES_IN_CONFIRM]
    more = count - len(named)
    if not more:
        return ", ".join(named)
    return f"{', '.join(named)} and {more} more" if named else "none of them loaded yet"


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
        """The rows loaded into the table, in order, as the daemon last described them.

        The first page of the filter's matches; more load as the list is scrolled.
        """
        self.counts: dict[str, int] = {}
        self.total = 0
        """How many clients match the filter, loaded or not."""
        self.marked: set[int] = set()
        """Clients marked for a bulk action; only ever ones matching the filter, loaded or not."""
        self._columns: list[Column] = []
        self._shown_filter: dict[str, Any] | None = None
        """The filter the loaded rows match: later pages continue it."""
        self._generation = 0
        """Counts the lists shown, so a page fetched for an older one is dropped."""
        self._loading_more = False
        """Whether the next page is being fetched: one at a time, however much is scrolled."""

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
        yield FixedWidthTable(cursor_type="row", zebra_stripes=True, id="clients-table")
        yield Static("", id="clients-detail")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self._build_columns()
        self.set_interval(EXPIRY_REFRESH_SECONDS, self._refresh_expiry_cells)
        table = self.query_one(DataTable)
        table.focus()
        # Scrolling with the mouse moves the view but not the cursor: both can need more rows.
        self.watch(table, "scroll_y", self._load_more_if_near_end, init=False)
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

    async def _fetch_clients(
        self, filter_params: dict[str, Any], offset: int = 0, limit: int | None = None
    ) -> ClientsListResult:
        """Up to ``limit`` clients matching the filter from ``offset`` (every one if None).

        Pages of at most 1000, the daemon's limit; the total and counts are the last page's.
        """
        daemon = self.clientlink.daemon
        items: list[Client] = []
        while True:
            wanted = MAX_PAGE_SIZE if limit is None else min(MAX_PAGE_SIZE, limit - len(items))
            page = ClientsListResult.model_validate(
                await daemon.call(
                    "clients.list",
                    {"filter": filter_params, "offset": offset + len(items), "limit": wanted},
                )
            )
            items.extend(page.items)
            if (
                not page.items
                or offset + len(items) >= page.total
                or (limit is not None and len(items) >= limit)
            ):
                return ClientsListResult(total=page.total, items=items, counts=page.counts)

    @work(exclusive=True, group="load-clients", exit_on_error=False)
    async def load_clients(self) -> None:
        """Fetch the first page of clients matching the filter, with their total, and show it.

        A newer call (the next keystroke) cancels this one. Reloading the same filter fetches
        as many rows as were loaded, so the cursor stays on its client.
        """
        if not self.clientlink.connected:
            return  # the banner says why; the list reloads on reconnect
        self.workers.cancel_group(self, "load-more")  # its rows would belong to the old list
        filter_params = self._filter_params()
        limit = PAGE_SIZE
        if filter_params == self._shown_filter:
            limit = max(PAGE_SIZE, len(self.clients))
        page = await self._fetch_clients(filter_params, limit=limit)
        self.counts = page.counts
        self.total = page.total
        self._shown_filter = filter_params
        self._generation += 1
        self._show_clients(page.items)
        self._drop_marks_not_matching()

    def _load_more_if_near_end(self) -> None:
        table = self.query_one(DataTable)
        if self._loading_more or self._shown_filter is None or table.row_count >= self.total:
            return
        last_in_view = int(table.scroll_y) + table.scrollable_content_region.height
        if table.row_count - max(table.cursor_row, last_in_view) <= LOAD_AHEAD:
            self._loading_more = True
            self.load_more_clients()

    @work(exclusive=True, group="load-more", exit_on_error=False)
    async def load_more_clients(self) -> None:
        """Fetch the page after the loaded rows and add it to the bottom of the table."""
        generation, filter_params = self._generation, self._shown_filter
        assert filter_params is not None
        try:
            page = await self._fetch_clients(filter_params, len(self.clients), PAGE_SIZE)
        finally:
            self._loading_more = False  # cancelled too, when a new list replaces this one
        if generation != self._generation:
            return  # the list was replaced meanwhile
        self.counts = page.counts
        self.total = page.total
        self._add_rows(page.items)
        self._show_summary()
        self._load_more_if_near_end()  # a view taller than the page, or a cursor held down

    def action_reload(self) -> None:
        """Ask the daemon for the list again."""
        self.load_clients()

    @on(Input.Changed, "#clients-filter-text")
    def _filter_text_changed(self) -> None:
        # No debounce: one page is quick to fetch, and the next keystroke cancels this load.
        self.load_clients()

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

    def _add_rows(self, items: list[Client]) -> None:
        table = self.query_one(DataTable)
        for client in items:
            # A client that moved across a page boundary between two fetches comes twice.
            if client.id not in self.clients:
                self.clients[client.id] = client
                table.add_row(*self._cells(client), key=str(client.id))

    def _show_clients(self, items: list[Client]) -> None:
        table = self.query_one(DataTable)
        focused_id = self.focused_client_id()
        focused_row = table.cursor_row
        table.clear()
        self.clients = {}
        self._add_rows(items)
        if focused_id in self.clients:
            table.move_cursor(row=table.get_row_index(str(focused_id)))
        elif table.row_count:
            table.move_cursor(row=min(focused_row, table.row_count - 1))
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
        self._load_more_if_near_end()

    def _refresh_expiry_cells(self) -> None:
        # Relative times age: expiry, and (in the needs-attention view) since when. Only those
        # cells: with thousands of rows loaded, whole rows would take most of a second.
        table = self.query_one(DataTable)
        ageing = [(key, width) for key, _, width in self._columns if key in AGEING_COLUMNS]
        for client in self.clients.values():
            for key, width in ageing:
                table.update_cell(str(client.id), key, self._cell(client, key, width))
        self._show_detail()

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
        """Mark every client matching the filter, the ones not loaded yet too."""
        if len(self.clients) >= self.total:
            self._set_marks(set(self.clients))
        else:
            self.mark_all_matching()

    @work(exclusive=True, group="mark-all", exit_on_error=False)
    async def mark_all_matching(self) -> None:
        """Ask the daemon for every client matching the filter, and mark them all."""
        filter_params = self._shown_filter
        shown = await self._ids_shown()
        if filter_params == self._shown_filter:  # else "all" no longer means these
            self._set_marks(shown)

    async def _ids_shown(self) -> set[int]:
        """Every client the list shows: each match of its filter, loaded or not, and the rows
        loaded (one whose status changed stays listed although the filter no longer matches)."""
        if self._shown_filter is None:
            return set()
        matching = await self._fetch_clients(self._shown_filter)
        return {client.id for client in matching.items} | self.clients.keys()

    def action_unmark_all(self) -> None:
        """Clear every mark."""
        self._set_marks(set())

    def _set_marks(self, marked: set[int]) -> None:
        table = self.query_one(DataTable)
        changed = (self.marked ^ marked) & self.clients.keys()
        self.marked = marked
        for client_id in changed:
            table.update_cell(
                str(client_id), "mark", self._cell(self.clients[client_id], "mark", 1)
            )
        self._show_summary()

    def _drop_marks_not_matching(self) -> None:
        """After a reload, keep only the marks on clients the new list matches."""
        if self.marked <= self.clients.keys():
            return
        if len(self.clients) >= self.total:
            self._set_marks(self.marked & self.clients.keys())
        else:
            self.keep_marks_matching()

    @work(exclusive=True, group="keep-marks", exit_on_error=False)
    async def keep_marks_matching(self) -> None:
        """Unmark the clients the filter no longer matches, loaded or not."""
        filter_params = self._shown_filter
        shown = await self._ids_shown()
        if filter_params == self._shown_filter:
            self._set_marks(self.marked & shown)

    def _marked_or_focused(self) -> list[int]:
        """The marked clients' ids, or else the highlighted one's."""
        if self.marked:
            return sorted(self.marked)
        client_id = self.focused_client_id()
        return [client_id] if client_id in self.clients else []

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
        if not self.marked and not self.clients:
            self.notify("No clients shown to re-import.", severity="warning")
            return
        self.start_reimport(sorted(self.marked) if self.marked else None)

    @work(exclusive=True, group="start-job", exit_on_error=False)
    async def start_reimport(self, client_ids: list[int] | None) -> None:
        """``jobs.start {kind: reimport}`` (every client shown if None), then its progress."""
        if client_ids is None:
            client_ids = sorted(await self._ids_shown())  # the rows not loaded yet too
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
        client_ids = self._marked_or_focused()
        if not client_ids:
            self.notify("No client selected: move to a row or mark some first.", severity="warning")
            return
        chosen = set(client_ids)
        names = _names_and_more(
            [client.name for client in self.clients.values() if client.id in chosen],
            len(client_ids),
        )
        one = len(client_ids) == 1
        count = "1 client" if one else f"{len(client_ids)} clients"
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
                self.set_active(client_ids, active)

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
