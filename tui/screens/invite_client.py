"""Invite one client to connect bank feeds: email or SMS, the banks, the template.

Two steps in one dialog: the choices, then the message exactly as this client would get it
(clientlinkd's ``invites.preview``: subject and body, the reach check). Only a Send on that
second step (ctrl+s or the button) asks clientlinkd to send; Esc there goes back to the
choices. Opened from the client's screen (i) and from Manage Clients (v, or the palette's
"Client: invite").
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, ContentSwitcher, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    Bank,
    Channel,
    Client,
    InvitationTemplate,
    InvitesPreviewResult,
    Job,
)
from clientlink.common.wording import plural
from clientlink.tui.screens.base import DaemonModalScreen
from clientlink.tui.widgets.filtered_checklist import ChecklistItem, FilteredChecklist

CHANNEL_WORDS = {Channel.EMAIL: "Email", Channel.SMS: "SMS"}
MISSING_CONTACT = {Channel.EMAIL: "no email address", Channel.SMS: "no mobile number"}


def contact_for(client: Client, channel: Channel) -> str | None:
    """Where an invitation on ``channel`` would go, or None when the client has nowhere."""
    return client.email if channel == Channel.EMAIL else client.phone


def bank_items(banks: list[Bank]) -> list[ChecklistItem[str]]:
    """Banks as checklist entries: the name, and its short name to filter by."""
    items = []
    for bank in banks:
        prompt = Text(bank.name)
        if bank.short_name and bank.short_name != bank.name:
            prompt.append(f"  {bank.short_name}", style="dim")
        items.append(ChecklistItem(prompt, bank.id, f"{bank.name} {bank.short_name or ''}"))
    return items


def template_options(
    templates: list[InvitationTemplate], channel: Channel
) -> list[tuple[Text, str]]:
    """The channel's templates for a Select, built-in first (the daemon lists them so).

    A Select reads a ``str`` prompt as markup: the names are the practice's own text, shown
    as written."""
    return [
        (Text(f"{template.name}{'  (built-in)' if template.builtin else ''}"), template.id)
        for template in templates
        if template.channel == channel
    ]


def message_in_words(preview: InvitesPreviewResult) -> Text:
    """The chosen client's message as it arrives (its link is a stand-in of real length)."""
    sample = preview.sample
    if sample is None:
        return Text("No client is reached: nothing would be sent.", style="bold yellow")
    text = Text(f"To {sample.address}", style="dim")
    if sample.subject is not None:
        text.append("\nSubject: ", style="bold")
        text.append(sample.subject)
    if sample.sms_segments is not None:
        text.append(f"\n{plural(sample.sms_segments, 'segment')}", style="dim")
    text.append("\n\n")
    text.append(sample.body)
    return text


def tell_invite_outcome(screen: Widget, job: Job, name: str) -> None:
    """A toast saying one client's invitation went, or why not (the job has ended)."""
    if job.done:
        screen.notify("Invitation sent", title=name)
        return
    reasons = [item.error for item in job.items or [] if item.error]
    reason = reasons[0] if reasons else f"the job was {job.state.value}"
    screen.notify(reason, title=f"Invitation not sent — {name}", severity="error")


@dataclass(frozen=True)
class InviteChoices:
    """What the preview was made for, and so what Send sends."""

    channel: Channel
    template_id: str
    bank_ids: list[str]


class InviteClientScreen(DaemonModalScreen[int | None]):
    """Choose the channel, tick banks, keep or change the template; see the message; Send."""

    TITLE = "Invite to connect banks"
    HELP = (
        "Send this client a personal link to connect bank feeds.\n\n"
        "Choose Email or SMS with the arrow keys (a channel is greyed out, with the reason, "
        "when the client has no address for it: press e on the client's screen to add one). "
        "Tab moves to the template (the built-in default unless you pick one of your own "
        "from the Communication Center, F6) and to the banks: type to filter, space ticks. "
        "With no bank ticked, the link lets the client choose.\n\n"
        "ctrl+s (or Enter outside a field) shows the message as this client will get it: "
        "the address, the subject and the body (the link in it is made when it is sent). "
        "ctrl+s there sends it; Esc goes back to change the choices. clientlinkd sends it as "
        "a job and a message says when it has gone, or why it failed."
    )
    BINDINGS = [
        Binding("escape", "close", "Back/Cancel", id="invite.close"),
        Binding("ctrl+s", "send", "Preview/Send", id="invite.send"),
        Binding("enter", "preview", "Preview", show=False, id="invite.send_enter"),
        Binding("slash", "focus_filter", "Filter banks", show=False, id="invite.filter"),
    ]

    def __init__(self, client: Client, ticked_bank_ids: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.client = client
        self._ticked_bank_ids = ticked_bank_ids
        """Banks ticked when the list loads (the broken ones, when asked to reconnect)."""
        self.channel: Channel | None = next(
            (channel for channel in Channel if contact_for(client, channel)), None
        )
        self.templates: list[InvitationTemplate] = []
        self.preview: InvitesPreviewResult | None = None
        """The message shown on the second step; None while choosing."""
        self.confirming: InviteChoices | None = None
        """The choices the message shown was made for: what a Send there sends."""

    def compose(self) -> ComposeResult:
        options = []
        for channel in Channel:
            address = contact_for(self.client, channel)
            prompt = Text(f"{CHANNEL_WORDS[channel]:<6}", style="bold")
            if address:
                prompt.append(f" to {address}")
            else:
                prompt.append(f" {MISSING_CONTACT[channel]} — e on the client adds one")
            options.append(Option(prompt, id=channel.value, disabled=not address))
        with Vertical(id="invite-dialog") as dialog:
            dialog.border_title = Text(f"Invite {self.client.name}")
            dialog.border_subtitle = "ctrl+s shows the message · Esc cancels · F1 help"
            with ContentSwitcher(initial="invite-choices", id="invite-steps"):
                with Vertical(id="invite-choices"):
                    yield OptionList(*options, id="invite-channel")
                    with Horizontal(id="invite-template-row"):
                        yield Label("Template", id="invite-template-label")
                        yield Select[str]([], allow_blank=True, id="invite-template", compact=True)
                    yield Label("Banks to connect (space ticks; none: the client chooses)")
                    yield FilteredChecklist[str]("Filter banks…  (/)", id="invite-banks")
                with VerticalScroll(id="invite-confirm"):
                    yield Static("", id="invite-message")
            yield Static("", id="invite-error")
            with Horizontal(id="invite-buttons"):
                yield Button(
                    "Show the message (ctrl+s)", id="invite-send", variant="primary", compact=True
                )
                yield Button("Cancel (Esc)", id="invite-cancel", compact=True)

    def on_mount(self) -> None:
        channels = self.query_one("#invite-channel", OptionList)
        if self.channel is None:
            self._show_error(
                f"{self.client.name} has no email address and no mobile number: "
                "press e on the client's screen to add one."
            )
        else:
            channels.highlighted = channels.get_option_index(self.channel.value)
        channels.focus()
        self.load_choices()

    @work(exclusive=True, group="invite-choices", exit_on_error=False)
    async def load_choices(self) -> None:
        """``templates.list`` and ``banks.list``; without banks the link lets the client pick."""
        daemon = self.clientlink.daemon
        self.templates = (await daemon.call(p.TEMPLATES_LIST)).items
        self._show_templates()
        try:
            banks = (await daemon.call(p.BANKS_LIST)).items
        except RpcError as exc:
            self._show_error(f"The banks cannot be listed: {exc.message}")
            return
        self.query_one(FilteredChecklist).set_items(bank_items(banks), self._ticked_bank_ids)

    def _show_templates(self) -> None:
        select = self.query_one("#invite-template", Select)
        if self.channel is None:
            select.set_options([])
            return
        options = template_options(self.templates, self.channel)
        select.set_options(options)
        if options:
            select.value = options[0][1]  # the channel's built-in default

    @on(OptionList.OptionHighlighted, "#invite-channel")
    def _channel_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        channel = Channel(str(event.option.id))
        if channel != self.channel:
            self.channel = channel
            self._show_templates()

    @on(OptionList.OptionSelected, "#invite-channel")
    def _channel_selected(self) -> None:
        self.query_one("#invite-template", Select).focus()

    def _show_error(self, message: str) -> None:
        self.query_one("#invite-error", Static).update(Text(message, style="bold red"))
        self.add_class("-error")

    def _clear_error(self) -> None:
        self.query_one("#invite-error", Static).update("")
        self.remove_class("-error")

    def action_focus_filter(self) -> None:
        """Put the cursor in the banks filter."""
        if self.confirming is None:
            self.query_one(FilteredChecklist).focus_filter()

    def _choices(self) -> InviteChoices | None:
        """The channel, template and banks chosen now; None (and why) when not ready."""
        if self.channel is None:
            return None
        template = self.query_one("#invite-template", Select).value
        if not isinstance(template, str):
            template = next(
                (each.id for each in self.templates if each.channel == self.channel), None
            )
        if template is None:
            self._show_error("The templates have not loaded yet: try again in a moment.")
            return None
        bank_ids = self.query_one(FilteredChecklist).ticked_in_order()
        return InviteChoices(self.channel, template, bank_ids)

    @on(Button.Pressed, "#invite-send")
    def action_send(self) -> None:
        """On the choices: show the message. On the message: ask clientlinkd to send it."""
        if self.confirming is None:
            self.action_preview()
        else:
            self.send(self.confirming)

    def action_preview(self) -> None:
        """Show the message this client would get for the choices (Enter never sends)."""
        if self.confirming is not None:
            return
        choices = self._choices()
        if choices is not None:
            self.load_preview(choices)

    @work(exclusive=True, group="invite-preview", exit_on_error=False)
    async def load_preview(self, choices: InviteChoices) -> None:
        """``invites.preview`` for this one client: nothing is sent, no link is made."""
        try:
            preview = await self.clientlink.daemon.call(
                p.INVITES_PREVIEW,
                client_ids=[self.client.id],
                template_id=choices.template_id,
                bank_ids=choices.bank_ids,
            )
        except RpcError as exc:
            self._show_error(f"Cannot show the message: {exc.message}")
            return
        if preview.problem or not preview.sending:
            reasons = [skip.reason for skip in preview.skipped]
            self._show_error(
                f"Not sent: {preview.problem or ', '.join(reasons) or 'the client is not reached'}."
            )
            return
        self._clear_error()
        self.preview, self.confirming = preview, choices
        self.query_one("#invite-message", Static).update(message_in_words(preview))
        self.query_one("#invite-steps", ContentSwitcher).current = "invite-confirm"
        self.query_one("#invite-send", Button).label = "Send (ctrl+s)"
        self.query_one("#invite-cancel", Button).label = "Back (Esc)"
        self.query_one("#invite-dialog").border_subtitle = "ctrl+s sends · Esc goes back"
        self.query_one("#invite-confirm").focus()

    @work(exclusive=True, group="invite-send", exit_on_error=False)
    async def send(self, choices: InviteChoices) -> None:
        """``invites.send`` for what the message shown was made of; closes with the job id."""
        try:
            started = await self.clientlink.daemon.call(
                p.INVITES_SEND,
                client_id=self.client.id,
                channel=choices.channel.value,
                template_id=choices.template_id,
                bank_ids=choices.bank_ids,
            )
        except RpcError as exc:
            self._show_error(exc.message)
            return
        self.dismiss(started.job_id)

    @on(Button.Pressed, "#invite-cancel")
    def action_close(self) -> None:
        """On the message: back to the choices. On the choices: close without sending."""
        if self.confirming is None:
            self.dismiss(None)
            return
        self.preview = self.confirming = None
        self._clear_error()
        self.query_one("#invite-steps", ContentSwitcher).current = "invite-choices"
        self.query_one("#invite-send", Button).label = "Show the message (ctrl+s)"
        self.query_one("#invite-cancel", Button).label = "Cancel (Esc)"
        self.query_one(
            "#invite-dialog"
        ).border_subtitle = "ctrl+s shows the message · Esc cancels · F1 help"
        self.query_one("#invite-channel", OptionList).focus()
