"""Reconnect and Add New Banks: invite many clients to connect chosen banks, as one job.

Four steps on one screen: the clients (skipped when clients are marked on Manage
Clients), the banks, the template, and the confirmation: clientlinkd's ``invites.preview``
says how many messages go on each channel, which clients are skipped and why, the message
one chosen client will get (subject and body as it arrives) and, for SMS, the segments.
Only a deliberate Send there (ctrl+s or the button; Enter alone never sends) starts an
``invite`` job for the clients who are reached, and hands over to its progress screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import (
    Button,
    ContentSwitcher,
    Footer,
    Header,
    Label,
    OptionList,
    Select,
    Static,
)
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    Channel,
    Client,
    InvitationTemplate,
    InvitesPreviewResult,
    JobKind,
)
from clientlink.common.wording import plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.invite_client import (
    CHANNEL_WORDS,
    MISSING_CONTACT,
    bank_items,
    contact_for,
    message_in_words,
)
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.widgets.filtered_checklist import ChecklistItem, FilteredChecklist
from clientlink.tui.widgets.offline_banner import OfflineBanner

NAMES_SHOWN = 5


class Step(StrEnum):
    CLIENTS = "step-clients"
    BANKS = "step-banks"
    TEMPLATE = "step-template"
    CONFIRM = "step-confirm"


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


def segments_in_words(segments: list[int], encoding: str | None) -> str:
    """``2 segments per SMS (GSM-7)`` or the range ``1 to 3 segments``, and the total."""
    if not segments:
        return ""
    low, high = min(segments), max(segments)
    each = f"{low} to {high} segments" if low != high else plural(low, "segment")
    return f"{each} per SMS ({encoding}), {sum(segments)} in all"


def preview_in_words(preview: InvitesPreviewResult) -> Text:
    """The confirmation: messages per channel, who is skipped and why, the segments."""
    channel = CHANNEL_WORDS[preview.channel]
    other = next(each for each in Channel if each != preview.channel)
    text = Text(f"{channel}: {plural(len(preview.sending), 'message')} to send", style="bold")
    text.append(f" · {CHANNEL_WORDS[other]}: none", style="bold")
    text.append(f" · template “{preview.template_name}”", style="dim")
    if preview.skipped:
        text.append(f"\nSkipped, {len(preview.skipped)}: ", style="bold yellow")
        reasons = [
            f"{skip.name or '#' + str(skip.client_id)} ({skip.reason})" for skip in preview.skipped
        ]
        text.append(names_in_words(reasons))
    else:
        text.append("\nNobody is skipped.", style="green")
    if preview.channel == Channel.SMS and preview.sms_segments:
        text.append(f"\n{segments_in_words(preview.sms_segments, preview.sms_encoding)}")
        basis = "as the last real one" if preview.link_length_measured else "estimated"
        text.append(
            f" · links of {plural(preview.link_length, 'character')} ({basis})", style="dim"
        )
    if preview.problem:
        text.append(f"\nCannot send now: {preview.problem}", style="bold red")
    return text


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
        "they are skipped until the address is added on the client's screen (e).\n\n"
        "4. Confirm: how many messages go by email and by SMS, who is skipped and why, the "
        "SMS segments (with each client's name and a link of real length), and the message "
        "one client gets, as it arrives ('Message to' chooses the client). ctrl+s (or the "
        "Send button) sends; Enter alone does not. clientlinkd sends the invitations as a "
        "job and its progress screen follows it.\n\n"
        "Enter goes to the next step; Esc goes back a step."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="reconnect.back"),
        Binding("enter", "advance", "Next", id="reconnect.advance"),
        Binding("ctrl+s", "send", "Send", id="reconnect.send"),
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
        self.preview: InvitesPreviewResult | None = None
        """What ``invites.preview`` said for the choices on the confirmation step."""

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
                with Vertical(id=Step.CONFIRM):
                    yield Static("", id="confirm-counts")
                    with Horizontal(id="confirm-sample-row"):
                        yield Label("Message to ", id="confirm-sample-label")
                        yield Select[int]([], allow_blank=True, id="confirm-sample", compact=True)
                    with VerticalScroll(id="confirm-message-box"):
                        yield Static("", id="confirm-message")
            with Horizontal(id="reconnect-buttons"):
                yield Button("Next (Enter)", id="reconnect-next", variant="primary", compact=True)
                yield Button("Send (ctrl+s)", id="reconnect-send", variant="primary", compact=True)
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
        elif step == Step.CONFIRM:
            self.query_one("#confirm-sample", Select).focus()
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
        self.action_next()

    @on(Select.Changed, "#confirm-sample")
    def _sample_chosen(self, event: Select.Changed) -> None:
        chosen = event.value
        current = self.preview.sample if self.preview is not None else None
        if isinstance(chosen, int) and (current is None or current.client_id != chosen):
            self.load_preview(chosen)

    def _show_summary(self) -> None:
        clients, banks = len(self.client_ids), len(self.bank_ids)
        source = " (marked on Manage Clients)" if self.preselected else ""
        numbers = {Step.CLIENTS: 1, Step.BANKS: 2, Step.TEMPLATE: 3, Step.CONFIRM: 4}
        text = Text(f"Step {numbers[self.step]} of 4 · ", style="dim")
        text.append(f"{plural(clients, 'client')}{source} · {plural(banks, 'bank')}", style="bold")
        hints = {
            Step.CLIENTS: "Tick the clients to invite: space ticks, a all, n none, / filters. "
            "Enter: next",
            Step.BANKS: "Tick the banks to connect (one or more): space ticks, / filters. "
            "Enter: next",
            Step.TEMPLATE: "Choose the template (↑↓); Enter: check before sending",
            Step.CONFIRM: "Check what will be sent; ctrl+s sends (Enter does not), Esc back",
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
            line = Text(f"All {plural(total, 'client')} have {what}.", style="green")
        else:
            line = Text(
                f"{len(missing)} of {plural(total, 'client')} "
                f"{'has' if total == 1 else 'have'} {MISSING_CONTACT[template.channel]} "
                "and will be skipped: ",
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
            return self.step == Step.CONFIRM
        if action == "advance":
            return self.step != Step.CONFIRM
        if action in ("tick_all", "tick_none", "focus_filter"):
            return self.step not in (Step.TEMPLATE, Step.CONFIRM)
        return True

    def _current_list(self) -> FilteredChecklist | None:
        if self.step in (Step.TEMPLATE, Step.CONFIRM):
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
        """Enter: the next step (never a send: that is ctrl+s on the confirmation)."""
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
        elif self.step == Step.TEMPLATE:
            if self.template is None:
                self.notify("Choose a template (↑↓).", severity="warning")
                return
            self.preview = None
            self.query_one("#confirm-counts", Static).update("Checking with clientlinkd…")
            self.query_one("#confirm-message", Static).update("")
            self.step = Step.CONFIRM
            self.load_preview(None)

    @work(exclusive=True, group="reconnect-preview", exit_on_error=False)
    async def load_preview(self, sample_client_id: int | None) -> None:
        """``invites.preview`` for the choices: nothing is sent, no link is made."""
        template = self.template
        if template is None:
            return
        params: dict[str, object] = {
            "client_ids": self.client_ids,
            "template_id": template.id,
            "bank_ids": self.bank_ids,
        }
        if sample_client_id is not None:
            params["sample_client_id"] = sample_client_id
        try:
            preview = await self.clientlink.daemon.call(p.INVITES_PREVIEW, **params)
        except RpcError as exc:
            self.query_one("#confirm-counts", Static).update(
                Text(f"Cannot check what would be sent: {exc.message}", style="bold red")
            )
            return
        if self.step != Step.CONFIRM:
            return
        first_load = self.preview is None
        self.preview = preview
        self.query_one("#confirm-counts", Static).update(preview_in_words(preview))
        self.query_one("#confirm-message", Static).update(message_in_words(preview))
        if first_load:
            select = self.query_one("#confirm-sample", Select)
            select.set_options(
                (Text(self.clients[cid].name if cid in self.clients else f"#{cid}"), cid)
                for cid in preview.sending
            )
            if preview.sample is not None:
                select.value = preview.sample.client_id

    @on(Button.Pressed, "#reconnect-back")
    def action_back(self) -> None:
        """Back a step; from the first, close."""
        if self.step == Step.CONFIRM:
            self.step = Step.TEMPLATE
        elif self.step == Step.TEMPLATE:
            self.step = Step.BANKS
        elif self.step == Step.BANKS and not self.preselected:
            self.step = Step.CLIENTS
        else:
            self.dismiss()

    @on(Button.Pressed, "#reconnect-send")
    def action_send(self) -> None:
        """Send the invitations as one job, to the clients the confirmation says are reached."""
        template, preview = self.template, self.preview
        if self.step != Step.CONFIRM or template is None:
            return
        if preview is None:
            self.notify("Still checking what would be sent.", severity="warning")
            return
        if preview.problem or not preview.sending:
            self.notify(
                preview.problem or "No client is reached: nothing to send.", severity="warning"
            )
            return
        self.start_job(preview.sending, template, self.bank_ids)

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
                "Send the invitations as confirmed (ctrl+s on the last step)",
                self.action_send,
            ),
            PaletteCommand(
                "Reconnect banks: tick all", "Every entry shown (a)", self.action_tick_all
            ),
        ]
