"""Review a re-import: what the software says differs from what clientlink holds."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Header, SelectionList, Static

from clientlink.common import protocol as p
from clientlink.common.protocol import ItemState, JobItem
from clientlink.common.wording import plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import format_abn
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.widgets.checklist import Checklist
from clientlink.tui.widgets.job_status import reimport_left
from clientlink.tui.widgets.offline_banner import OfflineBanner

ITEMS_LIMIT = 2000
FIELD_LABELS = {
    "name": "Name",
    "legal_name": "Legal name",
    "abn": "ABN",
    "entity_type": "Entity type",
    "email": "Email",
    "phone": "Phone",
}
PROMPT_MARGIN = 8
"""What the checklist takes of the screen's width besides a prompt (box, padding, scroll)."""
DETAIL_MARGIN = 2
"""The detail pane's padding."""


def change_line(item: JobItem, width: int) -> Text:
    """One checklist line: the client, then which fields differ (``Name, ABN, Email``)."""
    fields = ", ".join(FIELD_LABELS.get(field, field) for field in item.changes or {})
    line = Text(item.name, style="bold", no_wrap=True)
    line.append(f"  {fields}", style="dim")
    line.truncate(width, overflow="ellipsis")
    return line


def change_prompt(item: JobItem, width: int = 80) -> Text:
    """A client and each field that differs, its stored value and the software's::

        Harper Holdings
          Name: Harper Holdings → Harper Group
          Legal name: Harper Holdings Pty Ltd
            → Harper Group Holdings Pty Ltd

    A pair that does not fit in ``width`` columns puts the software's value on a line of its
    own (and a value longer than a line wraps)."""
    prompt = Text(item.name, style="bold")
    for field, (stored, provided) in (item.changes or {}).items():
        label = FIELD_LABELS.get(field, field.replace("_", " ").capitalize())
        shown = format_abn if field == "abn" else str
        old = shown(stored) if stored else "(empty)"
        new = shown(provided) if provided else "(empty)"
        prompt.append(f"\n  {label}: ", style="dim")
        prompt.append(old, style="red")
        if len(f"  {label}: {old} → {new}") <= width:
            prompt.append(" → ")
        else:
            prompt.append("\n    → ")
        prompt.append(new, style="green")
    return prompt


class ReimportReviewScreen(DaemonScreen[None]):
    """The clients whose details differ, each ticked; Enter applies the ticked ones."""

    TITLE = "Review re-import"
    HELP = (
        "The clients whose details in the accounting software differ from what clientlink "
        "holds: for each, every field that differs, the stored value (red) and the "
        "software's (green, after the arrow). Nothing changes until you apply; what you "
        "applied before is not listed again.\n\n"
        "space ticks or unticks a client, a ticks all, n ticks none; Enter (or the button) "
        "applies the ticked clients' changes. Esc goes back without changing anything."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="review.back"),
        Binding("enter", "apply", "Apply selected changes", id="review.apply"),
        Binding("a", "tick_all", "All", id="review.all"),
        Binding("n", "tick_none", "None", id="review.none"),
    ]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.items: list[JobItem] = []
        """The clients that differ and whose changes are not applied yet."""
        self.applied = 0
        """How many clients' changes were applied already (from this review or another)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield Static("Loading the differences…", id="review-summary")
        # A checklist entry is one line (the client and which fields differ); the highlighted
        # client's every field, stored value and the software's, wrapped, is shown under it.
        yield Checklist[int](id="review-list")
        yield Static("", id="review-detail")
        with Horizontal(id="review-buttons"):
            yield Button(
                "Apply selected changes (Enter)", id="review-apply", variant="primary", compact=True
            )
            yield Button("Back (Esc)", id="review-back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(Checklist).focus()
        self.load_changes()

    @work(exclusive=True, group="load-changes", exit_on_error=False)
    async def load_changes(self) -> None:
        """The job's done items that found differences not applied yet."""
        job = await self.clientlink.daemon.call(
            p.JOBS_GET,
            job_id=self.job_id,
            items=True,
            item_state=ItemState.DONE.value,
            limit=ITEMS_LIMIT,
        )
        differing = [item for item in job.items or [] if item.changes]
        self.items = [item for item in differing if not item.applied_at]
        self.applied = len(differing) - len(self.items)
        width = max(40, (self.size.width or 80) - PROMPT_MARGIN)
        checklist = self.query_one(Checklist)
        checklist.clear_options()
        checklist.add_options(
            [(change_line(item, width), item.client_id, True) for item in self.items]
        )
        if self.items:
            checklist.highlighted = 0
        self._show_summary()
        self._show_detail()

    @on(SelectionList.SelectionHighlighted, "#review-list")
    def _show_detail(self) -> None:
        """The highlighted client's differences, field by field, old and new, wrapped."""
        highlighted = self.query_one(Checklist).highlighted
        detail = self.query_one("#review-detail", Static)
        if highlighted is None or not 0 <= highlighted < len(self.items):
            detail.update("")
            return
        width = max(40, (self.size.width or 80) - DETAIL_MARGIN)
        detail.update(change_prompt(self.items[highlighted], width))

    @on(SelectionList.SelectedChanged, "#review-list")
    def _show_summary(self) -> None:
        ticked = len(self.query_one(Checklist).selected)
        if not self.items:
            said = reimport_left(0, self.applied) if self.applied else "No client's details differ."
            text = Text(f"{said} There is nothing to apply. Esc goes back.")
        else:
            text = Text(reimport_left(len(self.items), self.applied) + " ")
            text.append(f"{ticked} ticked", style="bold")
            text.append(".  space ticks · a all · n none · Enter applies", style="dim")
        self.query_one("#review-summary", Static).update(text)

    def action_tick_all(self) -> None:
        """Tick every client."""
        self.query_one(Checklist).select_all()

    def action_tick_none(self) -> None:
        """Untick every client."""
        self.query_one(Checklist).deselect_all()

    def action_apply(self) -> None:
        """Apply the ticked clients' changes."""
        ticked = list(self.query_one(Checklist).selected)
        if not ticked:
            self.notify("Tick at least one client (space), or Esc to go back.", severity="warning")
            return
        self.apply_changes(ticked)

    @work(exclusive=True, group="apply-changes", exit_on_error=False)
    async def apply_changes(self, client_ids: list[int]) -> None:
        """``clients.apply_reimport`` for the ticked clients; the toast says what is left."""
        result = await self.clientlink.daemon.call(
            p.CLIENTS_APPLY_REIMPORT, job_id=self.job_id, client_ids=client_ids
        )
        left = sum(1 for item in self.items if item.client_id not in set(result.changed))
        updated = plural(len(result.changed), "client")
        said = f"{updated} updated from the software"
        said += f"; {left} still {'differs' if left == 1 else 'differ'}." if left else "."
        self.notify(said, title="Re-import applied")
        self.dismiss()

    @on(Button.Pressed, "#review-apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#review-back")
    def _back_pressed(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        """Back without changing anything."""
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Re-import: apply selected changes", "Enter", self.action_apply),
            PaletteCommand("Re-import: tick all", "a", self.action_tick_all),
            PaletteCommand("Re-import: tick none", "n", self.action_tick_none),
        ]
