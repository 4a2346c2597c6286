"""Import clients from a spreadsheet: a path, the preview of every row, then a confirmation."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.wording import import_sentence, plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner

DEFAULT_IMPORT_PATH = "~/clients.csv"
PREVIEW_ROWS = 500
"""Rows shown at once (the counts cover the whole file)."""

VERDICT_WORDS = {"add": "add", "match": "match", "refuse": "REFUSED"}
VERDICT_STYLES = {"add": "green", "match": "cyan", "refuse": "bold red"}


class ImportClientsScreen(DaemonScreen[None]):
    """Type a path, Enter previews; f shows only refused rows; Import asks, then imports."""

    TITLE = "Import clients from a spreadsheet"
    HELP = (
        "Read a CSV or XLSX file of clients: a heading row (Name, ABN, Software, Software ID, "
        "Email, Mobile; Name and Software are required) and a client per row. Type the file's "
        "path and press Enter: clientlinkd checks every row (the ABN's checksum, the email, "
        "the mobile, that the software is set up) and says what it would do with each: add "
        "a new client, match one the practice has (blank email, mobile or ABN are filled), "
        "or refuse it, with the reason. Nothing changes until you import.\n\n"
        "Tab moves to the rows; f shows only the refused rows (f again shows all). Import "
        "(ctrl+s, or the button) asks first, then imports every row it can in one go; a file "
        "changed since the preview is refused. Esc goes back."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="import.back"),
        Binding("f", "toggle_refused", "Refused only", id="import.refused"),
        Binding("ctrl+s", "confirm_import", "Import", id="import.confirm"),
    ]

    def __init__(self, path: str = DEFAULT_IMPORT_PATH) -> None:
        super().__init__()
        self.initial_path = path
        self.preview: p.ClientsImportFileResult | None = None
        self.previewed_path: str | None = None
        self.refused_only = False
        self.rows: list[p.ImportRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Horizontal(id="import-path-row"):
            yield Static("File:", id="import-path-label")
            yield Input(self.initial_path, id="import-path", compact=True)
        yield Static(
            "Type the path of a CSV or XLSX file and press Enter to check it.", id="import-summary"
        )
        table: DataTable[Text] = DataTable(id="import-rows", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="import-detail")
        with Horizontal(id="import-buttons"):
            yield Button("Import (ctrl+s)", id="import-go", variant="primary", compact=True)
            yield Button("Refused only (f)", id="import-filter", compact=True)
            yield Button("Back (Esc)", id="import-back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#import-rows", DataTable)
        table.add_column("Row", key="row", width=6)
        table.add_column("Verdict", key="verdict", width=8)
        table.add_column("Name", key="name", width=26)
        table.add_column("Reason", key="reason")
        self.query_one("#import-go", Button).disabled = True
        self.query_one("#import-path", Input).focus()

    # ------------------------------------------------------------------ preview

    def _path(self) -> str | None:
        raw = self.query_one("#import-path", Input).value.strip()
        if not raw:
            return None
        # ~ and a relative path are made absolute here (the TUI runs as the person); a
        # symbolic link is not followed, so clientlinkd can refuse it.
        return os.path.abspath(Path(raw).expanduser())

    @on(Input.Submitted, "#import-path")
    def _path_submitted(self) -> None:
        path = self._path()
        if path is None:
            self._say(Text("Type the path of the CSV or XLSX file to import.", style="bold red"))
            return
        self.refused_only = False
        self.load_preview(path)

    @work(exclusive=True, group="import-preview", exit_on_error=False)
    async def load_preview(self, path: str) -> None:
        """``clients.import_file`` without confirm: the counts and the first rows."""
        self._say(Text(f"Checking {path}…"))
        try:
            result = await self.clientlink.daemon.call(
                p.CLIENTS_IMPORT_FILE,
                path=path,
                limit=PREVIEW_ROWS,
                verdict="refuse" if self.refused_only else None,
            )
        except RpcError as exc:
            self.preview = None
            self.previewed_path = None
            self._show_rows([])
            self._say(Text(exc.message, style="bold red"))
            return
        self.preview = result
        self.previewed_path = path
        self._show_rows(result.rows)
        self._show_summary()

    def _show_rows(self, rows: list[p.ImportRow]) -> None:
        self.rows = rows
        table = self.query_one("#import-rows", DataTable)
        table.clear()
        for row in rows:
            table.add_row(
                Text(str(row.row)),
                Text(VERDICT_WORDS[row.verdict], style=VERDICT_STYLES[row.verdict]),
                Text(row.name or "(no name)", no_wrap=True, overflow="ellipsis"),
                Text(row.reason or f"new {row.software} client", no_wrap=True, overflow="ellipsis"),
                key=str(row.row),
            )
        self.query_one("#import-go", Button).disabled = not (
            self.preview and (self.preview.counts["add"] or self.preview.counts["match"])
        )
        self._show_detail()

    def _show_summary(self) -> None:
        result = self.preview
        if result is None:
            return
        counts = result.counts
        text = Text(f"{plural(sum(counts.values()), 'row', thousands=True)}: ", style="bold")
        text.append(f"{counts['add']:,} to add", style="green")
        text.append(", ")
        text.append(f"{plural(counts['match'], 'matching client', thousands=True)}", style="cyan")
        text.append(", ")
        text.append(f"{counts['refuse']:,} refused", style="bold red" if counts["refuse"] else "")
        shown = len(result.rows)
        if self.refused_only:
            text.append(f"\nShowing the refused rows ({shown:,} of {result.total:,}); f: all")
        elif shown < result.total:
            text.append(f"\nShowing the first {shown:,} of {result.total:,}; f: refused only")
        else:
            text.append("\nf: refused only · ctrl+s: ", style="dim")
            text.append(import_sentence(counts), style="dim")
        self._say(text)
        self.query_one("#import-go", Button).label = import_sentence(counts)

    def _say(self, text: Text) -> None:
        self.query_one("#import-summary", Static).update(text)

    @on(DataTable.RowHighlighted, "#import-rows")
    def _show_detail(self) -> None:
        """The highlighted row in full: its values and its whole reason."""
        detail = self.query_one("#import-detail", Static)
        table = self.query_one("#import-rows", DataTable)
        index = table.cursor_row
        if not self.rows or not 0 <= index < len(self.rows):
            detail.update("")
            return
        row = self.rows[index]
        text = Text(f"Row {row.row}: ", style="bold")
        text.append(row.name or "(no name)")
        parts = [row.software, row.tenant_id, row.abn, row.email, row.phone]
        text.append("  " + " · ".join(part for part in parts if part), style="dim")
        if row.reason:
            text.append("\n" + row.reason, style="red" if row.verdict == "refuse" else "")
        detail.update(text)

    def action_toggle_refused(self) -> None:
        """Show only the refused rows, or all of them again."""
        if self.previewed_path is None:
            return
        self.refused_only = not self.refused_only
        self.load_preview(self.previewed_path)

    # ------------------------------------------------------------------ import

    def action_confirm_import(self) -> None:
        """Ask, then import the previewed file."""
        result = self.preview
        if result is None or self.previewed_path is None:
            self.notify("Check a file first: type its path and press Enter.", severity="warning")
            return
        counts = result.counts
        if not counts["add"] and not counts["match"]:
            self.notify("No row can be imported: every one is refused.", severity="warning")
            return
        question = f"{import_sentence(counts)} from {self.previewed_path}?"
        if counts["add"]:
            question += f"\n{plural(counts['add'], 'new client')} will be added, not connected yet."
        path, digest, skip = self.previewed_path, result.digest, bool(counts["refuse"])

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_import(path, digest, skip)

        self.app.push_screen(ConfirmScreen(question, yes_label="Import"), answered)

    @work(exclusive=True, group="import-run", exit_on_error=False)
    async def run_import(self, path: str, digest: str, skip_refused: bool) -> None:
        """``clients.import_file`` with confirm; a refusal (the file changed) stays here."""
        self._say(Text(f"Importing {path}…"))
        try:
            done = await self.clientlink.daemon.call(
                p.CLIENTS_IMPORT_FILE,
                path=path,
                confirm=True,
                digest=digest,
                skip_refused=skip_refused,
                limit=1,
            )
        except RpcError as exc:
            self._say(Text(exc.message, style="bold red"))
            return
        message = (
            f"{plural(done.created, 'client')} added, {plural(done.updated, 'client')} "
            f"updated from {path}"
        )
        if done.counts["refuse"]:
            message += f"; {plural(done.counts['refuse'], 'refused row')} skipped"
        self.app.notify(message + ".", title="Clients imported")
        self.dismiss()

    # ------------------------------------------------------------------ buttons

    @on(Button.Pressed, "#import-go")
    def _import_pressed(self) -> None:
        self.action_confirm_import()

    @on(Button.Pressed, "#import-filter")
    def _filter_pressed(self) -> None:
        self.action_toggle_refused()

    @on(Button.Pressed, "#import-back")
    def _back_pressed(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        """Back to Manage Clients without importing."""
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Import: import the rows", "Ask, then import (ctrl+s)", self.action_confirm_import
            ),
            PaletteCommand(
                "Import: refused rows only", "Or all rows again (f)", self.action_toggle_refused
            ),
        ]
