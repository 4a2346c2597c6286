"""One client: the connection (who authorised it, when it was refreshed, its history), the
contact details, and the communication timeline (invitations to connect bank feeds)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Header, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import (
    AuthCompleteResult,
    Bank,
    BankConnection,
    Channel,
    Client,
    ConnectionStatus,
    HistoryEntry,
    Invitation,
)
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import relative_expiry
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.edit_contact import EditContactScreen
from clientlink.tui.screens.invite_client import InviteClientScreen, tell_invite_outcome
from clientlink.tui.screens.sign_in import SignInScreen
from clientlink.tui.widgets.bank_connections import BankConnectionsPane
from clientlink.tui.widgets.client_fields import ClientFields
from clientlink.tui.widgets.client_history import ClientHistory
from clientlink.tui.widgets.invitation_timeline import InvitationTimeline, invitation_detail
from clientlink.tui.widgets.offline_banner import OfflineBanner

HISTORY_LIMIT = 50
CLOCK_REFRESH_SECONDS = 30.0
TIMELINE_LIMIT = 100


class ClientDetailScreen(DaemonScreen[None]):
    """A client's connection in full, live, with Re-Authorise and Refresh now; its contact
    details and invitations, with Edit contact, Invite and Resend."""

    TITLE = "Connection"
    HELP = (
        "Everything clientlinkd knows about one client's connection: its status and why, "
        "who authorised it and when, when its tokens were last refreshed and when they end, "
        "when clientlinkd checks it next, and its history, newest first. It updates by "
        "itself when the connection changes.\n\n"
        "Refresh now (f) asks clientlinkd to refresh the tokens and check the connection at "
        "once. Re-Authorise (r) opens a sign-in for this client. Arrow keys and PgUp/PgDn "
        "scroll; Esc goes back.\n\n"
        "Bank connections: each bank feed the client connected, where it stands and when "
        "clientlinkd last saw it. A broken one needs the client to reconnect it: press i "
        "and tick that bank. A toast says so on any screen the moment one breaks.\n\n"
        "Contact details: e corrects the email address and mobile number (clientlinkd "
        "checks them). Invite (i) sends the client a personal link to connect bank feeds, "
        "by email or SMS; a toast says when it has gone.\n\n"
        "Communication: every invitation sent to this client, newest first — when, how, "
        "the template, the banks, where it stands (sent, delivered, opened, bank connected, "
        "failed, or uncertain: clientlinkd could not confirm it left, so check with the "
        "client before sending again) and who sent it. Tab moves into the list; s sends the "
        "highlighted invitation again with a new link (the old link stops working)."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="client_detail.back"),
        Binding("r", "reauthorise", "Re-Authorise", id="client_detail.reauthorise"),
        Binding("f", "refresh_now", "Refresh now", id="client_detail.refresh_now"),
        Binding("e", "edit_contact", "Contact", id="client_detail.edit_contact"),
        Binding("i", "invite", "Invite", id="client_detail.invite"),
        Binding("s", "resend", "Resend", id="client_detail.resend"),
        Binding("f5", "reload", "Reload", show=False, id="client_detail.reload"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="client_detail.reload_ctrl"),
    ]

    refreshing: reactive[bool] = reactive(False)
    """Whether a Refresh now is under way."""

    def __init__(self, client_id: int, client: Client | None = None) -> None:
        super().__init__()
        self.client_id = client_id
        self.client = client
        """The client as the daemon last described it (None until it answers)."""
        self.history: list[HistoryEntry] | None = None
        """Newest first; None until the daemon answers."""
        self.invitations: list[Invitation] | None = None
        """The communication timeline, newest first; None until the daemon answers."""
        self.bank_connections: list[BankConnection] | None = None
        """The client's bank feeds as last followed up; None until the daemon answers."""
        self.template_names: dict[str, str] = {}
        self.banks: dict[str, Bank] = {}
        self.pending_invites: set[int] = set()
        """Invite jobs started here whose outcome has not been told yet."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with VerticalScroll(id="detail-body"):
            yield ClientFields("Loading…", id="detail-fields")
            yield Static("Refreshing…", id="detail-refreshing")
            yield Static(Text("Bank connections", style="bold underline"), id="detail-banks-title")
            yield BankConnectionsPane("Loading…", id="detail-banks")
            yield Static(Text("Communication", style="bold underline"), id="detail-timeline-title")
            yield Static("Loading…", id="detail-timeline-empty")
            yield InvitationTimeline(cursor_type="row", zebra_stripes=True, id="detail-timeline")
            yield Static("", id="detail-invitation")
            yield Static(Text("History", style="bold underline"), id="detail-history-title")
            yield ClientHistory("Loading…", id="detail-history")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#detail-timeline", InvitationTimeline).add_timeline_columns()
        self._show_client()
        self.set_interval(CLOCK_REFRESH_SECONDS, self._show_all)
        self.query_one("#detail-body").focus()
        if self.clientlink.connected:
            self.load_client()
            self.load_timeline()
            self.load_bank_connections()

    # ------------------------------------------------------------------ loading

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load_client()
        self.load_timeline()
        self.load_bank_connections()

    @work(exclusive=True, group="load-client", exit_on_error=False)
    async def load_client(self) -> None:
        """Read the client and its history from the daemon and show them."""
        if not self.clientlink.connected:
            return  # the banner says why; the screen reloads on reconnect
        daemon = self.clientlink.daemon
        client = await daemon.call(p.CLIENTS_GET, client_id=self.client_id)
        history = await daemon.call(
            p.CLIENTS_HISTORY, client_id=self.client_id, limit=HISTORY_LIMIT
        )
        self.client = client
        self.history = history.items
        self.unused_sign_ins = (await daemon.call(p.DAEMON_STATUS)).unused_sign_ins
        self._show_all()

    def action_reload(self) -> None:
        """Ask the daemon for this client again."""
        self.load_client()
        self.load_timeline()
        self.load_bank_connections()

    @work(exclusive=True, group="load-bank-connections", exit_on_error=False)
    async def load_bank_connections(self) -> None:
        """``banks.connections`` for this client, shown with what to do about broken ones."""
        if not self.clientlink.connected:
            return
        listed = await self.clientlink.daemon.call(p.BANKS_CONNECTIONS, client_id=self.client_id)
        self.bank_connections = listed.items
        self._show_bank_connections()

    @work(exclusive=True, group="load-timeline", exit_on_error=False)
    async def load_timeline(self) -> None:
        """``invites.list`` for this client, with template and bank names to show."""
        if not self.clientlink.connected:
            return
        daemon = self.clientlink.daemon
        listed = await daemon.call(p.INVITES_LIST, client_id=self.client_id, limit=TIMELINE_LIMIT)
        # Templates are renamed and created elsewhere: read their names every time.
        templates = await daemon.call(p.TEMPLATES_LIST)
        self.template_names = {template.id: template.name for template in templates.items}
        if not self.banks and any(item.bank_ids for item in listed.items):
            try:
                banks = await daemon.call(p.BANKS_LIST)
            except RpcError as exc:
                self.log.warning(f"bank names unavailable: {exc.message}")
            else:
                self.banks = {bank.id: bank for bank in banks.items}
        self.invitations = listed.items
        self._show_timeline()

    # ------------------------------------------------------------------ showing

    def _show_all(self) -> None:
        self._show_client()
        if self.history is not None:
            self.query_one("#detail-history", ClientHistory).show(self.history)
        if self.invitations is not None:
            self._show_timeline()
        if self.bank_connections is not None:
            self._show_bank_connections()

    def _show_bank_connections(self) -> None:
        self.query_one("#detail-banks", BankConnectionsPane).show(self.bank_connections or [])

    def _show_timeline(self) -> None:
        invitations = self.invitations or []
        table = self.query_one("#detail-timeline", InvitationTimeline)
        table.show(invitations, self.template_names, self.banks, self.highlighted_invitation())
        self.set_class(bool(invitations), "-has-invitations")
        empty = "No invitations sent yet: i invites this client to connect bank feeds."
        self.query_one("#detail-timeline-empty", Static).update(Text(empty, style="dim"))
        self._show_invitation()

    def highlighted_invitation(self) -> Invitation | None:
        """The invitation under the timeline's cursor (the newest until it moves)."""
        table = self.query_one("#detail-timeline", InvitationTimeline)
        return table.highlighted(self.invitations or [])

    @on(DataTable.RowHighlighted, "#detail-timeline")
    def _show_invitation(self) -> None:
        """The highlighted invitation in full: the columns cut it short."""
        detail = self.query_one("#detail-invitation", Static)
        invitation = self.highlighted_invitation()
        if invitation is None:
            detail.update("")
            return
        detail.update(invitation_detail(invitation, self.template_names, self.banks))

    def _show_client(self) -> None:
        client = self.client
        if client is None:
            return
        self.query_one("#detail-fields", ClientFields).show(
            client,
            self.clientlink.provider_name(client.provider),
            getattr(self, "unused_sign_ins", 0),
        )

    def watch_refreshing(self, refreshing: bool) -> None:
        self.set_class(refreshing, "-refreshing")

    # ------------------------------------------------------------------ live updates

    def on_client_status_changed(self, message: messages.ClientStatusChanged) -> None:
        event = message.event
        if event.client_id != self.client_id:
            return
        if self.client is not None:
            # Show the new status and its reason at once; the reload fills in the rest.
            self.client = self.client.model_copy(
                update={
                    "status": event.status,
                    "status_reason": event.reason,
                    "status_since": event.at,
                }
            )
            self._show_client()
        self.load_client()

    def on_client_reauthorised(self, message: messages.ClientReauthorised) -> None:
        if message.event.client_id == self.client_id:
            self.load_client()

    def on_invitation_changed(self, message: messages.InvitationChanged) -> None:
        if message.event.client_id == self.client_id:
            self.load_timeline()

    def on_bank_connection_changed(self, message: messages.BankConnectionChanged) -> None:
        if message.event.client_id == self.client_id:
            self.load_bank_connections()

    def on_job_finished(self, message: messages.JobFinished) -> None:
        if message.event.job_id in self.pending_invites:
            self.settle_invite(message.event.job_id)

    def _follow_invite(self, job_id: int) -> None:
        """Tell the person how an invite job started here ends."""
        self.pending_invites.add(job_id)
        self.load_timeline()
        self.settle_invite(job_id)  # it may have ended before its event was heard

    @work(group="settle-invite", exit_on_error=False)
    async def settle_invite(self, job_id: int) -> None:
        """Once the job has ended: a toast saying the invitation went, or why not."""
        job = await self.clientlink.daemon.call(p.JOBS_GET, job_id=job_id, items=True)
        if not job.state.finished or job_id not in self.pending_invites:
            return
        self.pending_invites.discard(job_id)
        tell_invite_outcome(self, job, self.client.name if self.client else "Invitation")
        self.load_timeline()

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        """Back to where this screen was opened from."""
        self.dismiss()

    def action_reauthorise(self) -> None:
        """Open a sign-in for this client."""
        client = self.client
        if client is None:
            self.notify("This client has not loaded yet.", severity="warning")
            return

        def reload_after_sign_in(result: AuthCompleteResult | None) -> None:
            if result is not None:
                self.load_client()

        self.app.push_screen(
            SignInScreen(client, self.clientlink.provider_name(client.provider)),
            reload_after_sign_in,
        )

    def action_refresh_now(self) -> None:
        """Have the daemon refresh this client's tokens and check the connection now."""
        if not self.refreshing:
            self.refresh_now()

    @work(exclusive=True, group="refresh-now", exit_on_error=False)
    async def refresh_now(self) -> None:
        """``clients.refresh {force: true}``, then a toast saying how it went."""
        self.refreshing = True
        try:
            client = await self.clientlink.daemon.call(
                p.CLIENTS_REFRESH, client_id=self.client_id, force=True
            )
        except RpcError as exc:
            self.notify(exc.message, title="Refresh failed", severity="error")
            return
        finally:
            self.refreshing = False
        self.client = client
        self._show_client()
        if client.status == ConnectionStatus.CONNECTED:
            self.notify(
                f"Refreshed: connected, access token ends "
                f"{relative_expiry(client.access_expires_at)}.",
                title=client.name,
            )
        else:
            outcome = f"Refreshed: {client.status.label}."
            if client.status_reason:
                outcome += f" {client.status_reason}"
            self.notify(outcome, title=client.name, severity="warning")
        self.load_client()

    def action_edit_contact(self) -> None:
        """Correct the email address and mobile number."""
        client = self.client
        if client is None:
            self.notify("This client has not loaded yet.", severity="warning")
            return

        def show_saved(saved: Client | None) -> None:
            if saved is not None:
                self.client = saved
                self._show_client()

        self.app.push_screen(EditContactScreen(client), show_saved)

    def action_invite(self) -> None:
        """Invite the client to connect bank feeds by email or SMS."""
        client = self.client
        if client is None:
            self.notify("This client has not loaded yet.", severity="warning")
            return

        def follow(job_id: int | None) -> None:
            if job_id is not None:
                self._follow_invite(job_id)

        broken = tuple(
            each.institution_id for each in self.bank_connections or () if each.needs_reconnect
        )
        self.app.push_screen(InviteClientScreen(client, broken), follow)

    def action_resend(self) -> None:
        """Send the highlighted invitation again, with a new link, after a confirm."""
        invitation = self.highlighted_invitation()
        if invitation is None:
            self.notify("No invitation to send again: i invites this client.", severity="warning")
            return
        channel = "SMS" if invitation.channel == Channel.SMS else "email"
        question = (
            f"Send this {channel} invitation to {invitation.client_name} again? "
            "It gets a new link; the link sent before stops working."
        )
        if invitation.state == "uncertain":
            question += "\n\nThe first one may have arrived: check with the client first."

        def resend_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.resend(invitation.id)

        self.app.push_screen(ConfirmScreen(question, yes_label="Send again"), resend_if_confirmed)

    @work(exclusive=True, group="resend", exit_on_error=False)
    async def resend(self, invitation_id: int) -> None:
        """``invites.resend``; the outcome is told like an invite's."""
        try:
            started = await self.clientlink.daemon.call(
                p.INVITES_RESEND, invitation_id=invitation_id
            )
        except RpcError as exc:
            self.notify(exc.message, title="Not sent again", severity="error")
            return
        self._follow_invite(started.job_id)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Client: edit contact details",
                "Correct the email address and mobile number (e)",
                self.action_edit_contact,
            ),
            PaletteCommand(
                "Client: invite to connect banks",
                "Send a personal link by email or SMS (i)",
                self.action_invite,
            ),
            PaletteCommand(
                "Invitation: send again",
                "The highlighted invitation, with a new link (s)",
                self.action_resend,
            ),
            PaletteCommand(
                "Client: refresh now",
                "Refresh the tokens and check the connection (f)",
                self.action_refresh_now,
            ),
            PaletteCommand(
                "Client: re-authorise", "Sign in again for this client (r)", self.action_reauthorise
            ),
            PaletteCommand(
                "Client: reload", "Read it from clientlinkd again (F5)", self.action_reload
            ),
            PaletteCommand("Client: back to list", "Close this screen (Esc)", self.action_back),
        ]
