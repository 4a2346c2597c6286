"""A list of checkboxes where space ticks and Enter is left to the screen (its main action)."""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.widgets import SelectionList

ValueT = TypeVar("ValueT")


class Checklist(SelectionList[ValueT], inherit_bindings=False):
    """A :class:`SelectionList` whose Enter goes to the screen instead of ticking.

    On a checklist screen Enter means "do it with what is ticked" (start the job, apply,
    export); ticking is space, as everywhere in clientlink.
    """

    DEFAULT_CSS = """
    Checklist {
        height: 1fr;
        border: none;
        padding: 0;
    }
    Checklist:focus {
        border: none;
    }
    /* An unticked box is empty, so ticks read without colour too. */
    Checklist > .selection-list--button,
    Checklist > .selection-list--button-highlighted {
        color: $panel;
        background: $panel;
    }
    Checklist > .selection-list--button-selected,
    Checklist > .selection-list--button-selected-highlighted {
        color: $text-success;
        background: $panel;
        text-style: bold;
    }
    """

    BINDINGS = [
        Binding("space", "select", "Tick/untick", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("pagedown", "page_down", "Page Down", show=False),
        Binding("pageup", "page_up", "Page Up", show=False),
    ]
