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
from clientlink.common.wording import agree, plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.widgets.checklist import Checklist
from clientlink.tui.widgets.offline_banner import OfflineBanner

ITEMS_LIMIT = 2000
FIELD_LABELS = {
    "name": "Name",
    "legal_name": "Legal name",
    "abn": "ABN",
    "email": "Email",
    "phone": "Phone",
}


def change_prompt(item: JobItem) -> Text:
    """A client and each field that differs: ``ABN: 12 345… → 98 765…``."""
    prompt = Text(item.name, style="bold")
    for field, (stored, provided) in (item.changes or {}).items():
        prompt.append(f"\n  {FIELD_LABELS.get(field, field)}: ", style="dim")
        prompt.append(stored or "(empty)", style="red")
        prompt.append(" → ")
        prompt.append(provided or "(empty)", style="green")
    return prompt


class ReimportReviewScreen(DaemonScreen[None]):
    """The clients whose details differ, each ticked; Enter applies the ticked ones."""

    TITLE = "Review re-import"
    HELP = (
        "The clients whose details in the accounting software differ from what clientlink "
        "holds: for each, the field, the stored value (red) and the software's (green). "
        "Nothing has changed yet.\n\n"
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

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield Static("Loading the differences…", id="review-summary")
        yield Checklist[int](id="review-list")
        # A checklist entry shows one line (its name): the differences of the highlighted
        # client are shown in full here.
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
        """The job's done items that found differences."""
        job = await self.clientlink.daemon.call(
            p.JOBS_GET,
            job_id=self.job_id,
            items=True,
            item_state=ItemState.DONE.value,
            limit=ITEMS_LIMIT,
        )
        self.items = [item for item in job.items or [] if item.changes]
        checklist = self.query_one(Checklist)
        checklist.clear_options()
        checklist.add_options([(change_prompt(item), item.client_id, True) for item in self.items])
        if self.items:
            checklist.highlighted = 0
        self._show_summary()
        self._show_detail()

    @on(SelectionList.SelectionHighlighted, "#review-list")
    def _show_detail(self) -> None:
        """The highlighted client's differences, field by field."""
        highlighted = self.query_one(Checklist).highlighted
        detail = self.query_one("#review-detail", Static)
        if highlighted is None or not 0 <= highlighted < len(self.items):
            detail.update("")
            return
        detail.update(change_prompt(self.items[highlighted]))

    @on(SelectionList.SelectedChanged, "#review-list")
    def _show_summary(self) -> None:
        ticked = len(self.query_one(Checklist).selected)
        if not self.items:
            text = Text("No client's details differ: there is nothing to apply. Esc goes back.")
        else:
            text = Text(
                f"{plural(len(self.items), 'client')} "
                f"{agree(len(self.items), 'differs', 'differ')} from the software; "
            )
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
        """``clients.apply_reimport`` for the ticked clients."""
        result = await self.clientlink.daemon.call(
            p.CLIENTS_APPLY_REIMPORT, job_id=self.job_id, client_ids=client_ids
        )
        self.notify(
            f"{plural(len(result.changed), 'client')} updated from the software.",
            title="Re-import applied",
        )
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
