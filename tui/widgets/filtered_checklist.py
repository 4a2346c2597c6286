"""A filter field over a checklist: type to narrow it, space ticks; ticks survive filtering."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, SelectionList

from clientlink.tui.widgets.checklist import Checklist

ValueT = TypeVar("ValueT", bound=Hashable)


@dataclass(frozen=True)
class ChecklistItem(Generic[ValueT]):
    """One entry: what is shown, the value ticked, and the text the filter matches."""

    prompt: Text | str
    value: ValueT
    search: str


class FilteredChecklist(Vertical, Generic[ValueT]):
    """An Input that filters a :class:`Checklist` below it.

    ``ticked`` holds every ticked value, shown or not, so narrowing the list never loses a
    tick. Enter in the filter moves to the list; Esc there too.
    """

    DEFAULT_CSS = """
    FilteredChecklist {
        height: 1fr;
    }
    FilteredChecklist > Input {
        margin: 0 0 1 0;
    }
    FilteredChecklist > Checklist {
        background: $boost;
    }
    """

    BINDINGS = [
        Binding("escape", "focus_list", "Back to the list", show=False, id="filtered.to_list"),
    ]

    @dataclass
    class TicksChanged(Message):
        """What is ticked changed (by space, all, none or ``set_items``)."""

        filtered_checklist: FilteredChecklist
        ticked: frozenset[Hashable]

        @property
        def control(self) -> FilteredChecklist:
            return self.filtered_checklist

    def __init__(self, placeholder: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.placeholder = placeholder
        self.items: list[ChecklistItem[ValueT]] = []
        self.shown: list[ValueT] = []
        self._ticked: set[ValueT] = set()
        """What was ticked when the list was last rebuilt; the list has the shown ones."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder=self.placeholder, compact=True)
        yield Checklist[ValueT]()

    @property
    def checklist(self) -> Checklist[ValueT]:
        return self.query_one(Checklist)

    @property
    def filter_input(self) -> Input:
        return self.query_one(Input)

    @property
    def ticked(self) -> set[ValueT]:
        """Every ticked value, shown or filtered out; read from the list, never stale."""
        return (self._ticked - set(self.shown)) | set(self.checklist.selected)

    def set_items(self, items: Iterable[ChecklistItem[ValueT]], ticked: Iterable[ValueT]) -> None:
        """Replace the entries and what is ticked."""
        self.items = list(items)
        known = {item.value for item in self.items}
        self.shown = []
        self._ticked = set(ticked) & known
        self._rebuild()
        self.post_message(self.TicksChanged(self, frozenset(self.ticked)))

    def ticked_in_order(self) -> list[ValueT]:
        """The ticked values in the order the entries were given, shown or not."""
        ticked = self.ticked
        return [item.value for item in self.items if item.value in ticked]

    def _rebuild(self) -> None:
        self._ticked = self.ticked
        text = self.filter_input.value.strip().casefold()
        shown = [item for item in self.items if text in item.search.casefold()]
        self.shown = [item.value for item in shown]
        checklist = self.checklist
        with self.app.batch_update():
            checklist.clear_options()
            checklist.add_options(
                [(item.prompt, item.value, item.value in self._ticked) for item in shown]
            )
        if shown:
            checklist.highlighted = 0

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._rebuild()

    @on(Input.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.checklist.focus()

    @on(SelectionList.SelectedChanged)
    def _ticks_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        self.post_message(self.TicksChanged(self, frozenset(self.ticked)))

    def tick_all(self) -> None:
        """Tick every entry shown."""
        self.checklist.select_all()

    def tick_none(self) -> None:
        """Untick every entry shown."""
        self.checklist.deselect_all()

    def focus_filter(self) -> None:
        """Put the cursor in the filter."""
        self.filter_input.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_list":
            return self.filter_input.has_focus  # otherwise Esc belongs to the screen
        return True

    def action_focus_list(self) -> None:
        """From the filter back to the list."""
        self.checklist.focus()
