"""Correct a client's email and phone; clientlinkd validates them and saves nothing if wrong."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import Client
from clientlink.tui.screens.base import DaemonModalScreen


class EditContactScreen(DaemonModalScreen[Client | None]):
    """Two fields; Enter (or ctrl+s) saves, the daemon's refusal stays in the dialog."""

    TITLE = "Contact details"
    HELP = (
        "The email address and mobile number invitations are sent to. clientlinkd checks "
        "them when you save: an email address must be deliverable in form, a phone number "
        "must be a valid number (Australian numbers may be written as 04xx xxx xxx; "
        "clientlinkd stores them as +61…). Leave a field empty to remove it.\n\n"
        "If clientlinkd refuses, the reason is shown in red and nothing is saved."
    )
    BINDINGS = [
        Binding("escape", "close", "Cancel", id="edit_contact.close"),
        Binding("ctrl+s", "save", "Save", id="edit_contact.save"),
    ]

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def compose(self) -> ComposeResult:
        with Vertical(id="contact-dialog") as dialog:
            dialog.border_title = Text(f"Contact details — {self.client.name}")
            dialog.border_subtitle = "Enter saves · Esc cancels · F1 help"
            yield Label("Email")
            yield Input(self.client.email or "", id="contact-email", compact=True)
            yield Label("Mobile phone")
            yield Input(self.client.phone or "", id="contact-phone", compact=True)
            yield Static("", id="contact-error")
            with Horizontal(id="contact-buttons"):
                yield Button("Save (Enter)", id="contact-save", variant="primary", compact=True)
                yield Button("Cancel (Esc)", id="contact-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#contact-email", Input).focus()

    def _show_error(self, message: str) -> None:
        self.query_one("#contact-error", Static).update(Text(message, style="bold red"))
        self.add_class("-error")

    @on(Input.Submitted)
    @on(Button.Pressed, "#contact-save")
    def action_save(self) -> None:
        """Send both fields to clientlinkd."""
        email = self.query_one("#contact-email", Input).value.strip()
        phone = self.query_one("#contact-phone", Input).value.strip()
        if email == (self.client.email or "") and phone == (self.client.phone or ""):
            self.dismiss(None)  # nothing changed
            return
        self.save(email, phone)

    @work(exclusive=True, group="save-contact", exit_on_error=False)
    async def save(self, email: str, phone: str) -> None:
        """``clients.update``; a refusal (an invalid address) is shown here."""
        try:
            client = await self.clientlink.daemon.call(
                p.CLIENTS_UPDATE, client_id=self.client.id, email=email, phone=phone
            )
        except RpcError as exc:
            self._show_error(exc.message)
            return
        self.app.notify("Contact details saved.", title=client.name)
        self.dismiss(client)

    @on(Button.Pressed, "#contact-cancel")
    def action_close(self) -> None:
        """Close without saving."""
        self.dismiss(None)
