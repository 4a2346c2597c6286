"""Sign-in sessions: state, PKCE verifier, expiry, and the loopback redirect listener.

A session is opened by ``auth.begin`` and finished exactly once, either by the
browser's redirect arriving at the loopback listener or by the person pasting the
address their browser ended on (``auth.complete``). The listener is open only while
at least one session is pending. A wrong state, a finished or expired session changes
nothing.

The listener also serves each session's short address, ``/s/<code>``: a redirect to the
provider's sign-in page while that session is pending, short enough to copy from a terminal
in one piece. Otherwise it answers a small page that says only that nothing waits there.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from clientlink.common.config import AuthConfig
from clientlink.common.protocol import AuthSessionState, ErrorCode
from clientlink.common.timeutil import to_iso
from clientlink.common.wording import plural
from clientlink.daemon.clock import Clock
from clientlink.daemon.rpc_errors import RpcFailure

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response

    from clientlink.common.loopback import LoopbackServer

log = logging.getLogger(__name__)

SHORT_PATH = "/s/"
"""Where the listener serves each session's short address (``/s/<code>``)."""
SHORT_CODE_BYTES = 9
"""Random bytes in a short address's code: 12 url-safe characters, 72 bits, unguessable."""


@dataclass
class AuthSession:
    """One person's sign-in in progress. The verifier and state never leave the daemon."""

    id: str
    provider: str
    client_id: int | None
    actor: str
    state: str
    code_verifier: str
    redirect_uri: str
    authorize_url: str
    created_at: datetime
    expires_at: datetime
    business: str | None = None
    short_code: str = field(default_factory=lambda: secrets.token_urlsafe(SHORT_CODE_BYTES))
    status: AuthSessionState = AuthSessionState.PENDING
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def public(self) -> dict[str, Any]:
        """The session as ``auth.status`` reports it (no state, no verifier)."""
        return {
            "session_id": self.id,
            "provider": self.provider,
            "client_id": self.client_id,
            "state": self.status.value,
            "expires_at": to_iso(self.expires_at),
            "error": self.error,
            "result": self.result,
        }


# Given a session and the redirect's query parameters (code, state, realmId...), trade
# the code and do the work the session was opened for; returns the auth.complete result.
CodeHandler = Callable[[AuthSession, str, dict[str, str]], Awaitable[dict[str, Any]]]
# Called with (session, topic-ish outcome) when a session finishes, for events.
FinishHandler = Callable[[AuthSession], None]


class AuthSessions:
    """Opens, finishes, expires and cancels sign-in sessions."""

    def __init__(
        self,
        config: AuthConfig,
        clock: Clock,
        on_code: CodeHandler,
        on_finish: FinishHandler,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_code = on_code
        self._on_finish = on_finish
        self._sessions: dict[str, AuthSession] = {}
        self._listener: LoopbackServer | None = None
        self._listener_lock = asyncio.Lock()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ sessions

    async def begin(
        self,
        provider: str,
        client_id: int | None,
        actor: str,
        build_url: Callable[[str, str, str], str],
        business: str | None = None,
    ) -> AuthSession:
        """Open a session; ``build_url(redirect_uri, state, verifier)`` makes the sign-in URL."""
        port = await self._ensure_listener()
        redirect_uri = f"http://{self._config.callback_host}:{port}{self._config.callback_path}"
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)[:96]
        now = self._clock.now()
        session = AuthSession(
            id=secrets.token_urlsafe(12),
            provider=provider,
            client_id=client_id,
            actor=actor,
            state=state,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            authorize_url=build_url(redirect_uri, state, verifier),
            created_at=now,
            expires_at=now + timedelta(minutes=self._config.session_minutes),
            business=business,
        )
        self._sessions[session.id] = session
        delay = (session.expires_at - now).total_seconds()
        self._timers[session.id] = asyncio.get_running_loop().call_later(
            delay, self._expire_if_due, session.id
        )
        return session

    def short_url(self, session: AuthSession) -> str:
        """The session's short address on the listener: it redirects to the provider."""
        redirect = urlsplit(session.redirect_uri)
        return f"{redirect.scheme}://{redirect.netloc}{SHORT_PATH}{session.short_code}"

    @property
    def callback_port(self) -> int:
        return self._listener.port if self._listener else 0

    def open_sessions(self) -> list[AuthSession]:
        """Every session not finished yet (expiry applied): who is signing in, for what."""
        self._sweep()
        return [
            session
            for session in self._sessions.values()
            if session.status in (AuthSessionState.PENDING, AuthSessionState.EXCHANGING)
        ]

    def pending_count(self) -> int:
        self._sweep()
        return sum(1 for s in self._sessions.values() if s.status == AuthSessionState.PENDING)

    def get(self, session_id: str) -> AuthSession:
        """The session, with its expiry applied; unknown ids are a clear error."""
        session = self._sessions.get(session_id)
        if session is None:
            raise RpcFailure(
                ErrorCode.AUTH_SESSION_UNKNOWN,
                "No sign-in session has that id (it may be from before the daemon restarted): "
                "start the sign-in again",
            )
        self._apply_expiry(session)
        return session

    async def complete(self, session_id: str, redirect_url: str) -> dict[str, Any]:
        """Finish a session from the address the browser ended on."""
        session = self.get(session_id)
        self._require_pending(session)
        _check_redirect_address(redirect_url, session.redirect_uri)
        params = _redirect_params(redirect_url)
        return await self._finish(session, params)

    async def cancel(self, session_id: str) -> AuthSession:
        """Abandon a pending session (a finished one is left as it is)."""
        session = self.get(session_id)
        if session.status == AuthSessionState.PENDING:
            self._close(session, AuthSessionState.CANCELLED, None)
        await self._maybe_stop_listener()
        return session

    async def close(self) -> None:
        """Stop the listener and forget every session (daemon shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._listener:
            await self._listener.stop()
            self._listener = None

    async def _finish(self, session: AuthSession, params: dict[str, str]) -> dict[str, Any]:
        self._require_pending(session)
        given_state = params.get("state", "")
        if not secrets.compare_digest(given_state.encode(), session.state.encode()):
            raise RpcFailure(
                ErrorCode.AUTH_STATE_MISMATCH,
                "That address belongs to a different sign-in (its state does not match this "
                "session); nothing was changed. Paste the address from this sign-in's browser tab",
            )
        if "error" in params:
            error = params["error"]
            message = (
                "Access was not allowed (Cancel was pressed on the consent page)"
                if error == "access_denied"
                else f"The sign-in failed: {error}"
            )
            if params.get("error_description") and error != "access_denied":
                message += f" ({params['error_description']})"
            failure = RpcFailure(ErrorCode.AUTH_PROVIDER_REFUSED, message)
            self._close(session, AuthSessionState.FAILED, failure)
            self._schedule_listener_check()
            raise failure
        code = params.get("code")
        if not code:
            raise RpcFailure(
                ErrorCode.AUTH_REDIRECT_INVALID,
                "That address has no sign-in result in it: paste the whole address from the "
                "browser's address bar after pressing Allow access",
            )
        session.status = AuthSessionState.EXCHANGING
        try:
            result = await self._on_code(session, code, params)
        except RpcFailure as failure:
            self._close(session, AuthSessionState.FAILED, failure)
            raise
        except Exception as exc:
            log.exception("sign-in session %s failed", session.id)
            failure = RpcFailure(ErrorCode.INTERNAL_ERROR, f"The sign-in failed: {exc}")
            self._close(session, AuthSessionState.FAILED, failure)
            raise failure from exc
        finally:
            self._schedule_listener_check()
        session.result = result
        self._close(session, AuthSessionState.COMPLETED, None)
        return result

    def _require_pending(self, session: AuthSession) -> None:
        if session.status == AuthSessionState.PENDING:
            return
        if session.status == AuthSessionState.EXPIRED:
            raise RpcFailure(
                ErrorCode.AUTH_SESSION_EXPIRED,
                f"This sign-in expired after {plural(self._config.session_minutes, 'minute')}: "
                "start it again",
            )
        raise RpcFailure(
            ErrorCode.AUTH_SESSION_FINISHED,
            f"This sign-in is already {session.status.value}; nothing was changed. Start the "
            "sign-in again from clientlink if you still need it",
        )

    def _close(
        self, session: AuthSession, status: AuthSessionState, failure: RpcFailure | None
    ) -> None:
        session.status = status
        if failure is not None:
            session.error = {"code": int(failure.code), "message": failure.message}
        timer = self._timers.pop(session.id, None)
        if timer:
            timer.cancel()
        session.finished.set()
        self._on_finish(session)

    def _apply_expiry(self, session: AuthSession) -> None:
        if session.status == AuthSessionState.PENDING and self._clock.now() >= session.expires_at:
            failure = RpcFailure(
                ErrorCode.AUTH_SESSION_EXPIRED,
                f"This sign-in expired after {plural(self._config.session_minutes, 'minute')}: "
                "start it again",
            )
            self._close(session, AuthSessionState.EXPIRED, failure)

    def _sweep(self) -> None:
        horizon = self._clock.now() - timedelta(hours=1)
        for session in list(self._sessions.values()):
            self._apply_expiry(session)
            if session.status != AuthSessionState.PENDING and session.expires_at < horizon:
                del self._sessions[session.id]

    def _expire_if_due(self, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            self._apply_expiry(session)
        self._schedule_listener_check()

    # ------------------------------------------------------------------ listener

    async def _ensure_listener(self) -> int:
        async with self._listener_lock:
            if self._listener is None:
                # Imported here: the web stack costs memory the daemon needs only while
                # someone is signing in.
                from starlette.applications import Starlette
                from starlette.routing import Route

                from clientlink.common.loopback import LoopbackServer

                app = Starlette(
                    routes=[
                        Route(self._config.callback_path, self._on_redirect),
                        Route(SHORT_PATH + "{code}", self._on_short_address),
                    ]
                )
                listener = LoopbackServer(
                    app, self._config.callback_host, self._config.callback_port
                )
                try:
                    await listener.start()
                except OSError as exc:
                    raise RpcFailure(
                        ErrorCode.CONFLICT,
                        f"Cannot listen for the sign-in redirect on "
                        f"{self._config.callback_host}:{self._config.callback_port} ({exc}); "
                        "free that port or change [auth] callback_port in config.toml (it must "
                        "match the redirect URI registered with the provider)",
                    ) from exc
                self._listener = listener
                log.info("sign-in listener open on port %s", listener.port)
            return self._listener.port

    def _schedule_listener_check(self) -> None:
        # Never stop the listener inline: a redirect being served by it would wait on itself.
        task = asyncio.ensure_future(self._maybe_stop_listener())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _maybe_stop_listener(self) -> None:
        async with self._listener_lock:
            if self._listener is not None and self.pending_count() == 0:
                await self._listener.stop()
                self._listener = None
                log.info("sign-in listener closed")

    async def _on_redirect(self, request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        session = self._session_for_state(params.get("state", ""))
        if session is None:
            return _page(
                400,
                "clientlink is not waiting for this sign-in",
                "It may have expired, been cancelled or been completed already. "
                "Start the sign-in again from clientlink.",
            )
        try:
            await self._finish(session, params)
        except RpcFailure as failure:
            return _page(400, "The sign-in did not complete", failure.message)
        return _page(
            200,
            "Signed in",
            "clientlink has the authorisation. You can close this tab and return to clientlink.",
        )

    async def _on_short_address(self, request: Request) -> Response:
        """A session's short address: to the provider while it waits, else a page saying
        nothing waits here (the same page whether the code was never issued, has expired
        or has finished, so the page tells a guesser nothing)."""
        from starlette.responses import RedirectResponse

        code = str(request.path_params.get("code", ""))
        for session in list(self._sessions.values()):
            if secrets.compare_digest(session.short_code.encode(), code.encode()):
                self._apply_expiry(session)
                if session.status == AuthSessionState.PENDING:
                    return RedirectResponse(
                        session.authorize_url,
                        status_code=302,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
                    )
                break
        return _page(
            404,
            "No sign-in is waiting at this address",
            "It may have expired, been finished or cancelled. "
            "Start the sign-in again from clientlink and open the new address it shows.",
        )

    def _session_for_state(self, state: str) -> AuthSession | None:
        for session in self._sessions.values():
            if secrets.compare_digest(session.state.encode(), state.encode()):
                self._apply_expiry(session)
                return session
        return None


def _check_redirect_address(redirect_url: str, redirect_uri: str) -> None:
    """A pasted address must be this session's redirect URI plus its query: anything else
    (another scheme, host, port or path) is not where this sign-in sends the browser."""
    text = redirect_url.strip()
    if not text.startswith(("http://", "https://")) and "://" not in text:
        return  # only the query was pasted (``?code=...&state=...``): nothing to compare
    given, expected = urlsplit(text), urlsplit(redirect_uri)
    try:
        given_port = given.port
    except ValueError:
        given_port = -1
    differences = [
        name
        for name, a, b in (
            ("scheme", given.scheme.lower(), expected.scheme.lower()),
            ("host", (given.hostname or "").lower(), (expected.hostname or "").lower()),
            ("port", given_port, expected.port),
            ("path", given.path, expected.path),
        )
        if a != b
    ]
    if differences:
        raise RpcFailure(
            ErrorCode.AUTH_REDIRECT_INVALID,
            f"That address is not this sign-in's redirect address (its {', '.join(differences)} "
            f"differ from {redirect_uri}); nothing was changed and the sign-in is still "
            "waiting. Paste the address the browser ended on after pressing Allow access",
        )


def _redirect_params(redirect_url: str) -> dict[str, str]:
    text = redirect_url.strip()
    query = urlsplit(text).query if "?" in text else text
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "state" not in params or not ({"code", "error"} & params.keys()):
        raise RpcFailure(
            ErrorCode.AUTH_REDIRECT_INVALID,
            "That address has no sign-in result in it: paste the whole address from the "
            "browser's address bar after pressing Allow access",
        )
    return params


def _page(status: int, title: str, message: str) -> HTMLResponse:
    from starlette.responses import HTMLResponse

    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>clientlink</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
