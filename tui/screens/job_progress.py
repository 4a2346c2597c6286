"""One bulk job, live: a progress bar, the client being worked on, failures and the outcome.

The job lives in clientlinkd, so this screen can be left (Esc) while it runs and reopened
from the Jobs screen, even after the TUI was restarted.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, DataTable, Footer, Header, Input, ProgressBar, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    JOBS_CANCEL,
    JOBS_PAUSE,
    JOBS_RESUME,
    ErrorCode,
    ItemState,
    Job,
    JobIdParams,
    JobItem,
    JobKind,
    JobProgress,
    JobState,
    Method,
)
from clientlink.common.wording import agree, plural
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.reimport_review import ReimportReviewScreen
from clientlink.tui.widgets.job_failures import JobFailures, failure_detail
from clientlink.tui.widgets.job_status import JobSummary, job_counts, job_current, job_heading
from clientlink.tui.widgets.offline_banner import OfflineBanner

FAILURES_LIMIT = 500


def default_outcome_path(job_id: int) -> str:
    """Where a job's outcome CSV goes unless the person says otherwise."""
    return f"~/clientlink-job-{job_id}.csv"


class JobProgressScreen(DaemonScreen[None]):
    """Watch one job; at the end, retry its failures, export its outcome, or go back."""

    TITLE = "Job"
    HELP = (
        "One bulk job as clientlinkd runs it: how many clients are done, how many failed "
        "(with the reason for each), the rate, the time left, and the client being worked "
        "on now.\n\n"
        "The job runs in clientlinkd, not in this window: Esc leaves it running, and the "
        "Jobs screen (j on Manage Clients, or F4) brings you back to it — even after "
        "clientlink was closed.\n\n"
        "p pauses or resumes it; c cancels it (clients not started yet are skipped). When it "
        "ends: r retries the failed clients as a new job, e exports every client's outcome "
        "to a CSV file, m goes back to Manage Clients. After a re-import, v reviews the "
        "differences found before anything is changed."
    )
    BINDINGS = [
        Binding("escape", "leave", "Leave (keeps running)", id="job.leave"),
        Binding("escape", "back", "Back", id="job.back"),
        Binding("p", "pause_resume", "Pause/Resume", id="job.pause_resume"),
        Binding("c", "cancel_job", "Cancel job", id="job.cancel"),
        Binding("r", "retry_failed", "Retry failed", id="job.retry"),
        Binding("v", "review", "Review changes", id="job.review"),
        Binding("e", "export", "Export outcome", id="job.export"),
        Binding("m", "manage_clients", "Manage Clients", id="job.manage_clients"),
        Binding("s", "sign_in", "Sign in", id="job.sign_in"),
        Binding("f5", "reload", "Reload", show=False, id="job.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="job.reload_ctrl"),
    ]

    job: reactive[Job | None] = reactive(None, init=False, always_update=True)
    """The job as clientlinkd last described it."""

    def __init__(self, job_id: int, *, kind: JobKind | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.kind = kind
        self.changed_items = 0
        """After a re-import: how many clients differ from the software (not applied)."""
        self.applied_items = 0
        """After a re-import: how many clients' differences were applied."""
        self._failures_shown = -1
        self.failures: dict[str, JobItem] = {}
        """The failed items shown, by item id."""
        self._watched_running = False
        """Whether this screen saw the job run (then the review opens by itself at the end)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Vertical(id="job-body"):
            yield Static(self._heading(), id="job-title")
            yield ProgressBar(show_eta=False, id="job-bar")
            yield Static("Loading the job from clientlinkd…", id="job-counts")
            yield Static("", id="job-current")
            yield JobSummary("", id="job-summary")
            yield Static(Text("Failures", style="bold"), id="job-failures-title")
            yield JobFailures(cursor_type="row", zebra_stripes=True, id="job-failures")
            yield Static("", id="job-failure-detail")
            with Horizontal(id="job-export"):
                yield Static("Save to:", id="job-export-label")
                yield Input(default_outcome_path(self.job_id), id="job-export-path", compact=True)
                yield Button("Export (Enter)", id="job-export-button", compact=True)
            with Horizontal(id="job-buttons"):
                yield Button("Pause (p)", id="job-pause", compact=True)
                yield Button("Cancel job (c)", id="job-cancel", variant="error", compact=True)
                yield Button("Retry failed (r)", id="job-retry", variant="warning", compact=True)
                yield Button("Review changes (v)", id="job-review", variant="primary", compact=True)
                yield Button("Export outcome (e)", id="job-export-open", compact=True)
                yield Button("Manage Clients (m)", id="job-manage", variant="primary", compact=True)
        yield Footer(show_command_palette=False)

    def _heading(self) -> Text:
        return job_heading(self.kind, self.job_id, self.job)

    def on_mount(self) -> None:
        self.query_one("#job-failures", JobFailures).add_failure_columns()
        self.query_one("#job-failures", DataTable).focus()
        if self.clientlink.connected:
            self.load_job()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_job()

    @work(exclusive=True, group="load-job", exit_on_error=False)
    async def load_job(self) -> None:
        """Read the job, and its failures when they changed, from the daemon."""
        if not self.clientlink.connected:
            return
        job = await self.clientlink.daemon.call(p.JOBS_GET, job_id=self.job_id)
        self.job = job
        await self._load_failures(job)
        if job.state.finished and job.kind == JobKind.REIMPORT:
            await self._count_changes()

    async def _load_failures(self, job: Job) -> None:
        if job.failed == self._failures_shown:
            return
        with_failures = await self.clientlink.daemon.call(
            p.JOBS_GET,
            job_id=self.job_id,
            items=True,
            item_state=ItemState.FAILED.value,
            limit=FAILURES_LIMIT,
        )
        self._failures_shown = job.failed
        self.failures = {str(item.id): item for item in with_failures.items or []}
        table = self.query_one("#job-failures", JobFailures)
        table.show(with_failures.items or [], self.size.width)
        self.set_class(bool(table.row_count), "-has-failures")
        self._show_failure_detail()

    @on(DataTable.RowHighlighted, "#job-failures")
    def _show_failure_detail(self) -> None:
        """The highlighted failure's whole reason: the column cuts it short."""
        key = self.query_one("#job-failures", JobFailures).highlighted_key()
        detail = self.query_one("#job-failure-detail", Static)
        item = self.failures.get(key) if key is not None else None
        detail.update(failure_detail(item) if item is not None else "")

    async def _count_changes(self) -> None:
        job = await self.clientlink.daemon.call(
            p.JOBS_GET, job_id=self.job_id, items=True, item_state=ItemState.DONE.value, limit=2000
        )
        items = [item for item in job.items or [] if item.changes]
        self.changed_items = sum(1 for item in items if not item.applied_at)
        self.applied_items = len(items) - self.changed_items
        self.set_class(bool(self.changed_items), "-has-changes")
        self._show_summary(job)
        self.refresh_bindings()
        if self.changed_items and self._watched_running and self.is_current:
            self._watched_running = False  # once
            self.action_review()

    def action_reload(self) -> None:
        """Ask the daemon for the job again."""
        self._failures_shown = -1
        self.load_job()

    # ------------------------------------------------------------------ live updates

    def on_job_progressed(self, message: messages.JobProgressed) -> None:
        if message.event.job_id == self.job_id:
            self._apply_event(message.event)

    def on_job_finished(self, message: messages.JobFinished) -> None:
        if message.event.job_id == self.job_id:
            self._apply_event(message.event)
            self.load_job()  # the final failures, and a re-import's changes

    def _apply_event(self, event: JobProgress) -> None:
        job = self.job
        if job is None:
            self.load_job()
            return
        self.job = job.model_copy(
            update={
                "state": event.state,
                "total": event.total,
                "done": event.done,
                "failed": event.failed,
                "current": event.current,
                "rate_per_minute": event.rate_per_minute,
                "eta_seconds": event.eta_seconds,
                "waiting_for_sign_in": event.waiting_for_sign_in,
            }
        )
        if event.failed != self._failures_shown and not event.state.finished:
            self.load_job()

    # ------------------------------------------------------------------ showing

    def watch_job(self, job: Job | None) -> None:
        if job is None:
            return
        self.kind = job.kind
        if job.state == JobState.RUNNING:
            self._watched_running = True
        for state in JobState:
            self.set_class(job.state == state, f"-{state.value}")
        self.set_class(job.state.finished, "-finished")
        self.set_class(job.kind == JobKind.REIMPORT, "-reimport")
        self.query_one("#job-title", Static).update(self._heading())
        self.query_one("#job-bar", ProgressBar).update(
            total=max(job.total, 1), progress=job.done + job.failed
        )
        self.query_one("#job-counts", Static).update(job_counts(job))
        self.query_one("#job-current", Static).update(job_current(job))
        self.query_one("#job-pause", Button).label = (
            "Resume (p)" if job.state == JobState.PAUSED else "Pause (p)"
        )
        self._show_summary(job)
        self.refresh_bindings()

    def _show_summary(self, job: Job) -> None:
        self.query_one("#job-summary", JobSummary).show(job, self.changed_items, self.applied_items)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        job = self.job
        finished = job is not None and job.state.finished
        if action in ("pause_resume", "cancel_job"):
            return job is not None and not finished
        if action == "retry_failed":
            return finished and job is not None and job.failed > 0
        if action == "review":
            return (
                finished
                and job is not None
                and job.kind == JobKind.REIMPORT
                and bool(self.changed_items)
            )
        if action == "export":
            return job is not None
        if action == "sign_in":
            return job is not None and job.waiting_for_sign_in is not None
        # Esc is "leave" while the job runs and "back" once it ended: the footer says which.
        if action == "leave":
            return job is not None and not finished
        if action == "back":
            return job is None or finished
        return True

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        """Close this screen."""
        self.action_leave()

    def action_leave(self) -> None:
        """Close this screen; the job keeps running in clientlinkd."""
        if self.query_one("#job-export-path", Input).has_focus:
            self.remove_class("-exporting")
            self.query_one("#job-failures", DataTable).focus()
            return
        job = self.job
        if job is not None and not job.state.finished:
            self.notify(
                f"Job {self.job_id} keeps running in clientlinkd: "
                "j on Manage Clients (or F4) brings you back."
            )
        self.dismiss()

    def action_pause_resume(self) -> None:
        """Pause a running job, or resume a paused one."""
        job = self.job
        if job is None or job.state.finished:
            return
        self.call_job(JOBS_RESUME if job.state == JobState.PAUSED else JOBS_PAUSE)

    def action_cancel_job(self) -> None:
        """Cancel the job after a confirm; clients not started are skipped."""
        job = self.job
        if job is None or job.state.finished:
            return
        left = job.total - job.done - job.failed

        def cancel_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.call_job(JOBS_CANCEL)

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel job {self.job_id}? {plural(left, 'client')} not done yet "
                f"{agree(left, 'is', 'are')} skipped; "
                f"the {job.done} done stay done.",
                yes_label="Cancel the job",
                no_label="Keep running",
            ),
            cancel_if_confirmed,
        )

    @work(exclusive=True, group="job-control", exit_on_error=False)
    async def call_job(self, method: Method[JobIdParams, Job]) -> None:
        """``jobs.pause``, ``jobs.resume`` or ``jobs.cancel``; shows the job it returns."""
        self.job = await self.clientlink.daemon.call(method, job_id=self.job_id)

    def action_retry_failed(self) -> None:
        """Start a new job for the clients that failed, and watch it."""
        job = self.job
        if job is not None and job.state.finished and job.failed:
            self.retry_failed()

    @work(exclusive=True, group="job-control", exit_on_error=False)
    async def retry_failed(self) -> None:
        """``jobs.retry``, then this screen is replaced by the new job's."""
        started = await self.clientlink.daemon.call(p.JOBS_RETRY, job_id=self.job_id)
        self.app.switch_screen(JobProgressScreen(started.job_id, kind=self.kind))

    def action_review(self) -> None:
        """After a re-import: review the differences and apply the ones you choose."""
        job = self.job
        if job is None or job.kind != JobKind.REIMPORT or not job.state.finished:
            return
        # Back from the review: what is left to apply, in the counts and the summary.
        self.app.push_screen(ReimportReviewScreen(self.job_id), lambda _: self.load_job())

    def action_export(self) -> None:
        """Show the path field for the outcome CSV (Enter there writes it)."""
        self.add_class("-exporting")
        path = self.query_one("#job-export-path", Input)
        path.focus()
        path.cursor_position = len(path.value)

    @on(Input.Submitted, "#job-export-path")
    @on(Button.Pressed, "#job-export-button")
    def _export_submitted(self) -> None:
        raw = self.query_one("#job-export-path", Input).value.strip()
        if not raw:
            self.notify("Type where the CSV file should go.", severity="warning")
            return
        self.export_outcome(str(Path(raw).expanduser().resolve()))

    @work(exclusive=True, group="job-export", exit_on_error=False)
    async def export_outcome(self, path: str, overwrite: bool = False) -> None:
        """``jobs.export``; a file that exists is only replaced after a confirm."""
        try:
            result = await self.clientlink.daemon.call(
                p.JOBS_EXPORT, job_id=self.job_id, path=path, overwrite=overwrite
            )
        except RpcError as exc:
            if exc.error_code == ErrorCode.CONFLICT and not overwrite:  # the file exists

                def overwrite_if_confirmed(confirmed: bool | None) -> None:
                    if confirmed:
                        self.export_outcome(path, overwrite=True)

                self.app.push_screen(
                    ConfirmScreen(f"{exc.message}\n\nReplace {path}?", yes_label="Replace"),
                    overwrite_if_confirmed,
                )
                return
            self.notify(exc.message, title="Export failed", severity="error", timeout=10)
            return
        self.remove_class("-exporting")
        self.query_one("#job-failures", DataTable).focus()
        self.notify(
            f"{plural(result.rows, 'row')} written to {result.path}", title="Outcome exported"
        )

    def action_sign_in(self) -> None:
        """A job waiting for a sign-in to its next business: go on with the sign-ins."""
        from clientlink.tui.screens.business_reauth import BusinessReauthScreen

        job = self.job
        if job is not None and job.waiting_for_sign_in is not None and job.provider:
            self.app.switch_screen(BusinessReauthScreen(job.provider, job_id=job.id))

    def action_manage_clients(self) -> None:
        """Back to Manage Clients, reloaded (the job keeps running if it has not ended)."""
        self.clientlink.show_manage_clients()

    @on(Button.Pressed, "#job-pause")
    def _pause_pressed(self) -> None:
        self.action_pause_resume()

    @on(Button.Pressed, "#job-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel_job()

    @on(Button.Pressed, "#job-retry")
    def _retry_pressed(self) -> None:
        self.action_retry_failed()

    @on(Button.Pressed, "#job-review")
    def _review_pressed(self) -> None:
        self.action_review()

    @on(Button.Pressed, "#job-export-open")
    def _export_pressed(self) -> None:
        self.action_export()

    @on(Button.Pressed, "#job-manage")
    def _manage_pressed(self) -> None:
        self.action_manage_clients()

    def palette_commands(self) -> list[PaletteCommand]:
        commands = [
            PaletteCommand(
                "Job: leave running", "Back; the job keeps going (Esc)", self.action_leave
            ),
            PaletteCommand(
                "Job: pause or resume",
                "Pause a running job, resume a paused one (p)",
                self.action_pause_resume,
            ),
            PaletteCommand(
                "Job: cancel", "Skip the clients not done yet (c)", self.action_cancel_job
            ),
            PaletteCommand(
                "Job: retry failed",
                "A new job for the clients that failed (r)",
                self.action_retry_failed,
            ),
            PaletteCommand(
                "Job: export outcome",
                "Every client's outcome to a CSV file (e)",
                self.action_export,
            ),
            PaletteCommand(
                "Job: manage clients", "Back to the client list (m)", self.action_manage_clients
            ),
        ]
        if self.kind == JobKind.REIMPORT:
            commands.append(
                PaletteCommand(
                    "Job: review changes",
                    "Apply the differences you choose (v)",
                    self.action_review,
                )
            )
        return commands
