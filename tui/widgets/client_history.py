"""A client's connection history, newest first: when, what, why and who."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from clientlink.common.protocol import HistoryEntry
from clientlink.tui.formatting import relative_time
from clientlink.tui.widgets.status_cell import status_text

HISTORY_KINDS = {
    "reauthorised": "Re-authorised",
    "refresh": "Refreshed",
    "refresh_failed": "Refresh failed",
}
"""Words for the daemon's history kinds; others are shown as their name."""


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


class ClientHistory(Static):
    """The history pane of a client's detail."""

    def show(self, entries: list[HistoryEntry]) -> None:
        self.update(history_table(entries))
