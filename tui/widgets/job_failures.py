"""A job's failed clients: one row each with the reason cut to fit, and the highlighted
one's whole reason."""

from __future__ import annotations

from rich.text import Text

from clientlink.common.protocol import JobItem
from clientlink.common.wording import plural
from clientlink.tui.widgets.literal_table import LiteralTable

CLIENT_COLUMN_WIDTH = 26
REASON_MIN_WIDTH = 20


def failure_detail(item: JobItem) -> Text:
    """``Name: the whole reason (3 attempts)``."""
    text = Text(f"{item.name}: ", style="bold")
    text.append(item.error or "no reason given")
    if item.attempts > 1:
        text.append(f" ({plural(item.attempts, 'attempt')})", style="dim")
    return text


class JobFailures(LiteralTable):
    """The failed items as rows, keyed by item id."""

    def add_failure_columns(self) -> None:
        self.add_column("Client", key="client", width=CLIENT_COLUMN_WIDTH)
        self.add_column("Reason", key="reason")

    def show(self, items: list[JobItem], screen_width: int) -> None:
        """Every failed item; reasons cut (with an ellipsis) to what a ``screen_width``
        screen leaves for them."""
        self.clear()
        reason_width = max(REASON_MIN_WIDTH, screen_width - CLIENT_COLUMN_WIDTH - 2 * 2 - 2)
        for item in items:
            reason = Text(item.error or "—", no_wrap=True, overflow="ellipsis")
            reason.truncate(reason_width, overflow="ellipsis")
            self.add_row(item.name, reason, key=str(item.id))

    def highlighted_key(self) -> str | None:
        """The item id under the cursor, None when the table is empty."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(row_key.value)
