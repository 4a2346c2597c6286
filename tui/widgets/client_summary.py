"""The line above the client list: how many clients in each status, shown and marked."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from clientlink.common.protocol import ConnectionStatus
from clientlink.common.wording import plural
from clientlink.tui.widgets.status_cell import status_text


class ClientSummary(Static):
    """Counts of the practice's active clients by status, then what the list shows."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Connecting to clientlinkd…", id=id)

    def show(
        self,
        counts: dict[str, int],
        total: int,
        marked: int,
        *,
        inactive: bool,
        filtered: bool,
        mine: bool = False,
    ) -> None:
        """``counts`` by status; ``total`` matching the filter (``filtered``: one is set),
        deactivated ones when ``inactive``; ``marked`` for a bulk action; ``mine``: only the
        person's own connections are listed."""
        summary = Text()
        everyone = sum(counts.values())
        summary.append(plural(everyone, "client"), style="bold")
        for status in ConnectionStatus:
            count = counts.get(status.value, 0)
            if count:
                summary.append("  ")
                summary.append(f"{count} ")
                summary.append_text(status_text(status))
        if inactive:
            summary.append(f"  · {total} inactive, not watched", style="italic")
            summary.append("  (b 4 reactivates)", style="dim")
        elif filtered:
            summary.append(f"  · showing {total}", style="italic")
        if mine:
            summary.append(" of my connections (m: everyone's)", style="italic")
        if marked:
            summary.append(f"  · {marked} marked", style="bold reverse")
        self.update(summary)
