"""Export clients to CSV: the clients the list shows, with the columns a person ticks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    CLIENT_EXPORT_COLUMNS,
    CLIENT_EXPORT_LABELS,
    ErrorCode,
    ExportResult,
)
from clientlink.common.wording import plural
from clientlink.tui.screens.base import DaemonModalScreen
from clientlink.tui.widgets.checklist import Checklist

DEFAULT_EXPORT_PATH = "~/clientlink-clients.csv"
DEFAULT_COLUMNS = ("name", "abn", "provider", "status", "status_reason", "email", "phone")


def column_label(column: str) -> Text:
    """A column's name in words (its CSV heading), and its machine name where that differs:
    ``Software  provider``."""
    words = CLIENT_EXPORT_LABELS[column]
    label = Text(words)
    if words.lower() != column.replace("_", " "):
        label.append(f"  {column}", style="dim")
    return label


class ExportClientsScreen(DaemonModalScreen[ExportResult | None]):
    """Columns, a path and overwrite; Enter writes the CSV, errors stay in the dialog."""

    TITLE = "Export clients to CSV"

    HELP = (
        "Write the clients Manage Clients shows (its name and status filters apply) to a "
        "CSV file. Tick the columns with space (a ticks all, n none), type where the file "
        "goes, and press Enter. clientlinkd writes the file; an existing file is only "
        "replaced when Overwrite is ticked."
    )
    BINDINGS = [
        Binding("escape", "close", "Cancel", id="export.close"),
        Binding("enter", "export", "Export", id="export.export"),
        Binding("a", "tick_all", "All columns", show=False, id="export.all"),
        Binding("n", "tick_none", "No columns", show=False, id="export.none"),
    ]

    def __init__(self, filter_params: dict[str, Any], scope: str) -> None:
        super().__init__()
        self.filter_params = filter_params
        self.scope = scope
        """Which clients, in words (``all 40 clients shown``)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog") as dialog:
            dialog.border_title = "Export clients to CSV"
            dialog.border_subtitle = "Enter exports · Esc cancels · F1 help"
            yield Static(f"Writes {self.scope}. Columns (space ticks):", id="export-scope")
            yield Checklist[str](
                *[
                    (column_label(column), column, column in DEFAULT_COLUMNS)
                    for column in CLIENT_EXPORT_COLUMNS
                ],
                id="export-columns",
            )
            with Horizontal(id="export-path-row"):
                yield Static("File:", id="export-path-label")
                yield Input(DEFAULT_EXPORT_PATH, id="export-path", compact=True)
            yield Checkbox("Overwrite the file if it exists", id="export-overwrite", compact=True)
            yield Checkbox(
                "Machine names (provider, needs_reauth) instead of words",
                id="export-machine-names",
                compact=True,
            )
            yield Static("", id="export-error")
            with Horizontal(id="export-buttons"):
                yield Button("Export (Enter)", id="export-go", variant="primary", compact=True)
                yield Button("Cancel (Esc)", id="export-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Checklist).focus()

    def action_tick_all(self) -> None:
        """Tick every column."""
        self.query_one(Checklist).select_all()

    def action_tick_none(self) -> None:
        """Untick every column."""
        self.query_one(Checklist).deselect_all()

    def _show_error(self, message: str) -> None:
        self.query_one("#export-error", Static).update(Text(message, style="bold red"))
        self.add_class("-error")

    def action_export(self) -> None:
        """Write the file with the ticked columns."""
        ticked = set(self.query_one(Checklist).selected)
        columns = [column for column in CLIENT_EXPORT_COLUMNS if column in ticked]
        if not columns:
            self._show_error("Tick at least one column (space, or a for all).")
            return
        raw = self.query_one("#export-path", Input).value.strip()
        if not raw:
            self._show_error("Type where the CSV file should go.")
            return
        path = str(Path(raw).expanduser().resolve())
        overwrite = self.query_one("#export-overwrite", Checkbox).value
        machine_names = self.query_one("#export-machine-names", Checkbox).value
        self.export(path, columns, overwrite, machine_names)

    @work(exclusive=True, group="export-clients", exit_on_error=False)
    async def export(
        self, path: str, columns: list[str], overwrite: bool, machine_names: bool = False
    ) -> None:
        """``clients.export``; a refusal (the file exists, a folder is missing) stays here."""
        try:
            result = await self.clientlink.daemon.call(
                p.CLIENTS_EXPORT,
                path=path,
                columns=columns,
                filter=self.filter_params,
                overwrite=overwrite,
                machine_names=machine_names,
            )
        except RpcError as exc:
            exists = exc.error_code == ErrorCode.CONFLICT  # the file is already there
            hint = "\nTick Overwrite to replace it." if exists and not overwrite else ""
            self._show_error(f"{exc.message}{hint}")
            return
        written = f"{plural(result.rows, 'client')} written to {result.path}"
        if result.created_folder:
            written = f"Created the folder {result.created_folder}.\n{written}"
        self.app.notify(written, title="Clients exported")
        self.dismiss(result)

    @on(Input.Submitted, "#export-path")
    @on(Button.Pressed, "#export-go")
    def _export_pressed(self) -> None:
        self.action_export()

    @on(Button.Pressed, "#export-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        """Close without writing anything."""
        self.dismiss(None)
