"""The pane under the client list: the highlighted client's status, since when and why."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from clientlink.common.protocol import Client
from clientlink.tui.formatting import relative_time
from clientlink.tui.widgets.status_cell import status_text


class ClientDetailStrip(Static):
    """One client's status in a few lines; empty when no row is highlighted."""

    def show(self, client: Client | None, *, enter_reauthorises: bool = False) -> None:
        """Describe ``client`` (None: nothing); ``enter_reauthorises`` when the cursor is
        on the row's Re-Authorise button."""
        if client is None:
            self.update("")
            return
        heading = Text(client.name, style="bold", no_wrap=True, overflow="ellipsis")
        heading.append("  ")
        heading.append_text(status_text(client.status))
        if client.status_since:
            heading.append(f" since {relative_time(client.status_since)}")
        heading.append(
            "  · Enter: re-authorise" if enter_reauthorises else "  · Enter: details",
            style="dim",
        )
        if not client.active:
            why = Text(
                "Deactivated: clientlinkd does not check it. Reactivate it (Bulk Actions) to "
                "watch it again.",
                style="dim",
            )
        elif client.status_reason:
            why = Text(client.status_reason, style="italic")
        elif client.authorised_at:
            said = (
                f"Authorised by {client.owner_name or client.authorised_by or 'someone'} "
                f"{relative_time(client.authorised_at)}"
            )
            if client.next_check_at:
                said += f"; next check {relative_time(client.next_check_at)}"
            why = Text(said, style="dim")
        else:
            why = Text("Never authorised: press r to sign in for it.", style="dim")
        self.update(Group(heading, why))
