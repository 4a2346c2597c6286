"""A client's bank feeds: each bank, where it stands, when it was last seen, and what to do
about broken ones."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from clientlink.common.protocol import BankConnection
from clientlink.tui.formatting import relative_time

BANK_CONNECTION_STATES = {
    "active": ("Connected", "green"),
    "pending": ("Pending", "cyan"),
}
"""A bank connection's status in words and colour; a broken one is told by
:func:`bank_connection_state_text` from ``needs_reconnect``, whatever its status."""


def bank_connection_state_text(connection: BankConnection) -> Text:
    """Where a bank connection stands: ``Connected``, ``Broken — needs a reconnect``."""
    if connection.needs_reconnect:
        return Text("Broken — needs a reconnect", style="bold red")
    label, style = BANK_CONNECTION_STATES.get(
        connection.status, (connection.status.capitalize(), "")
    )
    return Text(label, style=style)


def bank_connections_view(connections: list[BankConnection]) -> Group | Text:
    """Each bank, where it stands and when it was last seen; then what to do about broken
    ones, since a broken feed stays broken until the client reconnects it."""
    if not connections:
        return Text("No bank connections yet: i invites this client to connect bank feeds.", "dim")
    table = Table.grid(padding=(0, 2))
    table.add_column(ratio=1)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="dim")
    for connection in connections:
        table.add_row(
            Text(connection.bank_name),
            bank_connection_state_text(connection),
            f"seen {relative_time(connection.updated_at)}",
        )
    broken = [each.bank_name for each in connections if each.needs_reconnect]
    if not broken:
        return Group(table)
    hint = Text(
        f"Invite the client to reconnect: press i and tick {', '.join(broken)}",
        style="bold yellow",
    )
    return Group(table, hint)


class BankConnectionsPane(Static):
    """The bank connections pane of a client's detail."""

    def show(self, connections: list[BankConnection]) -> None:
        self.update(bank_connections_view(connections))
