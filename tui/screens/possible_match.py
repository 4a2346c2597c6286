"""Asked before a business new to one software becomes a client: is it a client already,
under other software, with the same ABN?"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from clientlink.common.protocol import PossibleMatch
from clientlink.common.wording import plural
from clientlink.tui.formatting import format_abn
from clientlink.tui.screens.base import DaemonModalScreen

NEW = "new"
"""The choice: import it as a new client (any other choice is a client id to attach to)."""


class PossibleMatchScreen(DaemonModalScreen[int | str | None]):
    """One business, the clients under other software that have its ABN, and the choices:
    attach it to one of them, import it as a new client, or leave it out (Esc)."""

    TITLE = "Already a client?"
    HELP = (
        "The business you are importing has the ABN of a client that clientlink has under "
        "other software: most likely the business moved its books, and importing it would "
        "make a second client of one business.\n\n"
        "Attach moves that client to this software: it keeps its history, contacts and "
        "invitations, and its connection becomes this sign-in's. Import as a new client "
        "makes a separate client (two businesses that share an ABN). Esc leaves it out; "
        "i imports it again later."
    )
    BINDINGS = [Binding("escape", "skip", "Leave it out", id="possible_match.skip")]

    def __init__(self, matches: list[PossibleMatch], software: str, names: dict[str, str]) -> None:
        super().__init__()
        self.matches = matches
        self.software = software
        self.names = names
        """Display names of the software, by provider key."""

    def compose(self) -> ComposeResult:
        first = self.matches[0]
        with Vertical(id="possible-match-dialog") as dialog:
            dialog.border_title = "Already a client?"
            dialog.border_subtitle = "Enter chooses · Esc leaves it out"
            question = Text(first.name, style="bold")
            question.append(f" ({self.software}, ABN {format_abn(first.abn)}) has the ABN of ")
            if len(self.matches) == 1:
                question.append(first.client_name, style="bold")
                question.append(f", a {self._software_of(first)} client")
                if not first.client_active:
                    question.append(" (deactivated)")
                question.append(". The same business in new software?")
            else:
                question.append(plural(len(self.matches), "client"))
                question.append(" under other software. Which one is it?")
            yield Static(question, id="possible-match-question")
            yield OptionList(id="possible-match-choices")

    def on_mount(self) -> None:
        choices = self.query_one(OptionList)
        for match in self.matches:
            prompt = Text("Attach to ")
            prompt.append(match.client_name, style="bold")
            prompt.append(f" (moves it from {self._software_of(match)} to {self.software})")
            choices.add_option(Option(prompt, id=str(match.client_id)))
        choices.add_option(Option(Text(f"Import as a new {self.software} client"), id=NEW))
        choices.add_option(Option(Text("Leave it out for now (Esc)"), id="skip"))
        choices.highlighted = 0
        choices.focus()

    def _software_of(self, match: PossibleMatch) -> str:
        return self.names.get(match.client_provider, match.client_provider)

    @on(OptionList.OptionSelected, "#possible-match-choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        chosen = str(event.option.id)
        if chosen == "skip":
            self.dismiss(None)
        elif chosen == NEW:
            self.dismiss(NEW)
        else:
            self.dismiss(int(chosen))

    def action_skip(self) -> None:
        """Leave the business out: neither attached nor imported."""
        self.dismiss(None)
