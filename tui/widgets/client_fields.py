"""A client's connection in fields: contact details, status and why, who authorised it,
and when its tokens were refreshed, are checked next and end."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from clientlink.common.protocol import Client
from clientlink.tui.formatting import format_abn, format_when
from clientlink.tui.widgets.status_cell import status_text


def client_fields(client: Client, software: str, unused_sign_ins: int = 0) -> Group:
    """The client's name over a grid of its fields; ``software`` is the provider's name."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_row("ABN", format_abn(client.abn))
    grid.add_row("Software", software)
    grid.add_row(
        "Email", Text(client.email) if client.email else Text("— (e adds one)", style="dim")
    )
    grid.add_row(
        "Mobile", Text(client.phone) if client.phone else Text("— (e adds one)", style="dim")
    )
    status = status_text(client.status)
    if client.status_since:
        status.append(f"  since {format_when(client.status_since)}")
    grid.add_row("Status", status)
    if client.status_reason:
        grid.add_row("Reason", Text(client.status_reason))
    # "Sam Lee, as sam@practice.example in Xero": the staff member and the provider user.
    authorised = Text(client.owner_label or client.authorised_by or "—")
    if client.authorised_at:
        authorised.append(f", {format_when(client.authorised_at)}")
    grid.add_row("Authorised by", authorised)
    if unused_sign_ins:
        count = unused_sign_ins
        grid.add_row(
            "Sign-ins",
            Text(
                f"{count} unused sign-in{'s' if count != 1 else ''} "
                "(clientlink grants lists them; --revoke ID revokes one)",
                style="dim",
            ),
        )
    grid.add_row("Last refresh", format_when(client.last_refresh_at))
    grid.add_row("Last verified", format_when(client.last_verified_at))
    grid.add_row("Next check", format_when(client.next_check_at))
    grid.add_row("Access token ends", format_when(client.access_expires_at))
    grid.add_row("Refresh token ends", format_when(client.refresh_expires_at))
    if client.hard_expires_at:
        grid.add_row("Grant ends for good", format_when(client.hard_expires_at))
    return Group(Text(client.name, style="bold"), grid)


class ClientFields(Static):
    """The fields pane of a client's detail ("Loading…" until the client is known)."""

    def show(self, client: Client, software: str, unused_sign_ins: int = 0) -> None:
        self.update(client_fields(client, software, unused_sign_ins))
