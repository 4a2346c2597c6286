"""Communication Center: the invitation templates, built-in and the practice's own."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import InvitationTemplate
from clientlink.common.wording import plural
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.invite_client import CHANNEL_WORDS
from clientlink.tui.screens.template_editor import TemplateEditorScreen
from clientlink.tui.widgets.literal_table import LiteralTable
from clientlink.tui.widgets.offline_banner import OfflineBanner

BUILTIN_NOTE = "Built-in templates cannot be changed or deleted: n writes your own."


class CommunicationCenterScreen(DaemonScreen[None]):
    """The templates in a list, the highlighted one in full below it."""

    TITLE = "Communication Center"
    HELP = (
        "The invitations clients receive when asked to connect bank feeds. The built-in "
        "templates (one for email, one for SMS) are always there and cannot be changed; "
        "write your own for other wording.\n\n"
        "n writes a new template; Enter or e edits the highlighted one; x deletes it (after "
        "a confirm). The editor previews the text for a real client as you type and counts "
        "SMS segments.\n\n"
        "Templates are used by Invite on a client's screen (i) and by Bulk Actions → "
        "Reconnect and Add New Banks."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="communication.back"),
        Binding("n", "new", "New", id="communication.new"),
        Binding("enter", "edit", "Edit", show=False, id="communication.edit_enter"),
        Binding("e", "edit", "Edit", id="communication.edit"),
        Binding("x", "delete", "Delete", id="communication.delete"),
        Binding("f5", "reload", "Reload", show=False, id="communication.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="communication.reload_ctrl"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.templates: dict[str, InvitationTemplate] = {}
        self.placeholders: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield Static("Loading the templates…", id="communication-summary")
        yield LiteralTable(cursor_type="row", zebra_stripes=True, id="communication-table")
        with VerticalScroll(id="communication-detail"):
            yield Static("", id="communication-template")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Name", key="name", width=38)
        table.add_column("Channel", key="channel", width=7)
        table.add_column("Kind", key="kind", width=10)
        table.focus()
        if self.clientlink.connected:
            self.load_templates()

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_templates()

    @work(exclusive=True, group="load-templates", exit_on_error=False)
    async def load_templates(self, highlight: str | None = None) -> None:
        """``templates.list``; the list keeps its place (or moves to ``highlight``)."""
        listed = await self.clientlink.daemon.call(p.TEMPLATES_LIST)
        table = self.query_one(DataTable)
        current = highlight or self.highlighted_template_id()
        self.templates = {template.id: template for template in listed.items}
        self.placeholders = listed.placeholders
        table.clear()
        for template in listed.items:
            kind = Text("built-in", style="dim") if template.builtin else Text("yours")
            table.add_row(
                template.name,
                CHANNEL_WORDS.get(template.channel, template.channel),
                kind,
                key=template.id,
            )
        if current in self.templates:
            table.move_cursor(row=table.get_row_index(current))
        own = sum(1 for template in listed.items if not template.builtin)
        summary = Text(
            f"{plural(len(listed.items), 'template')}, {own} of your own. ", style="bold"
        )
        summary.append("n new · Enter edit · x delete", style="dim")
        self.query_one("#communication-summary", Static).update(summary)
        self._show_template()

    def highlighted_template_id(self) -> str | None:
        """The id of the template under the cursor."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    def highlighted_template(self) -> InvitationTemplate | None:
        """The template under the cursor."""
        return self.templates.get(self.highlighted_template_id() or "")

    @on(DataTable.RowHighlighted)
    def _show_template(self) -> None:
        template = self.highlighted_template()
        shown = self.query_one("#communication-template", Static)
        if template is None:
            shown.update("")
            return
        parts = []
        if template.builtin:
            parts.append(Text(BUILTIN_NOTE, style="italic dim"))
        if template.subject:
            parts.append(Text.assemble(("Subject: ", "bold"), template.subject))
        parts.append(Text(template.body))
        shown.update(Group(*parts))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_edit()

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        """Close the Communication Center."""
        self.dismiss()

    def action_reload(self) -> None:
        """Ask clientlinkd for the templates again."""
        self.load_templates()

    def _open_editor(self, template: InvitationTemplate | None) -> None:
        def reload_after_save(saved: InvitationTemplate | None) -> None:
            if saved is not None:
                self.load_templates(highlight=saved.id)

        self.app.push_screen(TemplateEditorScreen(self.placeholders, template), reload_after_save)

    def action_new(self) -> None:
        """Write a new template."""
        self._open_editor(None)

    def action_edit(self) -> None:
        """Change the highlighted template (only the practice's own)."""
        template = self.highlighted_template()
        if template is None:
            return
        if template.builtin:
            self.notify(BUILTIN_NOTE, severity="warning")
            return
        self._open_editor(template)

    def action_delete(self) -> None:
        """Delete the highlighted template after a confirm (only the practice's own)."""
        template = self.highlighted_template()
        if template is None:
            return
        if template.builtin:
            self.notify(BUILTIN_NOTE, severity="warning")
            return

        def delete_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.delete_template(template)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete the template {template.name!r}? This cannot be undone.",
                yes_label="Delete",
            ),
            delete_if_confirmed,
        )

    @work(exclusive=True, group="delete-template", exit_on_error=False)
    async def delete_template(self, template: InvitationTemplate) -> None:
        """``templates.delete``, then the list again."""
        try:
            await self.clientlink.daemon.call(p.TEMPLATES_DELETE, template_id=template.id)
        except RpcError as exc:
            self.notify(exc.message, title="Not deleted", severity="error")
            return
        self.notify(f"Template {template.name!r} deleted.")
        self.load_templates()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Templates: new", "Write a new invitation template (n)", self.action_new
            ),
            PaletteCommand(
                "Templates: edit", "Change the highlighted template (e)", self.action_edit
            ),
            PaletteCommand(
                "Templates: delete", "Delete the highlighted template (x)", self.action_delete
            ),
            PaletteCommand("Templates: reload", "Read them again (F5)", self.action_reload),
        ]
