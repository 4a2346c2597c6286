"""Manage Clients: every client's connection, filtered by the daemon, re-authorised from here."""

from __future__ import annotations

from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Footer, Header

from clientlink.common.protocol import (
    CLIENTS_DEACTIVATE,
    CLIENTS_GET,
    CLIENTS_REACTIVATE,
    JOBS_START,
    AuthCompleteResult,
    Client,
    JobKind,
    ProviderInfo,
)
from clientlink.common.wording import plural
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.bulk_actions import BulkAction, BulkActionsScreen
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.export_clients import ExportClientsScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
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
NAMES_IN_CONFIRM = 3


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
        self.filters = ClientFilterBar(id="clients-filters")
        self.summary = ClientSummary(id="clients-summary")
        self.table = ClientTable(id="clients-table")
        self.detail = ClientDetailStrip("", id="clients-detail")

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
        yield Footer(show_command_palette=False)

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
        )

    def _show_detail(self) -> None:
        """The pane under the list: the highlighted client's status, since when and why."""
        self.detail.show(self.table.focused_client)

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

    @on(DataTable.RowSelected, "#clients-table")
    def _row_selected(self) -> None:
        self.action_details()

    @on(Button.Pressed, "#clients-reauthorise")
    def _reauthorise_pressed(self) -> None:
        self.action_reauthorise()

    def action_focus_filter(self) -> None:
        """Put the cursor in the name filter."""
        self.filters.focus_text()

    def action_focus_table(self) -> None:
        """Back from the filters to the list."""
        self.table.focus()

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
            client_ids = sorted(await self.table.ids_shown())  # the rows not loaded yet too
        started = await self.clientlink.daemon.call(
            JOBS_START, kind=JobKind.REIMPORT.value, client_ids=client_ids
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
        method = CLIENTS_REACTIVATE if active else CLIENTS_DEACTIVATE
        result = await self.clientlink.daemon.call(method, client_ids=client_ids)
        self.table.marked -= set(client_ids)
        done = len(result.changed)
        if active:
            self.notify(f"{plural(done, 'client')} reactivated: clientlinkd watches them again.")
        else:
            self.notify(
                f"{plural(done, 'client')} deactivated: the Inactive status filter lists them."
            )
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
