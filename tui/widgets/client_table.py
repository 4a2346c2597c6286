"""The client list of Manage Clients: one row a client, a page at a time, with marks."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.message import Message
from textual.widgets import DataTable

from clientlink.common.protocol import Client, ClientsListResult, ConnectionStatus
from clientlink.tui.formatting import format_abn, relative_expiry, relative_time
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonWidget
from clientlink.tui.widgets.fixed_width_table import FixedWidthTable
from clientlink.tui.widgets.status_cell import status_text

PAGE_SIZE = 100
"""Rows fetched at a time: some eight screenfuls at 80x24, quick to query and to put in the
table (a filter keystroke waits for one page)."""
LOAD_AHEAD = 50
"""Fetch the next page once the cursor or the bottom of the view is this near the last row."""

MARK = "✓"

# Widths of the columns other than Name (content only; the table pads each by 2).
ABN_WIDTH = 14
ABN_WIDTH_NARROW = 11
"""At 80 columns the ABN's 11 digits go ungrouped, to leave room for Re-Authorise."""
STATUS_WIDTH = max(len(status.label) for status in ConnectionStatus)
EXPIRY_WIDTH_NARROW = 7
EXPIRY_WIDTH_WIDE = 12
SOFTWARE_WIDTH_NARROW = 8
SOFTWARE_WIDTH_WIDE = 17
REAUTH_BUTTON = " Re-Auth "
"""The button-like cell of a row that needs a sign-in (Enter on it, a click, or r)."""
REAUTH_WIDTH = len(REAUTH_BUTTON)
REAUTH_STATUSES = frozenset(
    {ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.EXPIRING, ConnectionStatus.NOT_CONNECTED}
)
"""Statuses a sign-in mends: their rows get the Re-Authorise button; connected rows none."""
NAME_MIN_WIDTH = 12
SINCE_WIDTH = 8
REASON_MIN_WIDTH = 12
WIDE_TABLE = 100

MARK_COLUMN = ("mark", "✓", 1)
REAUTH_COLUMN = ("reauth", "Re-Auth", REAUTH_WIDTH)
AGEING_COLUMNS = ("expiry", "since")
"""Columns showing a time relative to now, redrawn every so often (``refresh_ageing_cells``)."""

Column = tuple[str, str, int]
"""A table column: its key, its heading and its content width."""


def _ellipsise(text: str, width: int, style: str = "") -> Text:
    cell = Text(text, style=style, no_wrap=True)
    cell.truncate(width, overflow="ellipsis")
    return cell


def needs_sign_in(client: Client) -> bool:
    """Whether ``client``'s row has the Re-Authorise button."""
    return client.active and client.status in REAUTH_STATUSES


def column_layout(width: int, attention: bool) -> list[Column]:
    """The columns for a screen ``width`` wide: Name (and Reason) take what the rest leave.

    At 80 columns the fixed ones shrink first, so Re-Authorise (the last) stays in view; the
    needs-attention view (``attention``) trades ABN, Software and Expiry for Since and Reason.
    """
    width = width or 80
    wide = width >= WIDE_TABLE
    expiry = EXPIRY_WIDTH_WIDE if wide else EXPIRY_WIDTH_NARROW
    expiry_column = ("expiry", "Token expiry" if wide else "Expiry", expiry)
    status_column = ("status", "Status", STATUS_WIDTH)
    if attention:
        # Six columns padded by 2 each, plus the vertical scrollbar. No expiry: the
        # reason says when an expiring grant ends, and the others have nothing left.
        room = width - 6 * 2 - 2 - STATUS_WIDTH - SINCE_WIDTH - MARK_COLUMN[2] - REAUTH_WIDTH
        name = max(NAME_MIN_WIDTH, room * 2 // 5)
        return [
            MARK_COLUMN,
            ("name", "Name", name),
            status_column,
            ("since", "Since", SINCE_WIDTH),
            ("reason", "Reason", max(REASON_MIN_WIDTH, room - name)),
            REAUTH_COLUMN,
        ]
    software = SOFTWARE_WIDTH_WIDE if wide else SOFTWARE_WIDTH_NARROW
    abn = ABN_WIDTH if wide else ABN_WIDTH_NARROW
    # Seven columns padded by 2 each, plus the vertical scrollbar.
    room = width - 7 * 2 - 2 - STATUS_WIDTH - expiry - MARK_COLUMN[2] - REAUTH_WIDTH
    return [
        MARK_COLUMN,
        ("name", "Name", max(NAME_MIN_WIDTH, room - abn - software)),
        ("abn", "ABN", abn),
        ("software", "Software", software),
        status_column,
        expiry_column,
        REAUTH_COLUMN,
    ]


class ClientTable(DaemonWidget, FixedWidthTable):
    """The clients matching a filter, as clientlinkd last described them.

    The first page of the filter's matches is loaded (``load``); more pages load as the
    cursor or the view nears the last row. Marks (``marked``) are kept on ids, loaded or not.
    """

    class PageAdded(Message):
        """Rows of the next page were added at the bottom; the total and counts are fresh."""

    class ButtonMoved(Message):
        """The cursor went onto the Re-Authorise column or off it."""

    class ReauthoriseRequested(Message):
        """The Re-Authorise button of a row was pressed (Enter on it, or a click)."""

        def __init__(self, client_id: int) -> None:
            super().__init__()
            self.client_id = client_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.clients: dict[int, Client] = {}
        """The rows loaded, in order, as the daemon last described them."""
        self.counts: dict[str, int] = {}
        """Active clients by status, whatever the filter (the daemon's, kept up by events)."""
        self.total = 0
        """How many clients match the filter, loaded or not."""
        self.marked: set[int] = set()
        """Clients marked for a bulk action; only ever ones matching the filter, loaded or not."""
        self.shown_filter: dict[str, Any] | None = None
        """The filter the loaded rows match: later pages continue it."""
        self._layout: list[Column] = []
        self._generation = 0
        """Counts the lists shown, so a page fetched for an older one is dropped."""
        self._loading_more = False
        """Whether the next page is being fetched: one at a time, however much is scrolled."""
        self.on_reauth_button = False
        """Whether the cursor is on the Re-Authorise column (→ goes there, ← back): Enter
        then presses the row's button instead of opening the client's details."""
        self._button_row: str | None = None
        """The row whose button is drawn as the cursor's (to redraw it when that moves)."""

    def on_mount(self) -> None:
        # Scrolling with the mouse moves the view but not the cursor: both can need more rows.
        self.watch(self, "scroll_y", self._load_more_if_near_end, init=False)

    # ------------------------------------------------------------------ columns

    def set_layout(self, width: int, attention: bool) -> bool:
        """Use the columns for this width and view; True when they changed (rows redrawn
        by ``show_clients``, which the caller does with its other panes)."""
        layout = column_layout(width, attention)
        if layout == self._layout:
            return False
        self._layout = layout
        self.clear(columns=True)
        for key, label, column_width in layout:
            self.add_column(label, key=key, width=column_width)
        return True

    def _expiry(self, client: Client) -> str:
        # Without a usable grant there is nothing left to expire.
        if client.status in (ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.NOT_CONNECTED):
            return "—"
        # The grant's end is what forces a re-authorisation; access tokens renew by themselves.
        return relative_expiry(client.refresh_expires_at or client.access_expires_at)

    def _reauth_cell(self, client: Client) -> Text | str:
        if not needs_sign_in(client):
            return ""
        if self.on_reauth_button and str(client.id) == self._button_row:
            return Text(REAUTH_BUTTON, style="bold black on yellow")
        return Text(REAUTH_BUTTON, style="bold reverse")

    def _cell(self, client: Client, key: str, width: int) -> Text | str:
        if key == "reauth":
            return self._reauth_cell(client)
        if key == "mark":
            return Text(MARK, style="bold green") if client.id in self.marked else ""
        if key == "name":
            return _ellipsise(client.name, width)
        if key == "abn":
            abn = format_abn(client.abn)
            return abn.replace(" ", "") if width < ABN_WIDTH and abn[:1].isdigit() else abn
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
        return [self._cell(client, key, width) for key, _, width in self._layout]

    # ------------------------------------------------------------------ rows

    def focused_client_id(self) -> int | None:
        """The id of the client on the cursor row, if there is one."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    @property
    def focused_client(self) -> Client | None:
        """The client on the cursor row, if there is one."""
        return self.clients.get(self.focused_client_id() or -1)

    def update_client(self, client: Client) -> None:
        """Redraw the row of ``client`` (loaded) as described."""
        self.clients[client.id] = client
        for (key, _, _), value in zip(self._layout, self._cells(client), strict=True):
            self.update_cell(str(client.id), key, value)

    def _add_rows(self, items: list[Client]) -> None:
        for client in items:
            # A client that moved across a page boundary between two fetches comes twice.
            if client.id not in self.clients:
                self.clients[client.id] = client
                self.add_row(*self._cells(client), key=str(client.id))

    def show_clients(self, items: list[Client]) -> None:
        """Replace the rows by ``items``; the cursor stays on its client, or its row."""
        focused_id = self.focused_client_id()
        focused_row = self.cursor_row
        self.clear()
        self.clients = {}
        self._add_rows(items)
        if focused_id in self.clients:
            self.move_cursor(row=self.get_row_index(str(focused_id)))
        elif self.row_count:
            self.move_cursor(row=min(focused_row, self.row_count - 1))

    def refresh_ageing_cells(self) -> None:
        """Redraw the cells of times relative to now (expiry; since when, when shown).

        Only those cells: with thousands of rows loaded, whole rows would take most of a second.
        """
        ageing = [(key, width) for key, _, width in self._layout if key in AGEING_COLUMNS]
        for client in self.clients.values():
            for key, width in ageing:
                self.update_cell(str(client.id), key, self._cell(client, key, width))

    # ------------------------------------------------------------------ the button

    def _redraw_button(self) -> None:
        """Draw the cursor's button where the cursor is now, and the old one plain again."""
        old, new = self._button_row, None
        if self.row_count:
            new = str(self.focused_client_id())
        self._button_row = new
        if not any(key == "reauth" for key, _, _ in self._layout):
            return
        for row in {old, new} - {None}:
            client = self.clients.get(int(row)) if row is not None else None
            if client is not None:
                self.update_cell(row, "reauth", self._reauth_cell(client))

    def action_cursor_right(self) -> None:
        """To the row's Re-Authorise button."""
        self._set_on_button(True)

    def action_cursor_left(self) -> None:
        """Back from the Re-Authorise button to the row."""
        self._set_on_button(False)

    def _set_on_button(self, on_button: bool) -> None:
        changed = on_button != self.on_reauth_button
        self.on_reauth_button = on_button
        self._redraw_button()
        if changed:
            self.post_message(self.ButtonMoved())

    @property
    def enter_reauthorises(self) -> bool:
        """Whether Enter presses the cursor row's Re-Authorise button."""
        client = self.focused_client
        return self.on_reauth_button and client is not None and needs_sign_in(client)

    def action_select_cursor(self) -> None:
        client = self.focused_client
        if self.on_reauth_button and client is not None and needs_sign_in(client):
            self.post_message(self.ReauthoriseRequested(client.id))
            return
        super().action_select_cursor()

    async def _on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        row, column = meta.get("row"), meta.get("column")
        keys = [key for key, _, _ in self._layout]
        if (
            isinstance(row, int)
            and isinstance(column, int)
            and 0 <= row < self.row_count
            and 0 <= column < len(keys)
            and keys[column] == "reauth"
        ):
            event.stop()
            self.move_cursor(row=row)
            client = self.focused_client
            if client is not None and needs_sign_in(client):
                self._set_on_button(True)
                self.post_message(self.ReauthoriseRequested(client.id))
            return
        await super()._on_click(event)

    # ------------------------------------------------------------------ loading

    async def fetch(
        self, filter_params: dict[str, Any], offset: int = 0, limit: int | None = None
    ) -> ClientsListResult:
        """Up to ``limit`` clients matching the filter from ``offset`` (every one if None)."""
        return await fetch_clients(self.clientlink.daemon, filter_params, offset, limit)

    async def load(self, filter_params: dict[str, Any]) -> None:
        """Fetch the first page of clients matching the filter, with their total, and show it.

        Reloading the filter shown fetches as many rows as are loaded, so the cursor stays on
        its client. A page of the list shown before, still being fetched, is dropped.
        """
        self.workers.cancel_group(self, "load-more")  # its rows would belong to the old list
        limit = PAGE_SIZE
        if filter_params == self.shown_filter:
            limit = max(PAGE_SIZE, len(self.clients))
        page = await self.fetch(filter_params, limit=limit)
        self.counts = page.counts
        self.total = page.total
        self.shown_filter = filter_params
        self._generation += 1
        self.show_clients(page.items)

    async def ids_shown(self) -> set[int]:
        """Every client the list shows: each match of its filter, loaded or not, and the rows
        loaded (one whose status changed stays listed although the filter no longer matches)."""
        if self.shown_filter is None:
            return set()
        matching = await self.fetch(self.shown_filter)
        return {client.id for client in matching.items} | self.clients.keys()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._redraw_button()
        self._load_more_if_near_end()

    def _load_more_if_near_end(self) -> None:
        if self._loading_more or self.shown_filter is None or self.row_count >= self.total:
            return
        last_in_view = int(self.scroll_y) + self.scrollable_content_region.height
        if self.row_count - max(self.cursor_row, last_in_view) <= LOAD_AHEAD:
            self._loading_more = True
            self.load_more_clients()

    @work(exclusive=True, group="load-more", exit_on_error=False)
    async def load_more_clients(self) -> None:
        """Fetch the page after the loaded rows and add it to the bottom of the table."""
        generation, filter_params = self._generation, self.shown_filter
        assert filter_params is not None
        try:
            page = await self.fetch(filter_params, len(self.clients), PAGE_SIZE)
        finally:
            self._loading_more = False  # cancelled too, when a new list replaces this one
        if generation != self._generation:
            return  # the list was replaced meanwhile
        self.counts = page.counts
        self.total = page.total
        self._add_rows(page.items)
        self.post_message(self.PageAdded())
        self._load_more_if_near_end()  # a view taller than the page, or a cursor held down

    # ------------------------------------------------------------------ marks

    def toggle_mark(self, client_id: int) -> None:
        """Mark ``client_id``, or unmark it if it was marked."""
        self.marked ^= {client_id}
        client = self.clients.get(client_id)
        if client is not None:
            self.update_client(client)

    def set_marks(self, marked: set[int]) -> None:
        """Mark exactly ``marked``, redrawing only the mark cells that change."""
        changed = (self.marked ^ marked) & self.clients.keys()
        self.marked = marked
        for client_id in changed:
            self.update_cell(str(client_id), "mark", self._cell(self.clients[client_id], "mark", 1))
