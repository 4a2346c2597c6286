"""One sign-in session: re-authorise one client, or sign in once for many (bulk mode)."""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import socket
import webbrowser
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Button, Footer, Header, Input, Label, Static

from clientlink.common import protocol as p
from clientlink.common.client import DaemonUnavailable, RpcError
from clientlink.common.protocol import (
    AuthBeginResult,
    AuthCompleteResult,
    AuthSessionState,
    Client,
    ErrorCode,
)
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import countdown, current_time, parse_time
from clientlink.tui.screens.base import DaemonScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner
from clientlink.tui.widgets.qr_view import QrView

SUCCESS_MESSAGE = "Client re-authorised successfully"


class Phase(StrEnum):
    """Where this screen's sign-in stands."""

    STARTING = "starting"
    WAITING = "waiting"
    COMPLETING = "completing"
    FAILED = "failed"
    DONE = "done"


def phone_can_open(url: str) -> bool:
    """Whether a phone could open ``url``: not when it names this computer's loopback."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return bool(host)


def qr_cannot_help(url: str) -> str:
    """Why no QR code is drawn for ``url`` (one on this computer's loopback)."""
    return (
        f"A QR code cannot help with this sign-in: {url} is an address on this computer, "
        "which a phone cannot open, and the phone's browser could not come back to "
        "clientlinkd either. Open the address in a browser on this computer, or on your own "
        "computer after running the ssh command shown."
    )


def port_forward_command(port: int) -> str:
    """What to run on the person's own computer so its browser reaches our loopback port."""
    return f"ssh -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()}"


# After a wrong paste (the sign-in still waits): what to paste instead.
PASTE_HINT: dict[int, str] = {
    ErrorCode.AUTH_STATE_MISMATCH: "The sign-in is still waiting: paste the address from "
    "this sign-in's browser tab.",
}

# What a person should do next, for failures whose daemon message may not say it.
NEXT_STEP: dict[int, str] = {
    ErrorCode.AUTH_CLIENT_NOT_SELECTED: (
        "On the software's consent page, tick this client's business, then allow access. "
        "Press Start again."
    ),
    ErrorCode.AUTH_SESSION_EXPIRED: "The sign-in took too long. Press Start again.",
    ErrorCode.AUTH_SESSION_UNKNOWN: "clientlinkd no longer knows this sign-in. Press Start again.",
    ErrorCode.AUTH_STATE_MISMATCH: (
        "That address belongs to a different sign-in. Paste the address from this sign-in, "
        "or press Start again."
    ),
}


class AuthorizeUrl(Static):
    """The sign-in address: the short one, on one line, to copy or type in a browser."""


class SignInScreen(DaemonScreen[AuthCompleteResult | None]):
    """Re-authorise one client: open the address, sign in, tick the business, allow.

    Without a client it is the bulk sign-in: the grant and the businesses it covers go back
    to the caller (the dismiss result) instead of a toast.
    """

    TITLE = "Re-Authorise"
    HELP = (
        "Re-authorise one client. Open the address in a browser, sign in to the accounting "
        "software, enter the authenticator code, tick this client's business and allow "
        "access. clientlinkd notices when the browser comes back to it; if your browser is "
        "on another computer, either forward the port with the ssh command shown, or paste "
        "the address your browser ended on (even an error page) into the field and press "
        "Enter."
    )
    BULK_HELP = (
        "One sign-in for Re-authorise Bulk Clients. Open the address in a browser, sign in "
        "to the accounting software, enter the authenticator code, tick every business you "
        "want to re-authorise (the ones whose clients need it) and allow access. Next you "
        "choose which of those clients to re-authorise. If your browser is on another "
        "computer, either forward the port with the ssh command shown, or paste the address "
        "your browser ended on (even an error page) into the field and press Enter."
    )
    # The paste field has the focus: every key a person types there is text, so the
    # shortcuts are keys that type nothing (s only once the field is gone, after a failure).
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="sign_in.cancel"),
        Binding("f5", "copy_url", "Copy address", id="sign_in.copy_url"),
        Binding("f8", "toggle_qr", "QR code", id="sign_in.toggle_qr"),
        Binding("f9", "open_browser", "Open browser", id="sign_in.open_browser"),
        Binding("s", "start_again", "Start again", id="sign_in.start_again"),
    ]

    phase: reactive[Phase] = reactive(Phase.STARTING)
    show_qr: reactive[bool] = reactive(False)

    def __init__(
        self,
        client: Client | None,
        software: str,
        *,
        provider: str | None = None,
        approve_orgs: list[str] | None = None,
        new_connections: int = 1,
        business: str | None = None,
    ) -> None:
        """``client`` to re-authorise; or None with ``provider`` for a bulk sign-in.

        ``approve_orgs`` are the businesses the demo's auto-approve ticks in bulk mode;
        ``new_connections`` how many businesses the sign-in may connect (checked by the
        daemon against the provider's connection cap, which is said before signing in);
        ``business`` the provider business a bulk sign-in is for, where one sign-in covers
        one business (Class Super).
        """
        super().__init__()
        self.client = client
        self.software = software
        self.provider = client.provider if client is not None else provider
        if self.provider is None:
            raise ValueError("a bulk sign-in needs the provider")
        self.approve_orgs = approve_orgs or []
        self.new_connections = new_connections
        self.business = business
        if client is None:
            self.HELP = self.BULK_HELP
            self.title = "Re-authorise Bulk Clients: sign in"
        self.result: AuthCompleteResult | None = None
        """The grant and the businesses it covers, once the sign-in completed."""
        self.session: AuthBeginResult | None = None
        self._lost_to_outage = False
        self.error_code: int | None = None
        """The daemon's error code for the last failure, if it gave one."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        with VerticalScroll(id="sign-in-body"):
            yield Static(self._title_text(), id="sign-in-title")
            yield Static("Opening a sign-in session…", id="sign-in-status")
            yield Static("", id="sign-in-warning")
            yield Static("", id="sign-in-error")
            with Vertical(id="sign-in-details"):
                yield Label("Open this address in a browser  (F5 copies it, F8 QR code):")
                yield AuthorizeUrl("", id="sign-in-url")
                yield Static("", id="sign-in-ssh-hint")
                yield Label("Paste the address your browser ended on, then press Enter:")
                yield Input(placeholder="http://127.0.0.1:…/callback?code=…", id="sign-in-paste")
                yield Static("", id="sign-in-paste-error")
            with VerticalScroll(id="sign-in-qr"):
                yield Static("", id="sign-in-qr-note")
                yield QrView(id="sign-in-qr-code")
            with Horizontal(id="sign-in-buttons"):
                yield Button("Cancel", id="sign-in-cancel", compact=True)
                yield Button(
                    "Start again", id="sign-in-start-again", variant="primary", compact=True
                )
        yield Footer(show_command_palette=False)

    def _title_text(self) -> Text:
        if self.client is None and self.business is not None:
            title = Text("Sign in to ", style="bold")
            title.append(self.software, style="bold reverse")
            title.append("  business ")
            title.append(self.business, style="bold reverse")
            return title
        if self.client is None:
            title = Text("Sign in to ", style="bold")
            title.append(self.software, style="bold reverse")
            # Some software asks which businesses (Xero); an SMSF firm's consent covers it whole.
            title.append("  and allow access (tick every business to re-authorise, if asked)")
            return title
        title = Text("Re-authorise ", style="bold")
        title.append(self.client.name, style="bold reverse")
        title.append(f"  with {self.software}")
        return title

    def on_mount(self) -> None:
        self.set_interval(1.0, self._show_time_left)
        self.begin_sign_in()

    # ------------------------------------------------------------------ state

    def watch_phase(self, phase: Phase) -> None:
        for each in Phase:
            self.set_class(each == phase, f"-{each.value}")
        self.refresh_bindings()
        if phase == Phase.STARTING:
            self.query_one("#sign-in-status", Static).update("Opening a sign-in session…")
            self.query_one("#sign-in-error", Static).update("")
        elif phase == Phase.WAITING:
            self._show_time_left()
        elif phase == Phase.COMPLETING:
            self.query_one("#sign-in-status", Static).update("Finishing the sign-in…")

    def watch_show_qr(self, show: bool) -> None:
        drawn = show and self.session is not None and phone_can_open(self.session.short_url)
        note = self.query_one("#sign-in-qr-note", Static)
        if show and self.session is not None and not drawn:
            note.update(qr_cannot_help(self.session.short_url))
        else:
            note.update("Scan it with your phone's camera. Esc (or F8) goes back.")
        self.set_class(show, "-show-qr")
        self.set_class(drawn, "-qr-drawn")
        if show:
            qr = self.query_one("#sign-in-qr", VerticalScroll)
            self.call_after_refresh(qr.scroll_visible)
        elif self.phase == Phase.WAITING:
            self.query_one("#sign-in-paste", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_again":
            return self.phase == Phase.FAILED
        if action in ("copy_url", "toggle_qr"):
            return self.session is not None and self.phase != Phase.FAILED
        if action == "open_browser":
            return self.clientlink.open_browser and self.session is not None
        return True

    def _show_time_left(self) -> None:
        if self.phase != Phase.WAITING or self.session is None:
            return
        expires_at = parse_time(self.session.expires_at)
        left = (expires_at - current_time()).total_seconds() if expires_at else 0.0
        if expires_at and left <= 0:
            self._fail(
                "This sign-in expired before it was finished.", ErrorCode.AUTH_SESSION_EXPIRED
            )
            return
        doing = (
            "The sandbox is signing in for you…"
            if self.clientlink.auto_approve
            else "Waiting for you to sign in…"
        )
        self.query_one("#sign-in-status", Static).update(
            f"{doing} {countdown(left)} left" if expires_at else doing
        )

    def _fail(self, message: str, code: int | None = None) -> None:
        if self.phase == Phase.DONE:
            return  # a late error after success (the other path finished first)
        self.error_code = code
        error = Text("Sign-in failed: ", style="bold red")
        error.append(message, style="red")
        if code is not None and code in NEXT_STEP:
            error.append(f"\n{NEXT_STEP[code]}")
        self.query_one("#sign-in-error", Static).update(error)
        self.query_one("#sign-in-status", Static).update("")
        self.phase = Phase.FAILED
        self.query_one("#sign-in-start-again", Button).focus()

    def _succeed(self, result: AuthCompleteResult) -> None:
        if self.phase == Phase.DONE:
            return
        self.result = result
        self.phase = Phase.DONE
        if self.client is not None:
            self.app.notify(SUCCESS_MESSAGE, title=self.client.name, severity="information")
        if self.is_current:
            self.dismiss(result)
        # Otherwise (help is open on top) on_screen_resume closes this screen.

    def on_screen_resume(self) -> None:
        if self.phase == Phase.DONE:
            self.dismiss(self.result)

    # ------------------------------------------------------------------ the session

    @work(exclusive=True, group="auth-session", exit_on_error=False)
    async def begin_sign_in(self) -> None:
        """Open a sign-in session for this client and show how to finish it."""
        self.session = None
        self._lost_to_outage = False
        self.show_qr = False
        self.phase = Phase.STARTING
        params: dict[str, Any] = {
            "provider": self.provider,
            "new_connections": self.new_connections,
        }
        if self.client is not None:
            params["client_id"] = self.client.id
        if self.business is not None:
            params["business"] = self.business
        try:
            result = await self.clientlink.daemon.call(p.AUTH_BEGIN, **params)
        except RpcError as exc:
            self._fail(exc.message, exc.code)
            return
        except DaemonUnavailable as exc:
            self._lost_to_outage = True
            self._fail(f"{exc}. The sign-in starts again once clientlinkd is back.")
            return
        self.session = result
        if self.session.warning:
            self.query_one("#sign-in-warning", Static).update(
                Text(f"Before you sign in: {self.session.warning}.", style="bold yellow")
            )
            self.add_class("-warned")
        self._show_session(self.session)
        self.phase = Phase.WAITING
        if self.clientlink.auto_approve is not None:
            self.sign_in_automatically(self.session)
        elif self.clientlink.open_browser:
            await asyncio.to_thread(webbrowser.open, self.session.authorize_url)

    def _show_session(self, session: AuthBeginResult) -> None:
        # The short address: one line, so a mouse copies all of it; it leads to the provider.
        self.query_one("#sign-in-url", AuthorizeUrl).update(
            Text(session.short_url, style="underline", no_wrap=True, overflow="ellipsis")
        )
        self.query_one("#sign-in-qr-code", QrView).show(
            session.short_url if phone_can_open(session.short_url) else ""
        )
        self.query_one("#sign-in-paste-error", Static).update("")
        hint = self.query_one("#sign-in-ssh-hint", Static)
        if self.clientlink.open_browser:
            hint.update(Text("A browser window was opened for you.", style="dim"))
        else:
            forward = Text("Browser on another computer? Run this there first:\n  ")
            forward.append(port_forward_command(session.callback_port), style="bold")
            hint.update(forward)
        self.query_one("#sign-in-paste", Input).focus()

    @work(exclusive=True, group="auth-complete", exit_on_error=False)
    async def complete_sign_in(self, session_id: str, redirect_url: str) -> None:
        """Hand the address the browser ended on to the daemon to finish the sign-in."""
        self.phase = Phase.COMPLETING
        try:
            result = await self.clientlink.daemon.call(
                p.AUTH_COMPLETE, session_id=session_id, redirect_url=redirect_url
            )
        except RpcError as exc:
            if exc.error_code == ErrorCode.AUTH_SESSION_FINISHED and self.phase == Phase.DONE:
                return
            if await self._still_waiting(session_id):
                self._paste_refused(exc.message, exc.code)
                return
            self._fail(exc.message, exc.code)
            return
        self._succeed(result)

    async def _still_waiting(self, session_id: str) -> bool:
        """Whether clientlinkd still waits for this sign-in after a refused address."""
        try:
            status = await self.clientlink.daemon.call(p.AUTH_STATUS, session_id=session_id)
        except (RpcError, DaemonUnavailable):
            return False
        return status.state == AuthSessionState.PENDING

    def _paste_refused(self, message: str, code: int | None) -> None:
        """A wrong paste: say why under the field and keep waiting for the right one."""
        if self.phase == Phase.DONE:
            return
        error = Text("Not that address: ", style="bold red")
        error.append(message, style="red")
        if code is not None and code in PASTE_HINT:
            error.append(f"\n{PASTE_HINT[code]}")
        self.query_one("#sign-in-paste-error", Static).update(error)
        self.phase = Phase.WAITING
        paste = self.query_one("#sign-in-paste", Input)
        paste.focus()
        paste.select_all()

    @work(exclusive=True, group="auto-approve", exit_on_error=False)
    async def sign_in_automatically(self, session: AuthBeginResult) -> None:
        """The demo's --auto-approve: the sandbox plays the person in the browser."""
        assert self.clientlink.auto_approve is not None
        if self.client is None:
            tenants = self.approve_orgs
        else:
            tenants = [self.client.tenant_id] if self.client.tenant_id else []
        try:
            redirect_url = await self.clientlink.auto_approve(session.authorize_url, tenants)
        except Exception as exc:
            self._fail(f"The sandbox could not sign in: {exc}")
            return
        if self.phase == Phase.WAITING and self.session is session:
            self.complete_sign_in(session.session_id, redirect_url)

    @work(exclusive=True, group="auth-status", exit_on_error=False)
    async def check_session(self, session_id: str) -> None:
        """After a reconnect: did the sign-in finish while we could not hear about it?"""
        try:
            status = await self.clientlink.daemon.call(p.AUTH_STATUS, session_id=session_id)
        except RpcError as exc:
            self._fail(exc.message, exc.code)
            return
        if status.state == AuthSessionState.COMPLETED and status.result is not None:
            self._succeed(status.result)
        elif status.state == AuthSessionState.PENDING and self.phase == Phase.COMPLETING:
            self.phase = Phase.WAITING  # our auth.complete was lost with the connection
        elif status.state == AuthSessionState.FAILED:
            error: dict[str, Any] = status.error or {}
            self._fail(str(error.get("message", "the sign-in failed")), error.get("code"))
        elif status.state in (AuthSessionState.EXPIRED, AuthSessionState.CANCELLED):
            self._fail(f"This sign-in was {status.state.value}.", ErrorCode.AUTH_SESSION_EXPIRED)

    # ------------------------------------------------------------------ daemon events

    def on_auth_completed(self, message: messages.AuthCompleted) -> None:
        event = message.event
        if self.session and event.session_id == self.session.session_id:
            self._succeed(
                AuthCompleteResult(
                    grant_id=event.grant_id, tenants=event.tenants, client_id=event.client_id
                )
            )

    def on_auth_failed(self, message: messages.AuthFailed) -> None:
        if self.session and message.event.session_id == self.session.session_id:
            if self.phase != Phase.DONE:
                # A toast too, as for a success: the person may be looking elsewhere. The
                # provider wrote the message; the app's toasts show it as written.
                who = self.client.name if self.client is not None else self.software
                self.app.notify(
                    message.event.message, title=f"Sign-in failed — {who}", severity="error"
                )
            self._fail(message.event.message, message.event.code)

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        if self._lost_to_outage:
            self.begin_sign_in()
        elif self.session is not None and self.phase in (Phase.WAITING, Phase.COMPLETING):
            self.check_session(self.session.session_id)

    # ------------------------------------------------------------------ a person's input

    @on(Input.Submitted, "#sign-in-paste")
    def _paste_submitted(self, event: Input.Submitted) -> None:
        redirect_url = event.value.strip()
        if not redirect_url:
            self.notify(
                "Paste the address from your browser's address bar first.", severity="warning"
            )
            return
        if self.session is None or self.phase != Phase.WAITING:
            self.notify("This sign-in is not waiting for an address.", severity="warning")
            return
        self.complete_sign_in(self.session.session_id, redirect_url)

    def on_paste(self, event: events.Paste) -> None:
        # A paste anywhere on the screen lands in the paste field.
        paste = self.query_one("#sign-in-paste", Input)
        if not paste.has_focus and event.text.strip():
            paste.value = event.text.strip()
            paste.focus()

    def action_copy_url(self) -> None:
        """Copy the sign-in address to the clipboard (where the terminal allows it)."""
        if self.session is None:
            return
        self.app.copy_to_clipboard(self.session.short_url)
        self.notify("Sign-in address copied (if your terminal allows clipboard access).")

    def action_toggle_qr(self) -> None:
        """Show or hide a QR code of the address, for signing in on a phone."""
        self.show_qr = not self.show_qr

    def action_open_browser(self) -> None:
        """Open the address in this computer's browser again."""
        if self.session is not None:
            webbrowser.open(self.session.authorize_url)

    def action_focus_paste(self) -> None:
        """Move to the field for the address the browser ended on."""
        self.query_one("#sign-in-paste", Input).focus()

    def action_start_again(self) -> None:
        """Open a new sign-in session after a failure."""
        if self.phase == Phase.FAILED:
            self.begin_sign_in()

    @on(Button.Pressed, "#sign-in-start-again")
    def _start_again_pressed(self) -> None:
        self.action_start_again()

    @on(Button.Pressed, "#sign-in-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        """Abandon the sign-in and go back to the list."""
        if self.show_qr:
            self.show_qr = False
            return
        self.cancel_and_close()

    @work(exclusive=True, group="auth-session", exit_on_error=False)
    async def cancel_and_close(self) -> None:
        """Tell the daemon to drop the session (if it still runs), then close."""
        session = self.session
        if session is not None and self.phase in (Phase.WAITING, Phase.COMPLETING):
            try:
                await self.clientlink.daemon.call(p.AUTH_CANCEL, session_id=session.session_id)
            except (RpcError, DaemonUnavailable) as exc:
                self.log.warning(f"could not cancel sign-in {session.session_id}: {exc}")
        self.dismiss(None)

    def palette_commands(self) -> list[PaletteCommand]:
        commands = [
            PaletteCommand(
                "Sign-in: copy address", "Copy the sign-in address (F5)", self.action_copy_url
            ),
            PaletteCommand(
                "Sign-in: show QR code", "Sign in on a phone (F8)", self.action_toggle_qr
            ),
            PaletteCommand(
                "Sign-in: paste address",
                "Finish with the address your browser ended on",
                self.action_focus_paste,
            ),
            PaletteCommand("Sign-in: cancel", "Back (Esc)", self.action_cancel),
        ]
        if self.phase == Phase.FAILED:
            commands.append(
                PaletteCommand("Sign-in: start again", "A new sign-in (s)", self.action_start_again)
            )
        return commands
