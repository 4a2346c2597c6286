"""How a connection status looks wherever the TUI shows one."""

from __future__ import annotations

from rich.text import Text

from clientlink.common.protocol import ConnectionStatus

STATUS_STYLES: dict[ConnectionStatus, str] = {
    ConnectionStatus.CONNECTED: "green",
    ConnectionStatus.EXPIRING: "yellow",
    ConnectionStatus.NEEDS_REAUTH: "bold red",
    ConnectionStatus.ERROR: "magenta",
    ConnectionStatus.NOT_CONNECTED: "dim",
}


def status_text(status: ConnectionStatus | str) -> Text:
    """The status's label in its colour, for a table cell or a summary line."""
    try:
        known = ConnectionStatus(status)
    except ValueError:
        return Text(str(status))
    return Text(known.label, style=STATUS_STYLES[known])
