"""Reconnect and Add New Banks: invite many clients to connect chosen banks, as one job.

Three steps on one screen: the clients (skipped when clients are marked on Manage
Clients), the banks, the template. The template step says which clients have no address
for its channel (their invitations will fail). Send starts an ``invite`` job in
clientlinkd and hands over to the job's progress screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.protocol import (
    Channel,
    Client,
    InvitationTemplate,
    JobKind,
)
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.invite_client import (
    CHANNEL_WORDS,
    MISSING_CONTACT,
    bank_items,
    contact_for,
)
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.widgets.filtered_checklist import ChecklistItem, FilteredChecklist
from clientlink.tui.widgets.offline_banner import OfflineBanner

NAMES_SHOWN = 5


class Step(StrEnum):
    CLIENTS = "step-clients"
    BANKS = "step-banks"
    TEMPLATE = "step-template"


def marked_client_ids(stack: Iterable[Screen[object]]) -> list[int]:
    """The clients marked with space on Manage Clients (the topmost screen holding marks)."""
    for screen in reversed(list(stack)):
        marked = getattr(screen, "marked", None)
        if isinstance(marked, set) and marked:
            return sorted(marked)
    return []


def client_item(client: Client) -> ChecklistItem[int]:
    """A client as a checklist entry, with where an invitation could go."""
    prompt = Text(client.name)
    reachable = [CHANNEL_WORDS[channel] for channel in Channel if contact_for(client, channel)]
    prompt.append(f"  {' · '.join(reachable) or 'no email or mobile'}", style="dim")
    return ChecklistItem(prompt, client.id, client.name)


def names_in_words(names: list[str]) -> str:
    """The first few names, then how many more."""
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


class ReconnectBanksScreen(DaemonScreen[None]):
    """Select clients, select banks, choose the template, send."""

    TITLE = "Reconnect and Add New Banks"
    HELP = (
        "Invite clients to connect bank feeds: each gets a message with a personal link to "
        "add exactly the banks you choose.\n\n"
        "1. Clients: the clients marked on Manage Clients (space marks them there); with "
        "none marked, tick them here (space, a all, n none, / filter).\n"
        "2. Banks: tick one or more banks (/ filters).\n"
        "3. Template: choose the email or SMS template (write your own in the Communication "
        "Center, F6). Clients without an email address (or mobile number) for it are named: "
        "their invitations fail until the address is added on the client's screen (e).\n\n"
        "Enter goes to the next step and, on the last, sends: clientlinkd sends the "
        "invitations as a job and its progress screen follows it. Esc goes back a step."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="reconnect.back"),
        Binding("enter", "advance", "Next / Send", id="reconnect.advance"),
        Binding("ctrl+s", "send", "Send", show=False, id="reconnect.send"),
        Binding("a", "tick_all", "All", id="reconnect.all"),
        Binding("n", "tick_none", "None", id="reconnect.none"),
        Binding("slash", "focus_filter", "Filter", id="reconnect.filter"),
    ]

    step: reactive[Step] = reactive(Step.CLIENTS, init=False, always_update=True)
    """The step shown; the clients step only when none were marked."""

    def __init__(self, client_ids: list[int] | None = None) -> None:
        super().__init__()
        self.preselected = list(client_ids or [])
        """The clients marked on Manage Clients: then the clients step is skipped."""
        self.clients: dict[int, Client] = {}
        self.templates: dict[str, InvitationTemplate] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Vertical(id="reconnect-body"):
            yield Static("Loading…", id="reconnect-summary")
            with ContentSwitcher(initial=Step.CLIENTS.value, id="reconnect-steps"):
                yield FilteredChecklist[int]("Filter clients by name…  (/)", id=Step.CLIENTS)
                yield FilteredChecklist[str]("Filter banks…  (/)", id=Step.BANKS)
                with Vertical(id=Step.TEMPLATE):
                    yield OptionList(id="reconnect-templates")
                    yield Static("", id="reconnect-reach")
            with Horizontal(id="reconnect-buttons"):
                yield Button("Next (Enter)", id="reconnect-next", variant="primary", compact=True)
                yield Button("Send (Enter)", id="reconnect-send", variant="primary", compact=True)
                yield Button("Back (Esc)", id="reconnect-back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.step = Step.BANKS if self.preselected else Step.CLIENTS
        self.load_choices()

    @work(exclusive=True, group="reconnect-choices", exit_on_error=False)
    async def load_choices(self) -> None:
        """Every client, the banks and the templates, from clientlinkd."""
        daemon = self.clientlink.daemon
        clients = (await fetch_clients(daemon, {"active": None})).items
        self.clients = {client.id: client for client in clients}
        self.query_one(f"#{Step.CLIENTS}", FilteredChecklist).set_items(
            [client_item(client) for client in clients if client.active], self.preselected
        )
        banks = (await daemon.call(p.BANKS_LIST)).items
        self.query_one(f"#{Step.BANKS}", FilteredChecklist).set_items(bank_items(banks), ())
        templates = (await daemon.call(p.TEMPLATES_LIST)).items
        self.templates = {template.id: template for template in templates}
        options = self.query_one("#reconnect-templates", OptionList)
        options.clear_options()
        for template in templates:
            prompt = Text(f"{CHANNEL_WORDS[template.channel]:<6}", style="bold")
            prompt.append(template.name)
            if template.builtin:
                prompt.append("  built-in", style="dim")
            options.add_option(Option(prompt, id=template.id))
        options.highlighted = 0
        self._show_summary()

    # ------------------------------------------------------------------ what is chosen

    @property
    def client_ids(self) -> list[int]:
        """The clients to invite."""
        if self.preselected:
            return self.preselected
        return self.query_one(f"#{Step.CLIENTS}", FilteredChecklist).ticked_in_order()

    @property
    def bank_ids(self) -> list[str]:
        """The banks each link pre-selects."""
        return self.query_one(f"#{Step.BANKS}", FilteredChecklist).ticked_in_order()

    @property
    def template(self) -> InvitationTemplate | None:
        """The highlighted template."""
        options = self.query_one("#reconnect-templates", OptionList)
        option = options.highlighted_option
        return self.templates.get(str(option.id)) if option is not None else None

    def unreachable(self, channel: Channel) -> list[Client]:
        """The chosen clients with no address for ``channel``: their invitations fail."""
        return [
            client
            for client_id in self.client_ids
            if (client := self.clients.get(client_id)) is not None
            and not contact_for(client, channel)
        ]

    # ------------------------------------------------------------------ showing

    def watch_step(self, step: Step) -> None:
        self.query_one(ContentSwitcher).current = step.value
        for each in Step:
            self.set_class(step == each, f"-{each.value}")
        if step == Step.TEMPLATE:
            self.query_one("#reconnect-templates", OptionList).focus()
        else:
            self.query_one(f"#{step}", FilteredChecklist).checklist.focus()
        self._show_summary()
        self.refresh_bindings()

    @on(FilteredChecklist.TicksChanged)
    def _ticks_changed(self) -> None:
        self._show_summary()

    @on(OptionList.OptionHighlighted, "#reconnect-templates")
    def _template_highlighted(self) -> None:
        self._show_reach()

    @on(OptionList.OptionSelected, "#reconnect-templates")
    def _template_selected(self) -> None:
        self.action_send()

    def _show_summary(self) -> None:
        clients, banks = len(self.client_ids), len(self.bank_ids)
        source = " (marked on Manage Clients)" if self.preselected else ""
        numbers = {Step.CLIENTS: 1, Step.BANKS: 2, Step.TEMPLATE: 3}
        text = Text(f"Step {numbers[self.step]} of 3 · ", style="dim")
        text.append(f"{clients} clients{source} · {banks} banks", style="bold")
        hints = {
            Step.CLIENTS: "Tick the clients to invite: space ticks, a all, n none, / filters. "
            "Enter: next",
            Step.BANKS: "Tick the banks to connect (one or more): space ticks, / filters. "
            "Enter: next",
            Step.TEMPLATE: "Choose the template (↑↓); Enter sends.",
        }
        text.append(f"\n{hints[self.step]}", style="dim")
        self.query_one("#reconnect-summary", Static).update(text)
        self._show_reach()

    def _show_reach(self) -> None:
        template = self.template
        reach = self.query_one("#reconnect-reach", Static)
        if template is None:
            reach.update("")
            return
        missing = self.unreachable(template.channel)
        total = len(self.client_ids)
        if not missing:
            what = "an email address" if template.channel == Channel.EMAIL else "a mobile number"
            line = Text(f"All {total} clients have {what}.", style="green")
        else:
            line = Text(
                f"{len(missing)} of {total} clients have {MISSING_CONTACT[template.channel]} "
                "and will fail: ",
                style="bold yellow",
            )
            line.append(names_in_words([client.name for client in missing]))
            line.append("\nAdd it on the client's screen (e), or choose the other channel.", "dim")
        if template.subject:
            line.append(f"\nSubject: {template.subject}", style="dim")
        reach.update(line)

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "send":
            return self.step == Step.TEMPLATE
        if action in ("tick_all", "tick_none", "focus_filter"):
            return self.step != Step.TEMPLATE
        return True

    def _current_list(self) -> FilteredChecklist | None:
        if self.step == Step.TEMPLATE:
            return None
        return self.query_one(f"#{self.step}", FilteredChecklist)

    def action_tick_all(self) -> None:
        """Tick every entry shown."""
        if (current := self._current_list()) is not None:
            current.tick_all()

    def action_tick_none(self) -> None:
        """Untick every entry shown."""
        if (current := self._current_list()) is not None:
            current.tick_none()

    def action_focus_filter(self) -> None:
        """Put the cursor in the filter."""
        if (current := self._current_list()) is not None:
            current.focus_filter()

    def action_advance(self) -> None:
        """Enter: the next step, or on the last one, send."""
        if self.step == Step.TEMPLATE:
            self.action_send()
        else:
            self.action_next()

    @on(Button.Pressed, "#reconnect-next")
    def action_next(self) -> None:
        """On to the next step, once this one has something ticked."""
        if self.step == Step.CLIENTS:
            if not self.client_ids:
                self.notify("Tick at least one client (space, or a for all).", severity="warning")
                return
            self.step = Step.BANKS
        elif self.step == Step.BANKS:
            if not self.bank_ids:
                self.notify("Tick at least one bank (space).", severity="warning")
                return
            self.step = Step.TEMPLATE

    @on(Button.Pressed, "#reconnect-back")
    def action_back(self) -> None:
        """Back a step; from the first, close."""
        if self.step == Step.TEMPLATE:
            self.step = Step.BANKS
        elif self.step == Step.BANKS and not self.preselected:
            self.step = Step.CLIENTS
        else:
            self.dismiss()

    @on(Button.Pressed, "#reconnect-send")
    def action_send(self) -> None:
        """Send the invitations as one job."""
        template = self.template
        if self.step != Step.TEMPLATE or template is None:
            return
        self.start_job(self.client_ids, template, self.bank_ids)

    @work(exclusive=True, group="start-job", exit_on_error=False)
    async def start_job(
        self, client_ids: list[int], template: InvitationTemplate, bank_ids: list[str]
    ) -> None:
        """``jobs.start {kind: invite}``; this screen gives way to the progress screen."""
        started = await self.clientlink.daemon.call(
            p.JOBS_START,
            kind=JobKind.INVITE.value,
            client_ids=client_ids,
            channel=template.channel.value,
            template_id=template.id,
            bank_ids=bank_ids,
        )
        self.app.switch_screen(JobProgressScreen(started.job_id, kind=JobKind.INVITE))

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Reconnect banks: next step", "Enter", self.action_next),
            PaletteCommand("Reconnect banks: back", "Back a step (Esc)", self.action_back),
            PaletteCommand(
                "Reconnect banks: send",
                "Send the invitations (Enter on the last step)",
                self.action_send,
            ),
            PaletteCommand(
                "Reconnect banks: tick all", "Every entry shown (a)", self.action_tick_all
            ),
        ]
