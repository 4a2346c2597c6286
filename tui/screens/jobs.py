"""Jobs: the bulk jobs clientlinkd runs and ran, newest first; and the audit log (l)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Static

from clientlink.common import protocol as p
from clientlink.common.protocol import (
    AuditEntry,
    Job,
    JobKind,
)
from clientlink.common.wording import waiting_for_sign_in
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import relative_time
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.business_reauth import BusinessReauthScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.widgets.job_status import state_text
from clientlink.tui.widgets.literal_table import LiteralTable
from clientlink.tui.widgets.offline_banner import OfflineBanner

JOBS_LIMIT = 200
AUDIT_LIMIT = 500
KIND_LABELS = {JobKind.REAUTHORISE: "Re-authorise", JobKind.REIMPORT: "Re-import"}
JOB_COLUMNS = [
    ("id", "Job", 5),
    ("kind", "Kind", 12),
    ("state", "State", 9),
    ("progress", "Done/Failed/All", 15),
    ("actor", "Who", 12),
    ("when", "When", 9),
]
AUDIT_COLUMNS = [("when", "When", 9), ("actor", "Who", 12), ("action", "Action", 24)]


def progress_cell(job: Job) -> Text:
    """``120 / 3 / 200`` with the failures in red when there are any."""
    cell = Text(f"{job.done} / ")
    cell.append(str(job.failed), style="bold red" if job.failed else "")
    cell.append(f" / {job.total}")
    return cell


def audit_action(entry: AuditEntry) -> str:
    """The daemon's action name in words: ``clients.deactivate`` → ``Clients deactivate``."""
    return entry.action.replace(".", " ").replace("_", " ").capitalize()


class JobsScreen(DaemonScreen[None]):
    """Running and finished jobs; Enter reattaches to one. l shows the audit log."""

    TITLE = "Jobs"
    HELP = (
        "Every bulk job clientlinkd is running or has run, newest first: what it does, where "
        "it stands, how many clients are done, failed and in all, who started it and when. "
        "Jobs live in clientlinkd, so they keep running when clientlink is closed; Enter "
        "opens the highlighted job's progress (pause, cancel, retry failures, export).\n\n"
        "l switches to the audit log — who did what to which client — and back."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="jobs.back"),
        Binding("l", "toggle_audit", "Audit log / Jobs", id="jobs.toggle_audit"),
        Binding("d", "open_job", "Open job (also Enter)", show=False, id="jobs.open"),
        Binding("f5", "reload", "Reload", id="jobs.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="jobs.reload_ctrl"),
    ]

    showing_audit: reactive[bool] = reactive(False, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, Job] = {}
        self.client_names: dict[int, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield Static("Loading jobs…", id="jobs-summary")
        with ContentSwitcher(initial="jobs-table", id="jobs-switcher"):
            yield LiteralTable(cursor_type="row", zebra_stripes=True, id="jobs-table")
            yield LiteralTable(cursor_type="row", zebra_stripes=True, id="audit-table")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        jobs = self.query_one("#jobs-table", DataTable)
        for key, label, width in JOB_COLUMNS:
            jobs.add_column(label, key=key, width=width)
        audit = self.query_one("#audit-table", DataTable)
        for key, label, width in AUDIT_COLUMNS:
            audit.add_column(label, key=key, width=width)
        fixed = sum(width + 2 for _, _, width in AUDIT_COLUMNS)
        self.client_width = max(12, (self.size.width or 80) - fixed - 2 - 2)
        audit.add_column("Client", key="client", width=self.client_width)
        jobs.focus()
        if self.clientlink.connected:
            self.load_jobs()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        """Ask the daemon again."""
        if self.showing_audit:
            self.load_audit()
        else:
            self.load_jobs()

    @work(exclusive=True, group="load-jobs", exit_on_error=False)
    async def load_jobs(self) -> None:
        """``jobs.list``, newest first."""
        if not self.clientlink.connected:
            return
        result = await self.clientlink.daemon.call(p.JOBS_LIST, limit=JOBS_LIMIT)
        table = self.query_one("#jobs-table", DataTable)
        keep = self.highlighted_job_id()
        table.clear()
        self.jobs = {job.id: job for job in result.items}
        for job in result.items:
            table.add_row(*self._cells(job), key=str(job.id))
        if keep in self.jobs:
            table.move_cursor(row=table.get_row_index(str(keep)))
        self._show_summary()

    def _cells(self, job: Job) -> list[Text | str]:
        return [
            str(job.id),
            KIND_LABELS.get(job.kind, job.kind.value),
            state_text(job.state),
            progress_cell(job),
            Text(job.actor, no_wrap=True, overflow="ellipsis"),
            relative_time(job.created_at),
        ]

    def _show_summary(self) -> None:
        if self.showing_audit:
            text = Text("Audit log, newest first", style="bold")
            text.append("  · l shows the jobs", style="dim")
        elif not self.jobs:
            text = Text("No jobs yet. Bulk Actions (b on Manage Clients) starts one.", style="dim")
        else:
            running = sum(1 for job in self.jobs.values() if not job.state.finished)
            plural = "s" if len(self.jobs) != 1 else ""
            text = Text(f"{len(self.jobs)} job{plural}", style="bold")
            text.append(f", {running} not finished" if running else "")
            text.append("  · Enter opens one · l audit log", style="dim")
            for job in self.jobs.values():
                if job.waiting_for_sign_in is not None:
                    said = waiting_for_sign_in(job.waiting_for_sign_in.business)
                    text.append(f"\nJob {job.id} is {said}: Enter continues", style="magenta")
                    break
        self.query_one("#jobs-summary", Static).update(text)

    @work(exclusive=True, group="load-audit", exit_on_error=False)
    async def load_audit(self) -> None:
        """``audit.list``, with client names from ``clients.list`` (inactive included)."""
        if not self.clientlink.connected:
            return
        daemon = self.clientlink.daemon
        result = await daemon.call(p.AUDIT_LIST, limit=AUDIT_LIMIT)
        if not self.client_names:
            listing = await fetch_clients(daemon, {"active": None})
            self.client_names.update({client.id: client.name for client in listing.items})
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        for entry in result.items:
            client = ""
            if entry.client_id is not None:
                client = self.client_names.get(entry.client_id, f"client {entry.client_id}")
            table.add_row(
                relative_time(entry.at),
                Text(entry.actor, no_wrap=True, overflow="ellipsis"),
                Text(audit_action(entry), no_wrap=True, overflow="ellipsis"),
                self._clipped(client, self.client_width),
                key=str(entry.id),
            )

    @staticmethod
    def _clipped(value: str, width: int) -> Text:
        cell = Text(value, no_wrap=True)
        cell.truncate(width, overflow="ellipsis")
        return cell

    # ------------------------------------------------------------------ live updates

    def on_job_progressed(self, message: messages.JobProgressed) -> None:
        event = message.event
        job = self.jobs.get(event.job_id)
        if job is None:
            self.load_jobs()  # a job started elsewhere
            return
        job = job.model_copy(
            update={
                "state": event.state,
                "done": event.done,
                "failed": event.failed,
                "total": event.total,
                "waiting_for_sign_in": event.waiting_for_sign_in,
            }
        )
        self.jobs[job.id] = job
        table = self.query_one("#jobs-table", DataTable)
        for (key, _, _), value in zip(JOB_COLUMNS, self._cells(job), strict=True):
            table.update_cell(str(job.id), key, value)

    def on_job_finished(self, message: messages.JobFinished) -> None:
        self.load_jobs()

    # ------------------------------------------------------------------ actions

    def highlighted_job_id(self) -> int | None:
        """The job on the cursor row, if there is one."""
        table = self.query_one("#jobs-table", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    @on(DataTable.RowSelected, "#jobs-table")
    def _row_selected(self) -> None:
        self.action_open_job()

    def action_open_job(self) -> None:
        """Reattach to the highlighted job's progress (or its next sign-in)."""
        job = self.jobs.get(self.highlighted_job_id() or -1)
        if job is None:
            self.notify("No job selected.", severity="warning")
            return
        if job.waiting_for_sign_in is not None and job.provider is not None:
            self.app.push_screen(BusinessReauthScreen(job.provider, job_id=job.id))
            return
        self.app.push_screen(JobProgressScreen(job.id, kind=job.kind))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_job":
            return not self.showing_audit
        return True

    def action_toggle_audit(self) -> None:
        """Switch between the jobs and the audit log."""
        self.showing_audit = not self.showing_audit

    def watch_showing_audit(self, showing: bool) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "audit-table" if showing else "jobs-table"
        self.query_one(f"#{switcher.current}", DataTable).focus()
        self._show_summary()
        self.refresh_bindings()
        self.action_reload()

    def action_back(self) -> None:
        """Back to where this screen was opened from."""
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Job: open", "The highlighted job's progress (Enter)", self.action_open_job
            ),
            PaletteCommand(
                "Audit log: show", "Who did what to which client (l)", self.action_toggle_audit
            ),
            PaletteCommand("Jobs: reload", "Ask clientlinkd again (F5)", self.action_reload),
        ]
