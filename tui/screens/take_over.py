"""Take over connections: a colleague's clients moved onto your own sign-ins, software by software.

:class:`ChooseOwnerScreen` (a dialog) lists whose sign-ins clients rest on, with how many
and how many need attention (a colleague who left has theirs flagged "owner … left").
:class:`TakeOverScreen` then shows that person's clients grouped by software (and, where one
sign-in covers one business, by business) and walks through them: Enter signs in to the
next software as you, and clientlinkd re-authorises every one of those clients as a job
(``jobs.start`` with ``takeover_of``), the same engine as a bulk re-authorisation; software
that signs in business by business continues on the business walk. Back here after each
job, the list shows what is left, and r revokes the old sign-ins no client rests on any
more (only when asked, and it says what was revoked).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.protocol import (
    AuthCompleteResult,
    Client,
    ConnectionStatus,
    GrantInfo,
    JobKind,
    ProviderInfo,
)
from clientlink.common.wording import plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonModalScreen, DaemonScreen
from clientlink.tui.screens.business_reauth import BusinessReauthScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner

SOFTWARE_COLUMN = 14


def needs_attention(client: Client) -> bool:
    return ConnectionStatus(client.status).needs_attention


async def owners_of(daemon) -> dict[str, list[Client]]:
    """Every active client by the login whose sign-in it rests on."""
    listing = await fetch_clients(daemon, {"active": True})
    owners: dict[str, list[Client]] = {}
    for client in listing.items:
        if client.authorised_by:
            owners.setdefault(client.authorised_by, []).append(client)
    return owners


class ChooseOwnerScreen(DaemonModalScreen[str | None]):
    """Whose connections to take over: every owner, those with clients needing a person first."""

    TITLE = "Take over connections: whose?"
    HELP = (
        "Choose the colleague whose connections you take over (usually someone who left: "
        "their clients show 'owner … left' under Needs attention). You then sign in as "
        "yourself, once per software (or business), and every one of their clients is "
        "re-authorised onto your sign-in as a job."
    )
    BINDINGS = [Binding("escape", "close", "Close", id="choose_owner.close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-owner-dialog") as dialog:
            dialog.border_title = "Take over connections"
            dialog.border_subtitle = "Enter chooses · Esc closes · F1 help"
            yield Static("Whose connections?", id="choose-owner-question")
            yield OptionList(id="choose-owner-list")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.load_owners()

    @work(exclusive=True, group="load-owners", exit_on_error=False)
    async def load_owners(self) -> None:
        owners = await owners_of(self.clientlink.daemon)
        options = self.query_one(OptionList)
        options.clear_options()
        ranked = sorted(
            owners.items(),
            key=lambda item: (-sum(needs_attention(c) for c in item[1]), item[0]),
        )
        for login, clients in ranked:
            attention = sum(needs_attention(c) for c in clients)
            # Who they are to colleagues (the staff list's name), then the login.
            name = next((c.owner_name for c in clients if c.owner_name), None)
            prompt = Text(name or login, style="bold")
            if name and name != login:
                prompt.append(f" ({login})", style="dim")
            prompt.append(f"  {plural(len(clients), 'client')}")
            if attention:
                prompt.append(f", {attention} need attention", style="yellow")
            options.add_option(Option(prompt, id=login))
        if not owners:
            self.query_one("#choose-owner-question", Static).update(
                "No client rests on anyone's sign-in yet: nothing to take over."
            )
        else:
            options.highlighted = 0

    @on(OptionList.OptionSelected, "#choose-owner-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.id))

    def action_close(self) -> None:
        """Back without choosing."""
        self.dismiss(None)


@dataclass
class SoftwareGroup:
    """One software's clients of the person's, and the sign-ins taking them over takes."""

    provider: ProviderInfo
    clients: list[Client] = field(default_factory=list)

    @property
    def businesses(self) -> list[str]:
        return sorted({c.business or "?" for c in self.clients})

    @property
    def sign_ins(self) -> int:
        return len(self.businesses) if self.provider.one_grant_per_business else 1


class TakeOverScreen(DaemonScreen[None]):
    """A colleague's clients by software; one sign-in (per business) and one job each."""

    TITLE = "Take over connections"
    HELP = (
        "The clients resting on a colleague's sign-ins, by software. Enter signs in to the "
        "next software as you (once, or once per business where the software signs in "
        "business by business); clientlinkd then re-authorises every one of those clients "
        "onto your sign-in as a job, and the progress screen follows it. Back here the list "
        "shows what is left.\n\n"
        "Nothing is revoked on its own: once no client rests on one of their old sign-ins, "
        "r revokes those at the software (after a confirm) and says what was revoked."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="take_over.back"),
        Binding("enter", "go", "Take over next", id="take_over.go"),
        Binding("r", "revoke_old", "Revoke old sign-ins", id="take_over.revoke"),
    ]
    DEFAULT_CSS = """
    TakeOverScreen #take-over-body { height: 1fr; }
    TakeOverScreen #take-over-summary, TakeOverScreen #take-over-old { height: auto; }
    TakeOverScreen #take-over-groups { height: auto; margin: 1 0; }
    TakeOverScreen #take-over-buttons { height: 1; }
    """

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner
        """The login whose connections are taken over."""
        self.groups: list[SoftwareGroup] = []
        self.old_grants: list[GrantInfo] = []
        """Their active sign-ins no client rests on any more."""
        self.revoked: list[str] = []
        self.loaded = False
        self.owner_name: str | None = None
        """Their name on the staff list, once a client of theirs said it."""

    @property
    def whose(self) -> str:
        """How the screen names them: the staff list's name, else the login."""
        return self.owner_name or self.owner

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Vertical(id="take-over-body"):
            yield Static(f"Loading {self.owner}'s connections…", id="take-over-summary")
            yield Static("", id="take-over-groups")
            yield Static("", id="take-over-old")
            with Horizontal(id="take-over-buttons"):
                yield Button(
                    "Take over next (Enter)", id="take-over-go", variant="primary", compact=True
                )
                yield Button("Revoke old (r)", id="take-over-revoke", compact=True)
                yield Button("Back (Esc)", id="take-over-back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        # Back from a sign-in or a job: what is left has changed.
        if self.loaded:
            self.load()

    @work(exclusive=True, group="take-over-load", exit_on_error=False)
    async def load(self) -> None:
        daemon = self.clientlink.daemon
        providers = {info.name: info for info in (await daemon.call(p.PROVIDERS_LIST)).items}
        clients = (await owners_of(daemon)).get(self.owner, [])
        self.owner_name = next((c.owner_name for c in clients if c.owner_name), self.owner_name)
        by_provider: dict[str, SoftwareGroup] = {}
        for client in sorted(clients, key=lambda c: ((c.business or ""), c.name.casefold())):
            info = providers.get(client.provider)
            if info is not None:
                by_provider.setdefault(client.provider, SoftwareGroup(info)).clients.append(client)
        self.groups = sorted(by_provider.values(), key=lambda g: g.provider.display_name)
        grants = (await daemon.call(p.GRANTS_LIST)).items
        self.old_grants = [
            g
            for g in grants
            if g.authorised_by == self.owner and g.state == "active" and not g.clients
        ]
        self.loaded = True
        self._show()

    def _show(self) -> None:
        total = sum(len(g.clients) for g in self.groups)
        summary = Text(f"Take over {self.whose}'s connections: ", style="bold")
        if total:
            sign_ins = sum(g.sign_ins for g in self.groups)
            summary.append(f"{plural(total, 'client')}, {plural(sign_ins, 'sign-in')} as you")
        else:
            summary.append("none left", style="green")
        self.query_one("#take-over-summary", Static).update(summary)
        lines = Text()
        for number, group in enumerate(self.groups, start=1):
            lines.append(f"{number}. {group.provider.display_name:<{SOFTWARE_COLUMN}}", "bold")
            lines.append(f" {plural(len(group.clients), 'client'):<12}")
            if group.provider.one_grant_per_business:
                lines.append(f" {plural(group.sign_ins, 'sign-in')}: {', '.join(group.businesses)}")
            else:
                lines.append(" 1 sign-in")
            attention = sum(needs_attention(c) for c in group.clients)
            if attention:
                lines.append(f" · {attention} need attention", style="yellow")
            if number == 1:
                lines.append("  next", style="bold magenta")
            lines.append("\n")
        if self.groups:
            lines.append("Enter signs in to the next software as you", style="dim")
        self.query_one("#take-over-groups", Static).update(lines)
        old = Text()
        for line in self.revoked:
            old.append(line + "\n", style="green")
        if self.old_grants:
            names = ", ".join(f"grant {g.id} ({g.provider})" for g in self.old_grants)
            old.append(
                f"{plural(len(self.old_grants), 'old sign-in')} of {self.whose}'s no client "
                f"rests on any more: {names}. r revokes them.",
                style="bold",
            )
        self.query_one("#take-over-old", Static).update(old)
        self.refresh_bindings()

    # ------------------------------------------------------------------ taking over

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "go":
            return bool(self.groups)
        if action == "revoke_old":
            return bool(self.old_grants)
        return True

    def action_go(self) -> None:
        """Sign in to the next software as you, then re-authorise its clients as a job."""
        if not self.groups:
            return
        group = self.groups[0]
        if group.provider.one_grant_per_business:
            self.start_business_walk(group)
            return
        tenants = [c.tenant_id or c.name for c in group.clients]
        self.app.push_screen(
            SignInScreen(
                None,
                group.provider.display_name,
                provider=group.provider.name,
                approve_orgs=tenants,
                new_connections=len(tenants),
            ),
            lambda result: self._signed_in(group, result),
        )

    def _signed_in(self, group: SoftwareGroup, result: AuthCompleteResult | None) -> None:
        if result is None:
            self.notify("Not signed in: nothing was taken over.", severity="warning")
            return
        self.start_job(group, result.grant_id)

    @work(exclusive=True, group="take-over-job", exit_on_error=False)
    async def start_job(self, group: SoftwareGroup, grant_id: int) -> None:
        """``jobs.start`` with ``takeover_of``; the progress screen follows the job."""
        started = await self.clientlink.daemon.call(
            p.JOBS_START,
            kind=JobKind.REAUTHORISE.value,
            grant_id=grant_id,
            client_ids=[c.id for c in group.clients],
            takeover_of=self.owner,
        )
        self._say_skipped(started)
        self.app.push_screen(JobProgressScreen(started.job_id, kind=JobKind.REAUTHORISE))

    @work(exclusive=True, group="take-over-job", exit_on_error=False)
    async def start_business_walk(self, group: SoftwareGroup) -> None:
        """One job for the software's clients; the business walk signs in to each business."""
        started = await self.clientlink.daemon.call(
            p.JOBS_START,
            kind=JobKind.REAUTHORISE.value,
            client_ids=[c.id for c in group.clients],
            takeover_of=self.owner,
        )
        self._say_skipped(started)
        self.app.push_screen(
            BusinessReauthScreen(
                group.provider.name, group.provider.display_name, job_id=started.job_id
            )
        )

    def _say_skipped(self, started: p.JobStartResult) -> None:
        if started.skipped:
            first = started.skipped[0]
            more = f" (and {len(started.skipped) - 1} more)" if len(started.skipped) > 1 else ""
            self.notify(
                f"{plural(len(started.skipped), 'client')} left out: {first.reason}{more}.",
                severity="warning",
                timeout=10,
            )

    # ------------------------------------------------------------------ revoking

    def action_revoke_old(self) -> None:
        """Revoke the old sign-ins no client rests on any more, after a confirm."""
        grants = list(self.old_grants)
        if not grants:
            return

        def revoke_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.revoke(grants)

        self.app.push_screen(
            ConfirmScreen(
                f"Revoke {plural(len(grants), 'old sign-in')} of {self.whose}'s at the software? "
                "No client rests on them any more.",
                yes_label="Revoke them",
                no_label="Keep them",
            ),
            revoke_if_confirmed,
        )

    @work(exclusive=True, group="take-over-revoke", exit_on_error=False)
    async def revoke(self, grants: list[GrantInfo]) -> None:
        """``grants.revoke`` for each; the screen says what was revoked."""
        for grant in grants:
            result = await self.clientlink.daemon.call(p.GRANTS_REVOKE, grant_id=grant.id)
            self.revoked.append(f"Revoked grant {grant.id} ({grant.provider}): {result.message}")
        self.notify(f"{plural(len(grants), 'old sign-in')} revoked.", title="Revoked")
        self.load()

    def action_back(self) -> None:
        """Back to Manage Clients."""
        self.dismiss()

    @on(Button.Pressed, "#take-over-go")
    def _go_pressed(self) -> None:
        self.action_go()

    @on(Button.Pressed, "#take-over-revoke")
    def _revoke_pressed(self) -> None:
        self.action_revoke_old()

    @on(Button.Pressed, "#take-over-back")
    def _back_pressed(self) -> None:
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Take over: next software",
                "Sign in as you and re-authorise their clients (Enter)",
                self.action_go,
            ),
            PaletteCommand(
                "Take over: revoke old sign-ins",
                "Those no client rests on any more (r)",
                self.action_revoke_old,
            ),
        ]
