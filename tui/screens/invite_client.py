"""Invite one client to connect bank feeds: email or SMS, the banks, the template."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    Bank,
    Channel,
    Client,
    InvitationTemplate,
)
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


class InviteClientScreen(DaemonModalScreen[int | None]):
    """Choose the channel, tick banks, keep or change the template; Send starts a job."""

    TITLE = "Invite to connect banks"
    HELP = (
        "Send this client a personal link to connect bank feeds.\n\n"
        "Choose Email or SMS with the arrow keys (a channel is greyed out, with the reason, "
        "when the client has no address for it: press e on the client's screen to add one). "
        "Tab moves to the template (the built-in default unless you pick one of your own "
        "from the Communication Center, F6) and to the banks: type to filter, space ticks. "
        "With no bank ticked, the link lets the client choose.\n\n"
        "ctrl+s (or Enter outside a field) sends. clientlinkd sends it as a job and the "
        "client's screen says when it has gone, or why it failed."
    )
    BINDINGS = [
        Binding("escape", "close", "Cancel", id="invite.close"),
        Binding("ctrl+s", "send", "Send", id="invite.send"),
        Binding("enter", "send", "Send", show=False, id="invite.send_enter"),
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
            dialog.border_subtitle = "ctrl+s sends · Esc cancels · F1 help"
            yield OptionList(*options, id="invite-channel")
            with Horizontal(id="invite-template-row"):
                yield Label("Template", id="invite-template-label")
                yield Select[str]([], allow_blank=True, id="invite-template", compact=True)
            yield Label("Banks to connect (space ticks; none: the client chooses)")
            yield FilteredChecklist[str]("Filter banks…  (/)", id="invite-banks")
            yield Static("", id="invite-error")
            with Horizontal(id="invite-buttons"):
                yield Button("Send (ctrl+s)", id="invite-send", variant="primary", compact=True)
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

    def action_focus_filter(self) -> None:
        """Put the cursor in the banks filter."""
        self.query_one(FilteredChecklist).focus_filter()

    @on(Button.Pressed, "#invite-send")
    def action_send(self) -> None:
        """Ask clientlinkd to send the invitation."""
        if self.channel is None:
            return
        template = self.query_one("#invite-template", Select).value
        bank_ids = self.query_one(FilteredChecklist).ticked_in_order()
        self.send(self.channel, template if isinstance(template, str) else None, bank_ids)

    @work(exclusive=True, group="invite-send", exit_on_error=False)
    async def send(self, channel: Channel, template_id: str | None, bank_ids: list[str]) -> None:
        """``invites.send``; the dialog closes with the job id, or shows the refusal."""
        params: dict[str, object] = {
            "client_id": self.client.id,
            "channel": channel.value,
            "bank_ids": bank_ids,
        }
        if template_id:
            params["template_id"] = template_id
        try:
            started = await self.clientlink.daemon.call(p.INVITES_SEND, **params)
        except RpcError as exc:
            self._show_error(exc.message)
            return
        self.dismiss(started.job_id)

    @on(Button.Pressed, "#invite-cancel")
    def action_close(self) -> None:
        """Close without sending."""
        self.dismiss(None)
