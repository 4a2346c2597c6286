"""Manage Clients: every client's connection, filtered by the daemon, re-authorised from here."""

from __future__ import annotations

from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Footer, Header

from clientlink.common.protocol import (
    CLIENTS_GET,
    JOBS_GET,
    AuthCompleteResult,
    Client,
)
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.import_clients import ImportClientsScreen
from clientlink.tui.screens.invite_client import InviteClientScreen, tell_invite_outcome
from clientlink.tui.screens.manage_clients_bulk import MarkedClientsActions
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.client_detail_strip import ClientDetailStrip
from clientlink.tui.widgets.client_filter_bar import (
    ALL,
    ATTENTION,
    INACTIVE,
    STATUS_FILTERS,
    ClientFilterBar,
)
from clientlink.tui.widgets.client_summary import ClientSummary
from clientlink.tui.widgets.client_table import ClientTable
from clientlink.tui.widgets.offline_banner import OfflineBanner

__all__ = ["ALL", "ATTENTION", "INACTIVE", "ManageClientsScreen"]

EXPIRY_REFRESH_SECONDS = 30.0
"""How often the times relative to now (expiry, since when) are redrawn."""


class ManageClientsScreen(MarkedClientsActions, DaemonScreen[None]):
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
        "tokens, its history, Refresh now. Re-Authorise (r, the button above the list, or "
        "the Re-Auth button on a row that needs it: → then Enter, or a click) opens a sign-in "
        "for the client on the focused row: sign in to the software, tick the client's "
        "business, allow access. v invites the focused client to connect bank feeds by email "
        "or SMS, after showing the message it will get. The header shows unread "
        "notifications; o (or F3) opens them."
        "\n\nspace marks the highlighted client (✓) and moves down; * marks every client "
        "shown, u unmarks all. Bulk Actions (b, or the button) works on the marked clients: "
        "re-authorise many clients after one sign-in, re-import their details, export the "
        "list to CSV, deactivate or reactivate. Deactivated clients are kept and listed under "
        "the Inactive status filter. j (or F4) shows the jobs clientlinkd runs and the audit "
        "log."
    )
    BINDINGS = [
        # Short labels and a compact footer: at 80 columns every shown key fits, F10 last.
        Binding("r", "reauthorise", "Re-Auth", id="clients.reauthorise"),
        Binding("b", "bulk_actions", "Bulk", id="clients.bulk_actions"),
        Binding("space", "toggle_mark", "Mark", show=False, id="clients.mark"),
        Binding("asterisk", "mark_all", "Mark all shown", show=False, id="clients.mark_all"),
        Binding("u", "unmark_all", "Unmark all", show=False, id="clients.unmark_all"),
        Binding("j", "app.jobs", "Jobs", id="clients.jobs"),
        Binding("i", "import_file", "Import a spreadsheet", show=False, id="clients.import_file"),
        Binding("v", "invite", "Invite", show=False, id="clients.invite"),
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
        Binding("m", "toggle_mine", "My connections", show=False, id="clients.mine"),
        Binding("slash", "focus_filter", "Filter", show=False, id="clients.focus_filter"),
        Binding("f5", "reload", "Reload", show=False, id="clients.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="clients.reload_ctrl"),
        Binding("escape", "focus_table", "Back to list", show=False, id="clients.focus_table"),
        Binding("f1", "app.help", "Help", id="clients.help"),
        Binding("f3", "app.notifications", "Notices", id="clients.notifications"),
        Binding("f6", "app.communication_center", "Comms", id="clients.communication"),
        Binding("f10", "app.quit", "Quit", id="clients.quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filters = ClientFilterBar(id="clients-filters")
        self.summary = ClientSummary(id="clients-summary")
        self.table = ClientTable(id="clients-table")
        self.detail = ClientDetailStrip("", id="clients-detail")
        self.pending_invites: dict[int, str] = {}
        """Invite jobs started here whose outcome has not been told yet, with the name."""

    @property
    def clients(self) -> dict[int, Client]:
        """The rows loaded into the table, in order, as the daemon last described them.

        The first page of the filter's matches; more load as the list is scrolled.
        """
        return self.table.clients

    @property
    def counts(self) -> dict[str, int]:
        """Active clients by status, whatever the filter."""
        return self.table.counts

    @property
    def total(self) -> int:
        """How many clients match the filter, loaded or not."""
        return self.table.total

    @property
    def marked(self) -> set[int]:
        """Clients marked for a bulk action; only ever ones matching the filter, loaded or not."""
        return self.table.marked

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield self.filters
        yield self.summary
        yield self.table
        yield self.detail
        yield Footer(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.table.set_layout(self.size.width, self.attention_view)
        self.set_interval(EXPIRY_REFRESH_SECONDS, self._refresh_expiry_cells)
        self.table.focus()
        if self.clientlink.connected:
            self.load_clients()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_clients()

    def on_clients_imported(self, message: messages.ClientsImported) -> None:
        self.load_clients()

    def _filter_params(self) -> dict[str, Any]:
        return self.filters.params()

    @property
    def attention_view(self) -> bool:
        """Whether the list shows the clients needing attention (Reason and Since columns)."""
        return self.filters.attention_view

    @work(exclusive=True, group="load-clients", exit_on_error=False)
    async def load_clients(self) -> None:
        """Fetch the first page of clients matching the filter, with their total, and show it.

        A newer call (the next keystroke) cancels this one. Reloading the same filter fetches
        as many rows as were loaded, so the cursor stays on its client.
        """
        if not self.clientlink.connected:
            return  # the banner says why; the list reloads on reconnect
        await self.table.load(self._filter_params())
        self._show_summary()
        self._show_detail()
        self._drop_marks_not_matching()

    @on(ClientTable.PageAdded)
    def _page_added(self) -> None:
        self._show_summary()

    def action_reload(self) -> None:
        """Ask the daemon for the list again."""
        self.load_clients()

    @on(ClientFilterBar.Changed)
    def _filter_changed(self, event: ClientFilterBar.Changed) -> None:
        # No debounce: one page is quick to fetch, and the next keystroke cancels this load.
        if event.status_changed:
            self.set_class(self.attention_view, "-attention")
            self._relayout()
        self.load_clients()

    @on(ClientFilterBar.Submitted)
    def _filter_text_submitted(self) -> None:
        self.action_focus_table()

    # ------------------------------------------------------------------ the table

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()

    def _relayout(self) -> None:
        """The columns for this width and view; the rows again when they change."""
        if self.table.set_layout(self.size.width, self.attention_view):
            self._show_clients(list(self.clients.values()))

    def _update_row(self, client: Client) -> None:
        self.table.update_client(client)
        if client.id == self.focused_client_id():
            self._show_detail()

    def _show_clients(self, items: list[Client]) -> None:
        self.table.show_clients(items)
        self._show_summary()
        self._show_detail()

    def _show_summary(self) -> None:
        self.summary.show(
            self.counts,
            self.total,
            len(self.marked),
            inactive=self.inactive_view,
            filtered=bool(self._filter_params()),
            mine=self.filters.mine,
        )

    def _show_detail(self) -> None:
        """The pane under the list: the highlighted client's status, since when and why."""
        self.detail.show(
            self.table.focused_client, enter_reauthorises=self.table.enter_reauthorises
        )

    @on(ClientTable.ButtonMoved)
    def _button_moved(self) -> None:
        self._show_detail()

    @on(DataTable.RowHighlighted, "#clients-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    def _refresh_expiry_cells(self) -> None:
        # Relative times age: expiry, and (in the needs-attention view) since when.
        self.table.refresh_ageing_cells()
        self._show_detail()

    def focused_client_id(self) -> int | None:
        """The id of the client on the cursor row, if there is one."""
        return self.table.focused_client_id()

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
        self._update_row(client)
        self.refresh_client(event.client_id)

    def on_client_reauthorised(self, message: messages.ClientReauthorised) -> None:
        if message.event.client_id in self.clients:
            self.refresh_client(message.event.client_id)

    @work(group="refresh-client", exit_on_error=False)
    async def refresh_client(self, client_id: int) -> None:
        """Re-read one client (its expiry changes with its status) and update its row."""
        client = await self.clientlink.daemon.call(CLIENTS_GET, client_id=client_id)
        if client_id not in self.clients:
            return
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

    def action_invite(self) -> None:
        """Invite the client on the cursor row to connect bank feeds (the message first)."""
        client = self.clients.get(self.focused_client_id() or -1)
        if client is None:
            self.notify("No client selected: move to a row first.", severity="warning")
            return

        def follow(job_id: int | None) -> None:
            if job_id is not None:
                self.pending_invites[job_id] = client.name
                self.settle_invite(job_id)  # it may have ended before its event was heard

        self.app.push_screen(InviteClientScreen(client), follow)

    @work(group="settle-invite", exit_on_error=False)
    async def settle_invite(self, job_id: int) -> None:
        """Once an invite started here has ended: a toast saying it went, or why not."""
        job = await self.clientlink.daemon.call(JOBS_GET, job_id=job_id, items=True)
        if job.state.finished and job_id in self.pending_invites:
            tell_invite_outcome(self, job, self.pending_invites.pop(job_id))

    @on(DataTable.RowSelected, "#clients-table")
    def _row_selected(self) -> None:
        self.action_details()

    @on(Button.Pressed, "#clients-reauthorise")
    def _reauthorise_pressed(self) -> None:
        self.action_reauthorise()

    @on(ClientTable.ReauthoriseRequested)
    def _row_button_pressed(self, event: ClientTable.ReauthoriseRequested) -> None:
        if event.client_id == self.focused_client_id():
            self.action_reauthorise()

    def action_import_file(self) -> None:
        """Import clients from a CSV or XLSX file (a preview first)."""
        self.app.push_screen(ImportClientsScreen())

    def action_focus_filter(self) -> None:
        """Put the cursor in the name filter."""
        self.filters.focus_text()

    def action_focus_table(self) -> None:
        """Back from the filters to the list."""
        self.table.focus()

    def action_toggle_mine(self) -> None:
        """Only my connections (those resting on my sign-ins), or everyone's again."""
        self.filters.toggle_mine()
        self.action_focus_table()

    def action_show_status(self, status: str) -> None:
        """Show only clients in ``status`` (``all`` for everyone); again reloads the list."""
        if not self.filters.show_status(status):
            self.load_clients()
        self.action_focus_table()

    # ------------------------------------------------------------------ marks

    @property
    def inactive_view(self) -> bool:
        """Whether the list shows deactivated clients."""
        return self.filters.inactive_view

    def action_toggle_mark(self) -> None:
        """Mark or unmark the highlighted client, then move down a row."""
        client_id = self.focused_client_id()
        if client_id is None:
            return
        self.table.toggle_mark(client_id)
        self._show_detail()
        self._show_summary()
        self.table.action_cursor_down()

    def action_mark_all(self) -> None:
        """Mark every client matching the filter, the ones not loaded yet too."""
        if len(self.clients) >= self.total:
            self._set_marks(set(self.clients))
        else:
            self.mark_all_matching()

    @work(exclusive=True, group="mark-all", exit_on_error=False)
    async def mark_all_matching(self) -> None:
        """Ask the daemon for every client matching the filter, and mark them all."""
        filter_params = self.table.shown_filter
        shown = await self.table.ids_shown()
        if filter_params == self.table.shown_filter:  # else "all" no longer means these
            self._set_marks(shown)

    def action_unmark_all(self) -> None:
        """Clear every mark."""
        self._set_marks(set())

    def _set_marks(self, marked: set[int]) -> None:
        self.table.set_marks(marked)
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
        filter_params = self.table.shown_filter
        shown = await self.table.ids_shown()
        if filter_params == self.table.shown_filter:
            self._set_marks(self.marked & shown)

    def _marked_or_focused(self) -> list[int]:
        """The marked clients' ids, or else the highlighted one's."""
        if self.marked:
            return sorted(self.marked)
        client_id = self.focused_client_id()
        return [client_id] if client_id in self.clients else []

    # ------------------------------------------------------------------ bulk actions

    @on(Button.Pressed, "#clients-bulk")
    def _bulk_pressed(self) -> None:
        self.action_bulk_actions()

    def on_job_finished(self, message: messages.JobFinished) -> None:
        if message.event.job_id in self.pending_invites:
            self.settle_invite(message.event.job_id)
        self.load_clients()  # a bulk job changed statuses and details

    def palette_commands(self) -> list[PaletteCommand]:
        client = self.clients.get(self.focused_client_id() or -1)
        commands = [
            PaletteCommand(
                "Clients: everyone's connections"
                if self.filters.mine
                else "Clients: my connections",
                "Only the clients resting on my own sign-ins, or everyone's again (m)",
                self.action_toggle_mine,
            ),
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
                "Clients: import from a spreadsheet",
                "Add or match clients from a CSV or XLSX file, after a preview (i)",
                self.action_import_file,
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
                    "Client: invite",
                    f"Invite {client.name} to connect bank feeds, by email or SMS (v)",
                    self.action_invite,
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
