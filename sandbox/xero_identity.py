"""HTTP side of the Xero-like identity server: authorize pages, token and revocation.

Paths mirror Xero's under the `/xero` prefix: `/xero/identity/connect/authorize`,
`/xero/identity/connect/token`, `/xero/identity/connect/revocation`.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.seed import format_abn
from clientlink.sandbox.state import SandboxState
from clientlink.sandbox.xero import (
    OAuthError,
    SignInError,
    SignInTransaction,
    with_query,
)

AUTHORIZE_PATH = "/xero/identity/connect/authorize"
SIGN_IN_PATH = AUTHORIZE_PATH + "/sign-in"
AUTHENTICATOR_PATH = AUTHORIZE_PATH + "/authenticator"
ORGANISATIONS_PATH = AUTHORIZE_PATH + "/organisations"
CONSENT_PATH = AUTHORIZE_PATH + "/consent"
TOKEN_PATH = "/xero/identity/connect/token"
REVOCATION_PATH = "/xero/identity/connect/revocation"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _page(
    request: Request, name: str, title: str, status_code: int = 200, **context: Any
) -> Response:
    response = templates.TemplateResponse(
        request, name, {"title": title, **context}, status_code=status_code
    )
    # Sign-in pages carry a transaction id; keep them out of shared caches.
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(request: Request, message: str, status_code: int = 400) -> Response:
    return _page(request, "error.html", "Sign-in problem", status_code, error=message)


# -- authorize -----------------------------------------------------------------------------


async def authorize(request: Request) -> Response:
    """GET authorize: validate the request, then show the sign-in page."""
    state = _state(request)
    state.calls["authorize"] += 1
    params = request.query_params
    app = state.xero.apps.get(params.get("client_id", ""))
    if app is None:
        return _error_page(request, "Unknown client_id: this app is not registered.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not app.accepts_redirect_uri(redirect_uri):
        return _error_page(
            request,
            "Invalid redirect_uri: it is not registered for this app "
            "(loopback apps must use http://127.0.0.1:PORT/..., not localhost).",
        )
    oauth_state = params.get("state")

    def fail(error: str, description: str) -> Response:
        extra = {"state": oauth_state} if oauth_state is not None else {}
        location = with_query(
            redirect_uri, {"error": error, "error_description": description} | extra
        )
        return RedirectResponse(location, status_code=302)

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    challenge = params.get("code_challenge", "")
    # RFC 7636 §4.3: an omitted method means plain, which the sandbox, like a careful
    # provider for native apps, refuses.
    if not challenge or params.get("code_challenge_method") != "S256":
        return fail("invalid_request", "PKCE S256 is required")
    if len(challenge) != 43:
        return fail("invalid_request", "code_challenge must be a 43-character S256 value")
    scope = " ".join(params.get("scope", "").split())
    if not scope:
        return fail("invalid_request", "scope is required")
    txn = state.xero.begin_sign_in(app, redirect_uri, scope, oauth_state, challenge)
    return _sign_in_page(request, txn)


def _sign_in_page(
    request: Request, txn: SignInTransaction, error: str | None = None, email: str = ""
) -> Response:
    return _page(
        request,
        "sign_in.html",
        "Log in",
        txn=txn.id,
        action=SIGN_IN_PATH,
        app_name=txn.app.name,
        email=email,
        error=error,
    )


def _authenticator_page(
    request: Request, txn: SignInTransaction, error: str | None = None
) -> Response:
    assert txn.user is not None
    return _page(
        request,
        "authenticator.html",
        "Two-step authentication",
        txn=txn.id,
        action=AUTHENTICATOR_PATH,
        user=txn.user,
        hint_code=_state(request).xero.current_totp(txn.user),
        error=error,
    )


def _organisations_page(
    request: Request, txn: SignInTransaction, error: str | None = None
) -> Response:
    assert txn.user is not None
    orgs = [
        {"tenant_id": org.tenant_id, "name": org.name, "abn_display": format_abn(org.abn)}
        for org in _state(request).xero.organisations_for(txn.user)
    ]
    return _page(
        request,
        "organisations.html",
        "Select organisations",
        txn=txn.id,
        action=ORGANISATIONS_PATH,
        app_name=txn.app.name,
        orgs=orgs,
        selected=set(txn.tenant_ids),
        error=error,
    )


def _consent_page(request: Request, txn: SignInTransaction) -> Response:
    orgs = [_state(request).xero.orgs[tid] for tid in txn.tenant_ids]
    return _page(
        request,
        "consent.html",
        "Allow access",
        txn=txn.id,
        action=CONSENT_PATH,
        app_name=txn.app.name,
        scopes=txn.scope.split(),
        orgs=orgs,
    )


async def sign_in_step(request: Request) -> Response:
    """POST email and password."""
    form = await request.form()
    xero = _state(request).xero
    try:
        txn = xero.transaction(str(form.get("txn", "")), "sign_in")
    except SignInError as exc:
        return _error_page(request, str(exc))
    email = str(form.get("email", ""))
    try:
        xero.sign_in(txn, email, str(form.get("password", "")))
    except SignInError as exc:
        return _sign_in_page(request, txn, str(exc), email)
    return _authenticator_page(request, txn)


async def authenticator_step(request: Request) -> Response:
    """POST the 6-digit authenticator code."""
    form = await request.form()
    xero = _state(request).xero
    try:
        txn = xero.transaction(str(form.get("txn", "")), "authenticator")
    except SignInError as exc:
        return _error_page(request, str(exc))
    try:
        xero.verify_authenticator(txn, str(form.get("code", "")))
    except SignInError as exc:
        return _authenticator_page(request, txn, str(exc))
    return _organisations_page(request, txn)


async def organisations_step(request: Request) -> Response:
    """POST the ticked organisations."""
    form = await request.form()
    xero = _state(request).xero
    try:
        txn = xero.transaction(str(form.get("txn", "")), "organisations")
    except SignInError as exc:
        return _error_page(request, str(exc))
    try:
        xero.select_organisations(txn, [str(v) for v in form.getlist("tenant")])
    except SignInError as exc:
        return _organisations_page(request, txn, str(exc))
    return _consent_page(request, txn)


async def consent_step(request: Request) -> Response:
    """POST Allow access or Cancel; both end in a 302 to the app's redirect URI."""
    form = await request.form()
    xero = _state(request).xero
    try:
        txn = xero.transaction(str(form.get("txn", "")), "consent")
    except SignInError as exc:
        return _error_page(request, str(exc))
    allow = form.get("decision") == "allow"
    return RedirectResponse(xero.finish_consent(txn, allow), status_code=302)


# -- token and revocation ----------------------------------------------------------------


def _oauth_error(exc: OAuthError, *, basic_used: bool = False) -> Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if exc.status == 401 and basic_used:
        # RFC 6749 §5.2: a failed Authorization-header auth must name the scheme.
        headers["WWW-Authenticate"] = 'Basic realm="xero-sandbox"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """Decode `Authorization: Basic`, form-decoding id and secret (RFC 6749 §2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials", 401)
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _authenticate_client(state: SandboxState, request: Request, form: FormData) -> SandboxApp:
    """Public clients name themselves in the form; confidential ones use Basic auth."""
    basic = _basic_credentials(request.headers.get("authorization", ""))
    if basic is not None:
        client_id, secret = basic
        app = state.xero.apps.get(client_id)
        if app is None:
            raise OAuthError("invalid_client", "Unknown client", 401)
        if app.client_secret is not None and secret != app.client_secret:
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return app
    app = state.xero.apps.get(str(form.get("client_id", "")))
    if app is None:
        raise OAuthError("invalid_client", "Unknown or missing client_id", 401)
    if not app.is_public:
        raise OAuthError("invalid_client", "This client must authenticate with HTTP Basic", 401)
    return app


def _required(form: FormData, *names: str) -> list[str]:
    missing = [name for name in names if not form.get(name)]
    if missing:
        raise OAuthError("invalid_request", f"Missing parameter: {', '.join(missing)}")
    return [str(form.get(name)) for name in names]


async def token(request: Request) -> Response:
    """POST token: authorization_code and refresh_token grants."""
    state = _state(request)
    form = await request.form()
    grant_type = str(form.get("grant_type", ""))
    if grant_type in ("authorization_code", "refresh_token"):
        state.calls[f"token.{grant_type}"] += 1
    else:
        state.calls["token.other"] += 1
    fault = await state.fault("token")
    if fault is not None:
        return fault
    basic_used = "authorization" in request.headers
    try:
        if not grant_type:
            raise OAuthError("invalid_request", "Missing parameter: grant_type")
        app = _authenticate_client(state, request, form)
        if grant_type == "authorization_code":
            code, redirect_uri, verifier = _required(form, "code", "redirect_uri", "code_verifier")
            body = state.xero.exchange_code(app, code, redirect_uri, verifier)
        elif grant_type == "refresh_token":
            (refresh_token,) = _required(form, "refresh_token")
            body = state.xero.refresh(app, refresh_token)
        else:
            raise OAuthError("unsupported_grant_type", f"Unsupported grant_type: {grant_type}")
    except OAuthError as exc:
        return _oauth_error(exc, basic_used=basic_used)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def revocation(request: Request) -> Response:
    """POST revocation (RFC 7009): 200 even for unknown tokens."""
    state = _state(request)
    state.calls["revocation"] += 1
    fault = await state.fault("revocation")
    if fault is not None:
        return fault
    form = await request.form()
    basic_used = "authorization" in request.headers
    try:
        app = _authenticate_client(state, request, form)
        (value,) = _required(form, "token")
    except OAuthError as exc:
        return _oauth_error(exc, basic_used=basic_used)
    state.xero.revoke_token(app, value)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


def identity_routes() -> list[Route]:
    """The identity server's routes."""
    return [
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        Route(SIGN_IN_PATH, sign_in_step, methods=["POST"]),
        Route(AUTHENTICATOR_PATH, authenticator_step, methods=["POST"]),
        Route(ORGANISATIONS_PATH, organisations_step, methods=["POST"]),
        Route(CONSENT_PATH, consent_step, methods=["POST"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOCATION_PATH, revocation, methods=["POST"]),
    ]
