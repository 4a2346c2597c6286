"""A client's communication timeline: every invitation sent, newest first, one row each,
and the highlighted one in full (the columns cut it short)."""

from __future__ import annotations

from rich.text import Text

from clientlink.common.protocol import Bank, Invitation
from clientlink.tui.formatting import format_when, relative_time
from clientlink.tui.screens.invite_client import CHANNEL_WORDS
from clientlink.tui.widgets.literal_table import LiteralTable

TIMELINE_COLUMNS = (
    ("When", "when", 8),
    ("Via", "channel", 5),
    ("Template", "template", 14),
    ("Banks", "banks", 14),
    ("State", "state", 14),
    ("By", "actor", 8),
)
"""Fits 80 columns; the line under the table shows the highlighted invitation in full."""

INVITATION_STATES = {
    "queued": ("Queued", "cyan"),
    "sending": ("Sending", "cyan"),
    "sent": ("Sent", ""),
    "delivered": ("Delivered", ""),
    "opened": ("Opened", "bold"),
    "connected": ("Bank connected", "bold green"),
    "failed": ("Failed", "bold red"),
    "uncertain": ("Uncertain", "bold yellow"),
}
"""Each invitation state in words and colour; uncertain is yellow: a person must check."""


def invitation_state_text(state: str) -> Text:
    """An invitation's state in its colour: ``Bank connected`` in green."""
    label, style = INVITATION_STATES.get(state, (state.capitalize(), ""))
    return Text(label, style=style)


def banks_in_words(invitation: Invitation, banks: dict[str, Bank], *, short: bool = False) -> str:
    """The banks an invitation asks for, by name (their ids where names are unknown)."""
    if not invitation.bank_ids:
        return "client chooses"
    names = []
    for bank_id in invitation.bank_ids:
        bank = banks.get(bank_id)
        if bank is None:
            names.append(bank_id)  # the bank-feed service could not be asked
        else:
            names.append((bank.short_name or bank.name) if short else bank.name)
    return ", ".join(names)


def invitation_detail(
    invitation: Invitation, template_names: dict[str, str], banks: dict[str, Bank]
) -> Text:
    """One invitation in full: its state and error, how and when, the template and banks."""
    text = invitation_state_text(invitation.state)
    if invitation.error:
        style = "yellow" if invitation.state == "uncertain" else "red"
        text.append(f": {invitation.error}", style=style)
    text.append(
        f"\n{CHANNEL_WORDS.get(invitation.channel, invitation.channel)}, "
        f"{format_when(invitation.sent_at or invitation.created_at)}, "
        f"by {invitation.actor}",
        style="dim",
    )
    template = template_names.get(invitation.template_id, invitation.template_id)
    text.append(f"\nTemplate: {template} · Banks: {banks_in_words(invitation, banks)}")
    if invitation.reminder_of:
        text.append(" · a reminder", style="italic")
    if invitation.link_expires_at:
        text.append(f"\nLink works until {format_when(invitation.link_expires_at)}", "dim")
    return text


class InvitationTimeline(LiteralTable):
    """The invitations as rows, keyed by invitation id; the cursor stays on its invitation
    across reloads."""

    def add_timeline_columns(self) -> None:
        for label, key, width in TIMELINE_COLUMNS:
            self.add_column(label, key=key, width=width)

    def show(
        self,
        invitations: list[Invitation],
        template_names: dict[str, str],
        banks: dict[str, Bank],
        highlighted: Invitation | None,
    ) -> None:
        """Every invitation as a row; the cursor back on ``highlighted`` if still listed."""
        self.clear()
        for invitation in invitations:
            self.add_row(
                relative_time(invitation.sent_at or invitation.created_at),
                CHANNEL_WORDS.get(invitation.channel, invitation.channel),
                template_names.get(invitation.template_id, invitation.template_id),
                banks_in_words(invitation, banks, short=True),
                invitation_state_text(invitation.state),
                invitation.actor,
                key=str(invitation.id),
            )
        if highlighted is not None and str(highlighted.id) in self.rows:
            self.move_cursor(row=self.get_row_index(str(highlighted.id)))

    def highlighted(self, invitations: list[Invitation]) -> Invitation | None:
        """The invitation under the cursor (the newest until it moves)."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return next((each for each in invitations if str(each.id) == row_key.value), None)
