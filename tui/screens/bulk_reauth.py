"""Re-authorise Bulk Clients: choose the software, sign in once, tick the clients, go.

The wizard: :class:`ChooseSoftwareScreen` (a dialog) picks the accounting software, then
:class:`BulkReauthScreen` opens the sign-in (the sign-in screen in bulk mode) on top of
itself and, once the person allowed access, lists the businesses the sign-in covers,
matched to clients, with checkboxes. Re-authorise Selected Clients starts a job in
clientlinkd and hands over to its progress screen.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, Input, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from clientlink.common import protocol as p
from clientlink.common.protocol import (
    AuthCompleteResult,
    Client,
    ConnectionStatus,
    JobKind,
    ProviderInfo,
    Tenant,
)
from clientlink.common.wording import plural
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.paging import fetch_clients
from clientlink.tui.screens.base import DaemonModalScreen, DaemonScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from clientlink.tui.widgets.offline_banner import OfflineBanner
from clientlink.tui.widgets.status_cell import status_text

STATUS_COLUMN = 14
NOT_CONNECTED = [
    status.value for status in ConnectionStatus if status != ConnectionStatus.CONNECTED
]
"""The statuses a bulk re-authorisation is for."""
NAME_MIN_WIDTH = 20
BY_ABN_TAG = " (by ABN)"
MATCHED_SHOWN = 2
"""How many clients found by ABN the line under the list names (then "… and N more")."""


class ChooseSoftwareScreen(DaemonModalScreen[ProviderInfo | None]):
    """Which accounting software to sign in to; only configured ones can be chosen."""

    TITLE = "Re-authorise Bulk Clients: choose the software"

    HELP = (
        "Choose the accounting software whose clients you want to re-authorise. Under each "
        "software its line says what one sign-in to it covers. Where one sign-in covers every "
        "fund of the firm, or the organisations you tick, you sign in once. Where it covers "
        "one business, company or company file, you sign in once for each: software with "
        "one sign-in per business lists the sign-ins first and walks you through them; for "
        "one company or company file per sign-in, you re-authorise that one, then start "
        "again (b) and choose the next at its sign-in. Then you choose which clients to "
        "re-authorise. Software that clientlinkd cannot use yet is listed with what is "
        "missing (for example an app secret: `clientlink rpc providers.set_secret`)."
    )
    BINDINGS = [Binding("escape", "close", "Close", id="choose_software.close")]

    def __init__(self) -> None:
        super().__init__()
        self.providers: dict[str, ProviderInfo] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-software-dialog") as dialog:
            dialog.border_title = "Re-authorise Bulk Clients"
            dialog.border_subtitle = "Enter chooses · Esc closes · F1 help"
            yield Static("Which software?", id="choose-software-question")
            yield OptionList(id="choose-software-list")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.load_providers()

    @work(exclusive=True, group="load-providers", exit_on_error=False)
    async def load_providers(self) -> None:
        """``providers.list``: every configured software first, the others with why not."""
        daemon = self.clientlink.daemon
        providers = (await daemon.call(p.PROVIDERS_LIST)).items
        self.providers = {provider.name: provider for provider in providers}
        waiting: dict[str, int] = {}
        for provider in providers:
            if provider.configured:
                listed = await daemon.call(
                    p.CLIENTS_LIST,
                    filter={"provider": provider.name, "status": NOT_CONNECTED},
                    limit=1,
                )
                waiting[provider.name] = listed.total
        options = self.query_one(OptionList)
        options.clear_options()
        # The software with the most clients to re-authorise first.
        for provider in sorted(
            providers, key=lambda each: (not each.configured, -waiting.get(each.name, 0))
        ):
            prompt = Text(provider.display_name, style="bold" if provider.configured else "dim")
            if not provider.configured:
                prompt.append(f"\n  {provider.problem or 'not configured'}", style="italic")
                options.add_option(Option(prompt, id=provider.name, disabled=True))
                continue
            if waiting[provider.name]:
                count = plural(waiting[provider.name], "client")
                prompt.append(f"  {count} to re-authorise", style="yellow")
            else:
                prompt.append("  every client connected", style="dim")
            if provider.sign_in_covers:
                prompt.append(f"\n  {provider.sign_in_covers}", style="dim")
            options.add_option(Option(prompt, id=provider.name, disabled=not provider.configured))
        if not any(provider.configured for provider in providers):
            self.notify("No accounting software is configured yet.", severity="warning")
        else:
            options.highlighted = 0

    @on(OptionList.OptionSelected, "#choose-software-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.providers[str(event.option.id)])

    def action_close(self) -> None:
        """Back without signing in."""
        self.dismiss(None)


class BulkReauthScreen(DaemonScreen[None]):
    """One sign-in, then the clients it covers with checkboxes, then a job."""

    TITLE = "Re-authorise Bulk Clients"
    HELP = (
        "The businesses your sign-in covers that are clients of the practice, with their "
        "connection status. Those not connected are ticked for you.\n\n"
        "space ticks or unticks the highlighted client; a ticks all shown, n ticks none; "
        "/ filters by name. Enter (or the button) re-authorises the ticked clients: "
        "clientlinkd does it as a job, and the progress screen follows it.\n\n"
        "A business whose id in the software changed (a fund re-created in SF360, a client "
        "imported from a spreadsheet with another id) is found by its ABN when exactly one "
        "client has that ABN: its row says (by ABN) and the line under the list says which id "
        "changed; re-authorising it moves the client to the new id. Where the ABN names more "
        "than one client, nothing is guessed and the line says so.\n\n"
        "Businesses the sign-in covers that are not clients yet are counted under the list; "
        "i imports them as clients."
    )
    DEFAULT_CSS = """
    BulkReauthScreen #bulk-matched { display: none; height: auto; }
    BulkReauthScreen.-has-matched #bulk-matched { display: block; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="bulk_reauth.back"),
        Binding("enter", "start", "Re-authorise selected", id="bulk_reauth.start"),
        Binding("a", "tick_all", "All", id="bulk_reauth.all"),
        Binding("n", "tick_none", "None", id="bulk_reauth.none"),
        Binding("slash", "focus_filter", "Filter", id="bulk_reauth.filter"),
        Binding("i", "import_new", "Import new", id="bulk_reauth.import"),
    ]

    def __init__(self, provider: ProviderInfo) -> None:
        super().__init__()
        self.provider = provider
        self.grant: AuthCompleteResult | None = None
        """The sign-in's grant and the businesses it covers."""
        self.clients: dict[int, Client] = {}
        """The software's clients, active or not, by id."""
        self.ticked: set[int] = set()
        self.shown_ids: list[int] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with Vertical(id="bulk-body"):
            yield Static(f"Signing in to {self.provider.display_name}…", id="bulk-summary")
            yield Input(placeholder="Filter by name…  (/)", id="bulk-filter", compact=True)
            yield Checklist[int](id="bulk-list")
            yield Static("", id="bulk-matched")
            yield Static("", id="bulk-not-clients")
            with Horizontal(id="bulk-buttons"):
                yield Button(
                    "Re-authorise Selected Clients (Enter)",
                    id="bulk-start",
                    variant="primary",
                    compact=True,
                )
                yield Button("Import new (i)", id="bulk-import", compact=True)
                yield Button("Back (Esc)", id="bulk-back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(Checklist).focus()
        self.sign_in()

    # ------------------------------------------------------------------ the sign-in

    @work(exclusive=True, group="bulk-sign-in", exit_on_error=False)
    async def sign_in(self) -> None:
        """Open the bulk sign-in over this screen; come back with its businesses."""
        await self._load_clients()
        # What the demo's auto-approve ticks: every client of this software not connected.
        approve_orgs = [
            client.tenant_id or client.name
            for client in self.clients.values()
            if client.active and client.status != ConnectionStatus.CONNECTED
        ]
        self.app.push_screen(
            SignInScreen(
                None,
                self.provider.display_name,
                provider=self.provider.name,
                approve_orgs=approve_orgs,
                new_connections=len(approve_orgs),
            ),
            self._signed_in,
        )

    def _signed_in(self, result: AuthCompleteResult | None) -> None:
        if result is None:
            self.dismiss()  # the sign-in was cancelled: nothing to choose from
            return
        self.grant = result
        self.show_grant()

    @work(exclusive=True, group="load-clients", exit_on_error=False)
    async def show_grant(self) -> None:
        """Re-read the clients (statuses move on) and list the sign-in's businesses."""
        await self._load_clients()
        assert self.grant is not None
        self.ticked = {
            client.id
            for client in self._covered()
            if client.active and client.status != ConnectionStatus.CONNECTED
        }
        self._rebuild()
        self._show_not_clients()

    async def _load_clients(self) -> None:
        listing = await fetch_clients(
            self.clientlink.daemon, {"provider": self.provider.name, "active": None}
        )
        self.clients = {client.id: client for client in listing.items}

    def _covered(self) -> list[Client]:
        """The clients this sign-in covers, by name."""
        if self.grant is None:
            return []
        by_tenant = {client.tenant_id: client for client in self.clients.values()}
        covered: dict[int, Client] = {}
        for tenant in self.grant.tenants:
            client = self.clients.get(tenant.client_id or -1) or by_tenant.get(tenant.tenant_id)
            if client is not None:
                covered[client.id] = client
        # Those needing re-authorisation first: they are the ones ticked.
        return sorted(
            covered.values(),
            key=lambda client: (
                not (client.active and client.status != ConnectionStatus.CONNECTED),
                client.name.casefold(),
            ),
        )

    def _not_clients(self) -> list[Tenant]:
        if self.grant is None:
            return []
        known = {client.tenant_id for client in self.clients.values()}
        return [
            tenant
            for tenant in self.grant.tenants
            if tenant.client_id is None and tenant.tenant_id not in known
        ]

    # ------------------------------------------------------------------ the checklist

    def _matched_by_abn(self) -> dict[int, str]:
        """The clients this sign-in found by ABN (their software id changed), with how."""
        if self.grant is None:
            return {}
        return {
            tenant.client_id: tenant.match
            for tenant in self.grant.tenants
            if tenant.client_id is not None and tenant.match
        }

    def _prompt(self, client: Client, by_abn: bool = False) -> Text:
        width = max(NAME_MIN_WIDTH, (self.size.width or 80) - STATUS_COLUMN - 10)
        prompt = Text(client.name, no_wrap=True)
        # A client found by ABN says so in its row; the line under the list says how.
        prompt.truncate(width - len(BY_ABN_TAG) if by_abn else width, overflow="ellipsis", pad=True)
        if by_abn:
            prompt.append(BY_ABN_TAG, style="italic")
        prompt.append("  ")
        if client.active:
            prompt.append_text(status_text(client.status))
        else:
            prompt.append("Inactive", style="dim italic")
        return prompt

    def _rebuild(self) -> None:
        text = self.query_one("#bulk-filter", Input).value.strip().casefold()
        shown = [client for client in self._covered() if text in client.name.casefold()]
        self.shown_ids = [client.id for client in shown]
        checklist = self.query_one(Checklist)
        checklist.clear_options()
        matched = self._matched_by_abn()
        checklist.add_options(
            [
                (self._prompt(client, client.id in matched), client.id, client.id in self.ticked)
                for client in shown
            ]
        )
        self._show_matched(matched)
        if shown:
            checklist.highlighted = 0
        self._show_summary()

    @on(SelectionList.SelectedChanged, "#bulk-list")
    def _ticks_changed(self) -> None:
        selected = set(self.query_one(Checklist).selected)
        self.ticked = (self.ticked - set(self.shown_ids)) | selected
        self._show_summary()

    def _show_summary(self) -> None:
        if self.grant is None:
            return
        covered = self._covered()
        software = self.provider.display_name
        summary = Text(f"Signed in to {software}: ", style="bold")
        # "covered", not "businesses": an SMSF firm's sign-in covers funds and entities.
        summary.append(f"{len(self.grant.tenants)} covered, {len(covered)} of them clients. ")
        summary.append(f"{len(self.ticked)} ticked", style="bold reverse" if self.ticked else "")
        if len(self.shown_ids) != len(covered):
            summary.append(f" · showing {len(self.shown_ids)}", style="italic")
        # What one sign-in covers, and how to reach the clients this one did not.
        covered_ids = {client.id for client in covered}
        others = [
            client
            for client in self.clients.values()
            if client.id not in covered_ids
            and client.active
            and client.status != ConnectionStatus.CONNECTED
        ]
        if self.provider.sign_in_covers:
            covers = self.provider.sign_in_covers
            summary.append(f"\n{covers[:1].upper()}{covers[1:]}", style="italic")
            if others:
                needs = "needs" if len(others) == 1 else "need"
                summary.append(
                    f": {plural(len(others), f'other {software} client')} still {needs} "
                    "re-authorising; when this is done, press b and sign in again for the next.",
                    style="italic",
                )
            else:
                summary.append(".", style="italic")
        summary.append(
            "\nspace ticks · a all · n none · / filter · Enter re-authorises", style="dim"
        )
        self.query_one("#bulk-summary", Static).update(summary)

    def _show_matched(self, matched: dict[int, str]) -> None:
        """Under the list: each client found by ABN, and how (its software id changed)."""
        self.set_class(bool(matched), "-has-matched")
        line = Text()
        for number, (client_id, how) in enumerate(sorted(matched.items())):
            client = self.clients.get(client_id)
            if number == MATCHED_SHOWN:
                line.append(f"\n… and {len(matched) - MATCHED_SHOWN} more by ABN", style="dim")
                break
            if client is not None:
                line.append("\n" if number else "")
                line.append(f"{client.name}: ", style="bold")
                line.append(how, style="italic")
        self.query_one("#bulk-matched", Static).update(line)

    def _show_not_clients(self) -> None:
        new = self._not_clients()
        self.set_class(bool(new), "-has-new")
        if not new:
            self.query_one("#bulk-not-clients", Static).update("")
            return
        names = ", ".join(tenant.name for tenant in new[:3]) + ("…" if len(new) > 3 else "")
        line = Text(f"Not clients yet: {len(new)} ", style="bold")
        line.append(f"({names})", style="dim")
        line.append(" — press i to import them")
        # Those whose ABN names a client that could not be told apart: said, never guessed.
        unmatched = [tenant for tenant in new if tenant.match]
        if unmatched:
            line.append(f"\n{unmatched[0].name}: {unmatched[0].match}")
            if len(unmatched) > 1:
                line.append(f" (and {len(unmatched) - 1} more like it)", style="dim")
        self.query_one("#bulk-not-clients", Static).update(line)

    @on(Input.Changed, "#bulk-filter")
    def _filter_changed(self) -> None:
        self._rebuild()

    @on(Input.Submitted, "#bulk-filter")
    def _filter_submitted(self) -> None:
        self.query_one(Checklist).focus()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "import_new":
            return bool(self._not_clients())
        if action in ("start", "tick_all", "tick_none"):
            return self.grant is not None
        return True

    def action_tick_all(self) -> None:
        """Tick every client shown."""
        self.query_one(Checklist).select_all()

    def action_tick_none(self) -> None:
        """Untick every client shown."""
        self.query_one(Checklist).deselect_all()

    def action_focus_filter(self) -> None:
        """Put the cursor in the name filter."""
        self.query_one("#bulk-filter", Input).focus()

    def action_back(self) -> None:
        """From the filter back to the list; from the list back to Manage Clients."""
        if self.query_one("#bulk-filter", Input).has_focus:
            self.query_one(Checklist).focus()
            return
        self.dismiss()

    def action_start(self) -> None:
        """Re-authorise the ticked clients as a job, and follow its progress."""
        if self.grant is None:
            return
        if not self.ticked:
            self.notify("Tick at least one client (space, or a for all).", severity="warning")
            return
        self.start_job(self.grant.grant_id, sorted(self.ticked))

    @work(exclusive=True, group="start-job", exit_on_error=False)
    async def start_job(self, grant_id: int, client_ids: list[int]) -> None:
        """``jobs.start {kind: reauthorise}``; this screen gives way to the progress screen."""
        started = await self.clientlink.daemon.call(
            p.JOBS_START, kind=JobKind.REAUTHORISE.value, grant_id=grant_id, client_ids=client_ids
        )
        if started.skipped:  # another job or sign-in holds them: said, not done twice
            self.notify(
                f"{len(started.skipped)} left out: {started.skipped[0].reason}.",
                severity="warning",
                timeout=10,
            )
        self.app.switch_screen(JobProgressScreen(started.job_id, kind=JobKind.REAUTHORISE))

    def action_import_new(self) -> None:
        """Import the businesses this sign-in covers that are not clients yet."""
        new = self._not_clients()
        if self.grant is not None and new:
            self.import_new(self.grant.grant_id, [tenant.tenant_id for tenant in new])

    @work(exclusive=True, group="import-new", exit_on_error=False)
    async def import_new(self, grant_id: int, tenant_ids: list[str]) -> None:
        """``clients.import`` for the new businesses; they join the list (connected)."""
        result = await self.clientlink.daemon.call(
            p.CLIENTS_IMPORT, grant_id=grant_id, tenant_ids=tenant_ids
        )
        await self._load_clients()
        self._rebuild()
        self._show_not_clients()
        self.refresh_bindings()
        self.notify(
            f"{plural(len(result.created), 'new client')} imported "
            f"({len(result.updated)} already known were updated).",
            title="Imported",
        )

    @on(Button.Pressed, "#bulk-start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#bulk-import")
    def _import_pressed(self) -> None:
        self.action_import_new()

    @on(Button.Pressed, "#bulk-back")
    def _back_pressed(self) -> None:
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Bulk re-authorise: start",
                "Re-authorise the ticked clients (Enter)",
                self.action_start,
            ),
            PaletteCommand(
                "Bulk re-authorise: tick all", "Every client shown (a)", self.action_tick_all
            ),
            PaletteCommand(
                "Bulk re-authorise: tick none",
                "Untick every client shown (n)",
                self.action_tick_none,
            ),
            PaletteCommand(
                "Bulk re-authorise: import new businesses",
                "Make the businesses that are not clients yet clients (i)",
                self.action_import_new,
            ),
        ]
