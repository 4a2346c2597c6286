"""Re-authorise Bulk Clients for software whose one sign-in covers one business (Class Super).

Before any sign-in, :class:`BusinessReauthScreen` lists the funds needing re-authorisation
labelled by business, ticked, and says how many sign-ins that takes ("These 240 funds are
in 3 Class Super businesses: you will sign in 3 times"). Start records the whole job in
clientlinkd; the same screen then walks through the sign-ins one by one ("Sign-in 2 of 3:
business ACME02 — 80 funds"), each on the sign-in screen, with the job's progress bar
running after each. A business can be skipped (its funds fail with the reason). The job
lives in clientlinkd: after a restart the Jobs screen opens this walk again where it
stopped.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, Footer, Header, ProgressBar, SelectionList, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    AuthCompleteResult,
    Client,
    ConnectionStatus,
    Job,
    JobKind,
    SignInState,
)
from clientlink.common.wording import plural, sign_in_count, sign_in_step
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from clientlink.tui.widgets.job_status import job_counts, job_heading
from clientlink.tui.widgets.offline_banner import OfflineBanner
from clientlink.tui.widgets.status_cell import status_text

BUSINESS_COLUMN = 10
STATUS_COLUMN = 14
SIGN_IN_WORDS = {
    SignInState.SIGNED_IN: ("signed in", "green"),
    SignInState.SKIPPED: ("skipped", "yellow"),
    SignInState.PENDING: ("to sign in", "dim"),
}


def needs_reauth(client: Client) -> bool:
    return client.active and client.status != ConnectionStatus.CONNECTED


class BusinessReauthScreen(DaemonScreen[None]):
    """The funds by business and the sign-ins they take; then one job, sign-in by sign-in."""

    TITLE = "Re-authorise Bulk Clients"
    HELP = (
        "This software authorises one business per sign-in, so re-authorising funds of "
        "several businesses takes one sign-in for each. The list shows the funds that need "
        "re-authorisation with their business, ticked; the line above says how many "
        "sign-ins the ticked funds take.\n\n"
        "space ticks or unticks a fund; a ticks all, n none. Enter records the job in "
        "clientlinkd, then walks through the sign-ins: Enter (or s) signs in to the "
        "business shown, and its funds are re-authorised while you go on; k skips that "
        "business (its funds are marked failed, not signed in). c cancels the job.\n\n"
        "The job lives in clientlinkd: Esc leaves it waiting, and the Jobs screen "
        "(F4) brings you back to the next sign-in, even after a restart."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="business_reauth.back"),
        Binding("enter", "go", "Start / Sign in", id="business_reauth.go"),
        Binding("s", "sign_in", "Sign in", show=False, id="business_reauth.sign_in"),
        Binding("k", "skip", "Skip this business", id="business_reauth.skip"),
        Binding("c", "cancel_job", "Cancel job", id="business_reauth.cancel"),
        Binding("a", "tick_all", "All", id="business_reauth.all"),
        Binding("n", "tick_none", "None", id="business_reauth.none"),
    ]
    DEFAULT_CSS = """
    BusinessReauthScreen #business-body { height: 1fr; }
    BusinessReauthScreen #business-summary { height: auto; }
    BusinessReauthScreen #business-step { height: auto; margin: 1 0 0 0; }
    BusinessReauthScreen #business-bar, BusinessReauthScreen #business-counts { display: none; }
    BusinessReauthScreen.-walking #business-bar,
    BusinessReauthScreen.-walking #business-counts { display: block; }
    BusinessReauthScreen.-walking #business-list { display: none; }
    BusinessReauthScreen #business-steps { height: 1fr; display: none; }
    BusinessReauthScreen.-walking #business-steps { display: block; }
    BusinessReauthScreen #business-buttons { height: 1; }
    """

    job: reactive[Job | None] = reactive(None, init=False, always_update=True)
    """The job once recorded, as clientlinkd last described it."""

    def __init__(
        self, provider: str, software: str | None = None, *, job_id: int | None = None
    ) -> None:
        """Choose funds and start (``job_id`` None), or continue job ``job_id``'s sign-ins."""
        super().__init__()
        self.provider = provider
        self.software = software or provider
        self.job_id = job_id
        self.clients: dict[int, Client] = {}
        self.ticked: set[int] = set()
        self._signing_in = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Vertical(id="business-body"):
            yield Static("Loading the funds to re-authorise…", id="business-summary")
            yield Checklist[int](id="business-list")
            yield ProgressBar(show_eta=False, id="business-bar")
            yield Static("", id="business-counts")
            yield Static("", id="business-step")
            yield Static("", id="business-steps")
            with Horizontal(id="business-buttons"):
                yield Button("Start (Enter)", id="business-go", variant="primary", compact=True)
                yield Button("Skip this business (k)", id="business-skip", compact=True)
                yield Button("Back (Esc)", id="business-back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(Checklist).focus()
        if self.clientlink.connected:
            self.load()

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load()

    @work(exclusive=True, group="business-load", exit_on_error=False)
    async def load(self) -> None:
        """The software's name and clients; the job when there is one."""
        daemon = self.clientlink.daemon
        if self.software == self.provider:
            for info in (await daemon.call(p.PROVIDERS_LIST)).items:
                if info.name == self.provider:
                    self.software = info.display_name
        listing = await fetch_clients(daemon, {"provider": self.provider, "active": None})
        self.clients = {client.id: client for client in listing.items}
        if self.job_id is None:
            self.ticked = {c.id for c in self._choices()}
            self._rebuild()
        else:
            self.job = await daemon.call(p.JOBS_GET, job_id=self.job_id)

    # ------------------------------------------------------------------ choosing funds

    def _choices(self) -> list[Client]:
        """The funds to re-authorise, business by business, by name."""
        return sorted(
            (c for c in self.clients.values() if needs_reauth(c)),
            key=lambda c: ((c.business or "").casefold(), c.name.casefold()),
        )

    def _prompt(self, client: Client) -> Text:
        width = max(16, (self.size.width or 80) - BUSINESS_COLUMN - STATUS_COLUMN - 12)
        prompt = Text((client.business or "?").ljust(BUSINESS_COLUMN)[:BUSINESS_COLUMN], "bold")
        prompt.append(" ")
        name = Text(client.name, no_wrap=True)
        name.truncate(width, overflow="ellipsis", pad=True)
        prompt.append_text(name)
        prompt.append("  ")
        prompt.append_text(status_text(client.status))
        return prompt

    def _rebuild(self) -> None:
        checklist = self.query_one(Checklist)
        checklist.clear_options()
        shown = self._choices()
        checklist.add_options([(self._prompt(c), c.id, c.id in self.ticked) for c in shown])
        if shown:
            checklist.highlighted = 0
        self._show_choice()

    @on(SelectionList.SelectedChanged, "#business-list")
    def _ticks_changed(self) -> None:
        self.ticked = set(self.query_one(Checklist).selected)
        self._show_choice()

    def _ticked_businesses(self) -> list[str]:
        seen: dict[str, None] = {}
        for client in self._choices():
            if client.id in self.ticked:
                seen.setdefault(client.business or "?", None)
        return list(seen)

    def _show_choice(self) -> None:
        if self.job_id is not None:
            return
        choices = self._choices()
        if not choices:
            summary = Text(f"Every {self.software} fund is connected: nothing to do.", "green")
        else:
            summary = Text(
                sign_in_count(len(self.ticked), len(self._ticked_businesses()), self.software),
                style="bold",
            )
            summary.append(f".\n{plural(len(choices), 'fund')} need re-authorisation; ")
            summary.append("space ticks · a all · n none · Enter starts", style="dim")
        self.query_one("#business-summary", Static).update(summary)
        self.refresh_bindings()

    def action_tick_all(self) -> None:
        """Tick every fund."""
        self.query_one(Checklist).select_all()

    def action_tick_none(self) -> None:
        """Untick every fund."""
        self.query_one(Checklist).deselect_all()

    @work(exclusive=True, group="business-start", exit_on_error=False)
    async def start_job(self) -> None:
        """``jobs.start``: the whole job is recorded before the first sign-in."""
        ordered = [c.id for c in self._choices() if c.id in self.ticked]
        started = await self.clientlink.daemon.call(
            p.JOBS_START, kind=JobKind.REAUTHORISE.value, client_ids=ordered
        )
        self.job_id = started.job_id
        self.job = await self.clientlink.daemon.call(p.JOBS_GET, job_id=started.job_id)
        if self.job.waiting_for_sign_in is not None:
            self.action_sign_in()

    # ------------------------------------------------------------------ the walk

    def watch_job(self, job: Job | None) -> None:
        if job is None:
            return
        self.add_class("-walking")
        self.query_one("#business-go", Button).label = "Sign in (Enter)"
        self.query_one("#business-summary", Static).update(
            job_heading(JobKind.REAUTHORISE, job.id, job)
        )
        self.query_one("#business-bar", ProgressBar).update(
            total=max(job.total, 1), progress=job.done + job.failed
        )
        self.query_one("#business-counts", Static).update(job_counts(job))
        wait = job.waiting_for_sign_in
        step = self.query_one("#business-step", Static)
        if wait is not None:
            line = Text(sign_in_step(wait.index, wait.of, wait.business, wait.funds), "bold")
            line.append("\nEnter signs in · k skips this business · Esc leaves it waiting", "dim")
            step.update(line)
        else:
            step.update(Text("Every sign-in is done.", style="green"))
        steps = Text()
        for number, sign_in in enumerate(job.sign_ins or [], start=1):
            words, style = SIGN_IN_WORDS[sign_in.state]
            if wait is not None and wait.index == number:
                words, style = "next", "bold magenta"
            steps.append(f"{number}. {sign_in.business:<{BUSINESS_COLUMN}} ")
            steps.append(f"{plural(sign_in.funds, 'fund'):<10} ")
            steps.append(f"{words}\n", style=style)
        self.query_one("#business-steps", Static).update(steps)
        self.refresh_bindings()
        if wait is None and not self._signing_in and self.is_current:
            # Nothing more to sign in to: the job's own screen follows it to the end.
            self.app.switch_screen(JobProgressScreen(job.id, kind=JobKind.REAUTHORISE))

    def on_job_progressed(self, message: messages.JobProgressed) -> None:
        if self.job_id is not None and message.event.job_id == self.job_id:
            self.refresh_job()

    def on_job_finished(self, message: messages.JobFinished) -> None:
        if self.job_id is not None and message.event.job_id == self.job_id:
            self.refresh_job()

    @work(exclusive=True, group="business-job", exit_on_error=False)
    async def refresh_job(self) -> None:
        if self.job_id is not None:
            self.job = await self.clientlink.daemon.call(p.JOBS_GET, job_id=self.job_id)

    def action_sign_in(self) -> None:
        """Sign in to the business the job waits for."""
        job = self.job
        if job is None or job.waiting_for_sign_in is None or self._signing_in:
            return
        wait = job.waiting_for_sign_in
        funds = [
            c.tenant_id or c.name
            for c in self.clients.values()
            if c.business == wait.business and c.tenant_id
        ]
        self._signing_in = True
        self.app.push_screen(
            SignInScreen(
                None,
                self.software,
                provider=self.provider,
                business=wait.business,
                approve_orgs=funds,
                new_connections=wait.funds,
            ),
            lambda result: self._signed_in(wait.business, result),
        )

    def _signed_in(self, business: str, result: AuthCompleteResult | None) -> None:
        self._signing_in = False
        if result is None:
            self.notify(
                f"Not signed in to {business}: Enter signs in, k skips it.", severity="warning"
            )
            self.refresh_job()
            return
        self.add_sign_in(result.grant_id)

    @work(exclusive=True, group="business-job", exit_on_error=False)
    async def add_sign_in(self, grant_id: int) -> None:
        """``jobs.add_sign_in``: the business's funds run; the next sign-in is shown."""
        assert self.job_id is not None
        try:
            self.job = await self.clientlink.daemon.call(
                p.JOBS_ADD_SIGN_IN, job_id=self.job_id, grant_id=grant_id
            )
        except RpcError as exc:
            self.notify(exc.message, title="Sign-in not used", severity="error", timeout=10)
            self.job = await self.clientlink.daemon.call(p.JOBS_GET, job_id=self.job_id)

    def action_skip(self) -> None:
        """Skip the business the job waits for, after a confirm."""
        job = self.job
        if job is None or job.waiting_for_sign_in is None:
            return
        wait = job.waiting_for_sign_in

        def skip_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.skip(wait.business)

        self.app.push_screen(
            ConfirmScreen(
                f"Skip business {wait.business}? Its {plural(wait.funds, 'fund')} stay "
                "not re-authorised (marked failed: not signed in).",
                yes_label="Skip it",
                no_label="Keep it",
            ),
            skip_if_confirmed,
        )

    @work(exclusive=True, group="business-job", exit_on_error=False)
    async def skip(self, business: str) -> None:
        assert self.job_id is not None
        try:
            self.job = await self.clientlink.daemon.call(
                p.JOBS_SKIP_SIGN_IN, job_id=self.job_id, business=business
            )
        except RpcError as exc:
            self.notify(exc.message, title="Not skipped", severity="error", timeout=10)
            self.job = await self.clientlink.daemon.call(p.JOBS_GET, job_id=self.job_id)

    def action_cancel_job(self) -> None:
        """Cancel the job after a confirm: funds not done yet are skipped."""
        job = self.job
        if job is None or job.state.finished:
            return

        def cancel_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.cancel_job()

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel job {job.id}? Funds not done yet are skipped; the {job.done} done "
                "stay done.",
                yes_label="Cancel the job",
                no_label="Keep it",
            ),
            cancel_if_confirmed,
        )

    @work(exclusive=True, group="business-job", exit_on_error=False)
    async def cancel_job(self) -> None:
        assert self.job_id is not None
        self.job = await self.clientlink.daemon.call(p.JOBS_CANCEL, job_id=self.job_id)

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        walking = self.job is not None
        waiting = walking and self.job is not None and self.job.waiting_for_sign_in is not None
        if action in ("tick_all", "tick_none"):
            return not walking and self.job_id is None
        if action in ("sign_in", "skip"):
            return waiting
        if action == "cancel_job":
            return walking and self.job is not None and not self.job.state.finished
        return True

    def action_go(self) -> None:
        """Start the job (choosing funds), or sign in to the next business (walking)."""
        if self.job is not None:
            self.action_sign_in()
            return
        if self.job_id is not None:
            return  # the job is still loading
        if not self.ticked:
            self.notify("Tick at least one fund (space, or a for all).", severity="warning")
            return
        self.start_job()

    def action_back(self) -> None:
        """Back; a recorded job stays in clientlinkd, waiting for its next sign-in."""
        job = self.job
        if job is not None and job.waiting_for_sign_in is not None:
            self.notify(
                f"Job {job.id} waits for your sign-in to {job.waiting_for_sign_in.business}: "
                "the Jobs screen (F4) brings you back."
            )
        self.dismiss()

    @on(Button.Pressed, "#business-go")
    def _go_pressed(self) -> None:
        self.action_go()

    @on(Button.Pressed, "#business-skip")
    def _skip_pressed(self) -> None:
        self.action_skip()

    @on(Button.Pressed, "#business-back")
    def _back_pressed(self) -> None:
        self.action_back()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Business re-authorise: start or sign in",
                "Start the job, or sign in to the next business (Enter)",
                self.action_go,
            ),
            PaletteCommand(
                "Business re-authorise: skip this business",
                "Its funds are marked not signed in (k)",
                self.action_skip,
            ),
            PaletteCommand(
                "Business re-authorise: cancel the job",
                "Funds not done yet are skipped (c)",
                self.action_cancel_job,
            ),
        ]
