"""Bulk Actions: the menu of things done to many clients at once."""

from __future__ import annotations

from enum import StrEnum

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from clientlink.tui.screens.base import DaemonModalScreen
from clientlink.tui.screens.reconnect_banks import ReconnectBanksScreen, marked_client_ids


class BulkAction(StrEnum):
    """What the Bulk Actions menu can start."""

    REAUTHORISE = "reauthorise"
    REIMPORT = "reimport"
    EXPORT = "export"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    RECONNECT_BANKS = "reconnect_banks"
    TAKE_OVER = "take_over"


class BulkActionsScreen(DaemonModalScreen[BulkAction | None]):
    """A small menu over Manage Clients; Enter or the entry's number picks one."""

    TITLE = "Bulk Actions"

    HELP = (
        "Things done to many clients at once.\n\n"
        "Re-authorise Bulk Clients: one sign-in to the accounting software, then tick the "
        "clients it covers; clientlinkd re-authorises them as a job you can watch, leave and "
        "come back to (j on Manage Clients).\n"
        "Re-import client details: read each client's details from the software again and "
        "review the differences before anything changes.\n"
        "Export clients to CSV: the clients the list shows, with the columns you choose.\n"
        "Deactivate / Reactivate: stop (or resume) watching the marked clients; their data is "
        "kept. Inactive clients are listed under the Inactive status filter.\n"
        "Reconnect and Add New Banks: invite the marked clients (or those you tick) by email "
        "or SMS to connect the banks you choose.\n"
        "Take over connections: a colleague's clients (someone who left) re-authorised onto "
        "your own sign-ins, one per software or business; then revoke their old sign-ins.\n\n"
        "The actions work on the marked clients (space marks a row on Manage Clients); with "
        "none marked, re-import uses every client shown and deactivate the highlighted one."
    )
    BINDINGS = [
        Binding("escape", "close", "Close", id="bulk_actions.close"),
        Binding("1", "pick('reauthorise')", "Re-authorise", show=False, id="bulk_actions.1"),
        Binding("2", "pick('reimport')", "Re-import", show=False, id="bulk_actions.2"),
        Binding("3", "pick('export')", "Export", show=False, id="bulk_actions.3"),
        Binding("4", "pick_activation", "(De)activate", show=False, id="bulk_actions.4"),
        Binding("5", "pick('reconnect_banks')", "Reconnect banks", show=False, id="bulk_actions.5"),
        Binding("6", "pick('take_over')", "Take over", show=False, id="bulk_actions.6"),
    ]

    def __init__(self, scope: str, *, inactive_view: bool) -> None:
        super().__init__()
        self.scope = scope
        """Which clients the actions apply to, in a sentence."""
        self.inactive_view = inactive_view
        """Whether the list shows deactivated clients: then the last entry reactivates."""

    @property
    def activation(self) -> BulkAction:
        return BulkAction.REACTIVATE if self.inactive_view else BulkAction.DEACTIVATE

    def compose(self) -> ComposeResult:
        if self.inactive_view:
            activation = ("Reactivate selected clients", "watch them again")
        else:
            activation = ("Deactivate selected clients", "stop watching, keep data")
        entries = [
            (BulkAction.REAUTHORISE, "Re-authorise Bulk Clients", "one sign-in, many clients"),
            (BulkAction.REIMPORT, "Re-import client details", "review, then apply"),
            (BulkAction.EXPORT, "Export clients to CSV", "the clients shown"),
            (self.activation, *activation),
            (BulkAction.RECONNECT_BANKS, "Reconnect and Add New Banks", "invite by email/SMS"),
            (BulkAction.TAKE_OVER, "Take over connections", "a colleague's, as you"),
        ]
        title_width = max(len(title) for _, title, _ in entries)
        options = []
        for number, (action, title, note) in enumerate(entries, start=1):
            prompt = Text(f"{number}  ", style="bold")
            prompt.append(title.ljust(title_width))
            prompt.append(f"  {note}", style="dim")
            options.append(Option(prompt, id=action.value))
        with Vertical(id="bulk-actions-dialog") as dialog:
            dialog.border_title = "Bulk Actions"
            dialog.border_subtitle = "Enter picks · Esc closes · F1 help"
            yield Static(self.scope, id="bulk-actions-scope", markup=False)
            yield OptionList(*options, id="bulk-actions-menu")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#bulk-actions-menu")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.action_pick(str(event.option.id))

    def action_pick(self, action: str) -> None:
        """Choose an entry by its number."""
        if action == BulkAction.RECONNECT_BANKS:
            self._reconnect_banks()
            return
        self.dismiss(BulkAction(action))

    def _reconnect_banks(self) -> None:
        # The wizard needs nothing from the list but its marks, so the menu opens it
        # itself (over the screen it was opened from) and closes with no action to run.
        marked = marked_client_ids(self.app.screen_stack[:-1])
        self.dismiss(None)
        self.app.push_screen(ReconnectBanksScreen(marked))

    def action_pick_activation(self) -> None:
        """Deactivate, or in the Inactive view reactivate."""
        self.dismiss(self.activation)

    def action_close(self) -> None:
        """Back to Manage Clients without doing anything."""
        self.dismiss(None)
