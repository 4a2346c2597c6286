"""Write or change an invitation template, with a live preview for a real client.

As the person types, the text goes to clientlinkd (``templates.preview``, debounced), which
renders it for the chosen client and, for SMS, counts the segments. Saving goes through
``templates.create`` / ``templates.update``, which refuse unknown placeholders, a text
without ``{link}`` or a subject of two lines; the refusal is shown and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Label, Select, Static, TextArea

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    Channel,
    Client,
    ErrorCode,
    InvitationTemplate,
    TemplatePreviewResult,
)
from clientlink.common.wording import plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner

PREVIEW_DEBOUNCE = 0.3
"""Seconds of quiet typing before the preview is asked for."""
PREVIEW_CLIENTS = 200


def segments_line(preview: TemplatePreviewResult) -> str:
    """``2 segments (GSM-7); 2 to 3 across your clients``: what one SMS of this text costs,
    counted by clientlinkd on the rendered text with a link of real length."""
    count = preview.sms_segments or 0
    line = f"{plural(count, 'segment')} ({preview.sms_encoding})"
    low, high = preview.sms_segments_min, preview.sms_segments_max
    if low is not None and high is not None and (low, high) != (count, count):
        line += f"; {low} to {high} across your clients" if low != high else f"; {high} for some"
    return line


def placeholders_table(placeholders: dict[str, str]) -> Table:
    """Each placeholder and what it becomes."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, meaning in placeholders.items():
        table.add_row("{" + name + "}", meaning)
    return table


class TemplateEditorScreen(DaemonScreen[InvitationTemplate | None]):
    """Name, channel, subject (email), text; a preview and the SMS cost beside them."""

    TITLE = "Invitation template"
    HELP = (
        "Write the invitation clients receive. Name is what you see when choosing a "
        "template. Channel is email or SMS (fixed once the template is saved); an email "
        "needs a one-line subject. In the text, placeholders such as {client_name} are "
        "replaced for each client; {link} (the client's personal link) is required.\n\n"
        "The preview on the right shows the text as the chosen client would read it "
        "(change the client in 'Preview for'); for SMS it counts the segments each message "
        "costs. Placeholders and what they become are listed under the preview.\n\n"
        "Tab moves between the fields. ctrl+s saves: if clientlinkd refuses (an unknown "
        "placeholder, no {link}, a subject of two lines) the reason is shown in red and "
        "nothing is saved. Esc goes back (asking first if there are unsaved changes)."
    )
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="template_editor.save"),
        Binding("escape", "back", "Back", id="template_editor.back"),
        Binding("f5", "preview_now", "Preview", show=False, id="template_editor.preview"),
    ]

    def __init__(
        self, placeholders: dict[str, str], template: InvitationTemplate | None = None
    ) -> None:
        super().__init__()
        self.placeholders = placeholders
        self.template = template
        """The template being changed; None for a new one."""
        self.preview_clients: list[Client] = []
        self._preview_timer: Timer | None = None
        self._saved_fields: dict[str, Any] = {}

    @property
    def channel(self) -> Channel:
        value = self.query_one("#editor-channel", Select).value
        return Channel(value) if isinstance(value, str) else Channel.EMAIL

    def compose(self) -> ComposeResult:
        template = self.template
        yield Header()
        yield OfflineBanner()
        with Horizontal(id="editor-columns"):
            with Vertical(id="editor-form"):
                with Horizontal(classes="editor-row"):
                    yield Label("Name", classes="editor-label")
                    yield Input(
                        template.name if template else "",
                        placeholder="e.g. New bank feeds",
                        id="editor-name",
                        compact=True,
                    )
                with Horizontal(classes="editor-row"):
                    yield Label("Channel", classes="editor-label")
                    yield Select[str](
                        [("Email", Channel.EMAIL.value), ("SMS", Channel.SMS.value)],
                        value=(template.channel if template else Channel.EMAIL).value,
                        allow_blank=False,
                        disabled=template is not None,
                        id="editor-channel",
                        compact=True,
                    )
                with Horizontal(classes="editor-row", id="editor-subject-row"):
                    yield Label("Subject", classes="editor-label")
                    yield Input(
                        (template.subject or "") if template else "",
                        placeholder="one line, e.g. {practice_name}: bank feeds",
                        id="editor-subject",
                        compact=True,
                    )
                yield Label("Text (Tab leaves it)", id="editor-body-label")
                yield TextArea(template.body if template else "", id="editor-body")
                yield Static("", id="editor-error")
            with VerticalScroll(id="editor-side"):
                with Horizontal(classes="editor-row"):
                    yield Label("Preview for", id="editor-client-label")
                    yield Select[int]([], id="editor-client", compact=True)
                yield Static("", id="editor-segments")
                yield Static(Text("Loading…", style="dim"), id="editor-preview")
                yield Static(Text("Placeholders", style="bold underline"))
                yield Static(placeholders_table(self.placeholders), id="editor-placeholders")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"Editing {self.template.name}" if self.template else "New template"
        self._show_channel()
        self._saved_fields = self._fields()
        self.query_one("#editor-name", Input).focus()
        self.load_preview_clients()

    def _fields(self) -> dict[str, Any]:
        subject = self.query_one("#editor-subject", Input).value
        return {
            "name": self.query_one("#editor-name", Input).value.strip(),
            "channel": self.channel,
            "subject": subject if self.channel == Channel.EMAIL else None,
            "body": self.query_one("#editor-body", TextArea).text,
        }

    def _show_channel(self) -> None:
        self.set_class(self.channel == Channel.SMS, "-sms")

    # ------------------------------------------------------------------ preview

    @work(exclusive=True, group="preview-clients", exit_on_error=False)
    async def load_preview_clients(self) -> None:
        """The clients to preview for, by name; the first one is chosen."""
        listed = await self.clientlink.daemon.call(p.CLIENTS_LIST, limit=PREVIEW_CLIENTS)
        self.preview_clients = sorted(listed.items, key=lambda client: client.name.casefold())
        select = self.query_one("#editor-client", Select)
        # A str prompt would be read as markup: a client's name is shown as written.
        select.set_options([(Text(client.name), client.id) for client in self.preview_clients])
        if self.preview_clients:
            select.value = self.preview_clients[0].id
        else:
            self._show_preview_problem("There are no clients to preview for yet.")

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _typed(self) -> None:
        self._schedule_preview()

    @on(Select.Changed)
    def _chosen(self) -> None:
        self._show_channel()
        self._schedule_preview()

    def _schedule_preview(self) -> None:
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DEBOUNCE, self.action_preview_now)

    def action_preview_now(self) -> None:
        """Render the text for the chosen client now."""
        client_id = self.query_one("#editor-client", Select).value
        if isinstance(client_id, int):
            self.preview(client_id, self._fields())

    @work(exclusive=True, group="preview", exit_on_error=False)
    async def preview(self, client_id: int, fields: dict[str, Any]) -> None:
        """``templates.preview`` with the unsaved text; a refusal says what to fix."""
        params = {
            "client_id": client_id,
            "channel": fields["channel"].value,
            "subject": fields["subject"],
            "body": fields["body"],
        }
        try:
            preview = await self.clientlink.daemon.call(p.TEMPLATES_PREVIEW, **params)
        except RpcError as exc:
            self._show_preview_problem(f"Not valid yet: {exc.message}")
            return
        if self.has_class("-error") and self._error_is_the_text:
            self._clear_error()  # the text is valid now: the refusal no longer holds
        shown: list[Text] = []
        if preview.subject is not None:
            shown.append(Text.assemble(("Subject: ", "bold"), preview.subject))
        shown.append(Text(preview.body))
        self.query_one("#editor-preview", Static).update(Group(*shown))
        segments = Text()
        if preview.channel == Channel.SMS:
            segments.append(segments_line(preview), style="bold")
            if (preview.sms_segments_max or 0) > 1:
                segments.append("  each segment is charged as one SMS", style="dim")
            if preview.longest_name and preview.sms_segments_max != preview.sms_segments:
                segments.append(f"\nlongest: {preview.longest_name}", style="dim")
        self.query_one("#editor-segments", Static).update(segments)

    def _show_preview_problem(self, message: str) -> None:
        self.query_one("#editor-preview", Static).update(Text(message, style="yellow"))
        self.query_one("#editor-segments", Static).update("")

    # ------------------------------------------------------------------ saving

    _error_is_the_text = False
    """Whether the error shown is clientlinkd's refusal of the text (a valid preview ends it)."""

    def _show_error(self, message: str, *, about_text: bool = False) -> None:
        self.query_one("#editor-error", Static).update(Text(message, style="bold red"))
        self.add_class("-error")
        self._error_is_the_text = about_text

    def _clear_error(self) -> None:
        self.query_one("#editor-error", Static).update("")
        self.remove_class("-error")
        self._error_is_the_text = False

    def action_save(self) -> None:
        """Save the template (clientlinkd checks it first)."""
        fields = self._fields()
        if not fields["name"]:
            self._show_error("Give the template a name.")
            self.query_one("#editor-name", Input).focus()
            return
        self.save(fields)

    @work(exclusive=True, group="save-template", exit_on_error=False)
    async def save(self, fields: dict[str, Any]) -> None:
        """``templates.create`` or ``templates.update``; a refusal stays on this screen."""
        daemon = self.clientlink.daemon
        try:
            if self.template is None:
                template = await daemon.call(
                    p.TEMPLATES_CREATE, **{**fields, "channel": fields["channel"].value}
                )
            else:
                changes = {key: fields[key] for key in ("name", "subject", "body")}
                template = await daemon.call(
                    p.TEMPLATES_UPDATE, template_id=self.template.id, **changes
                )
        except RpcError as exc:
            self._show_error(
                f"Not saved: {exc.message}", about_text=exc.code == ErrorCode.INVALID_PARAMS
            )
            return
        self.app.notify(f"Template {template.name!r} saved.", title="Communication Center")
        self.dismiss(template)

    def action_back(self) -> None:
        """Back to the Communication Center; unsaved changes are confirmed first."""
        if self._fields() == self._saved_fields:
            self.dismiss(None)
            return

        def leave_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmScreen(
                "Leave without saving? Your changes to this template are lost.",
                yes_label="Discard changes",
                no_label="Keep editing",
            ),
            leave_if_confirmed,
        )

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Template: save", "Check and save it (ctrl+s)", self.action_save),
            PaletteCommand(
                "Template: preview now",
                "Render it for the chosen client (F5)",
                self.action_preview_now,
            ),
            PaletteCommand(
                "Template: back", "Back to the Communication Center (Esc)", self.action_back
            ),
        ]
