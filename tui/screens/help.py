"""F1: what the current screen does and every key that works on it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    """A scrollable sheet: the screen's purpose, then its keys."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close help", id="help.close"),
        Binding("f1", "dismiss", "Close help", show=False, id="help.close_f1"),
        Binding("q", "dismiss", "Close help", show=False, id="help.close_q"),
    ]

    def __init__(self, title: str, about: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.help_title = title
        self.about = about
        self.keys = keys

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, description in self.keys:
            keys.add_row(key, description)
        with VerticalScroll(id="help-sheet") as sheet:
            sheet.border_title = f"Help — {self.help_title}"
            sheet.border_subtitle = "Esc closes"
            yield Static(Text(self.about), id="help-about")
            yield Static(Text("Keys", style="bold underline"), id="help-keys-title")
            yield Static(keys, id="help-keys")
