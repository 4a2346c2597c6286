"""The row above the client list: the name filter, the status filter and the two actions."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Input, Select

from clientlink.common.protocol import ConnectionStatus

ALL = "all"
ATTENTION = "attention"
INACTIVE = "inactive"
ATTENTION_STATUSES = [status.value for status in ConnectionStatus if status.needs_attention]
STATUS_FILTERS: list[tuple[str, str]] = [
    ("All", ALL),
    ("Needs attention", ATTENTION),
    (ConnectionStatus.NEEDS_REAUTH.label, ConnectionStatus.NEEDS_REAUTH.value),
    (ConnectionStatus.EXPIRING.label, ConnectionStatus.EXPIRING.value),
    (ConnectionStatus.ERROR.label, ConnectionStatus.ERROR.value),
    (ConnectionStatus.CONNECTED.label, ConnectionStatus.CONNECTED.value),
    (ConnectionStatus.NOT_CONNECTED.label, ConnectionStatus.NOT_CONNECTED.value),
    ("Inactive", INACTIVE),
]


class ClientFilterBar(Horizontal):
    """What the list shows, as ``clients.list`` filter params; and Re-Authorise, Bulk Actions.

    The buttons' presses (``#clients-reauthorise``, ``#clients-bulk``) bubble to the screen.
    """

    class Changed(Message):
        """The name or the status filter changed: the list must be fetched again."""

        def __init__(self, status_changed: bool) -> None:
            super().__init__()
            self.status_changed = status_changed
            """Whether the status changed (the columns may change with it)."""

    class Submitted(Message):
        """Enter in the name filter: back to the list."""

    mine = False
    """My connections: only clients resting on the person's own sign-ins (m toggles it)."""

    def toggle_mine(self) -> None:
        """Show only my connections, or everyone's again."""
        self.mine = not self.mine
        self.post_message(self.Changed(status_changed=False))

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter by name…  (/)", id="clients-filter-text", compact=True)
        yield Select(
            STATUS_FILTERS,
            value=ALL,
            allow_blank=False,
            compact=True,
            id="clients-filter-status",
        )
        yield Button("Re-Authorise", id="clients-reauthorise", variant="primary", compact=True)
        yield Button("Bulk Actions", id="clients-bulk", compact=True)

    @property
    def status(self) -> object:
        """The status filter's value: a status, or ``ALL``, ``ATTENTION``, ``INACTIVE``."""
        return self.query_one("#clients-filter-status", Select).value

    @property
    def attention_view(self) -> bool:
        """Whether the list shows the clients needing attention (Reason and Since columns)."""
        return self.status == ATTENTION

    @property
    def inactive_view(self) -> bool:
        """Whether the list shows deactivated clients."""
        return self.status == INACTIVE

    def params(self) -> dict[str, Any]:
        """The ``filter`` of ``clients.list`` for what the bar says."""
        params: dict[str, Any] = {}
        text = self.query_one("#clients-filter-text", Input).value.strip()
        if text:
            params["text"] = text
        status = self.status
        if status == INACTIVE:
            params["active"] = False
        elif status == ATTENTION:
            params["status"] = ATTENTION_STATUSES
        elif status != ALL and isinstance(status, str):
            params["status"] = status
        if self.mine:
            params["mine"] = True
        return params

    def show_status(self, status: str) -> bool:
        """Pick ``status``; False when it was already picked (nothing changes then)."""
        select = self.query_one("#clients-filter-status", Select)
        if select.value == status:
            return False
        select.value = status
        return True

    def focus_text(self) -> None:
        """Put the cursor in the name filter."""
        self.query_one("#clients-filter-text", Input).focus()

    @on(Input.Changed, "#clients-filter-text")
    def _text_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(status_changed=False))

    @on(Input.Submitted, "#clients-filter-text")
    def _text_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())

    @on(Select.Changed, "#clients-filter-status")
    def _status_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(status_changed=True))
