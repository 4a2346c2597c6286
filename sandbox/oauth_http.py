"""HTTP pieces every provider's token and revocation endpoints share (RFC 6749 §2.3, §5.2)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.oauth import OAuthError, OAuthProvider
from clientlink.sandbox.state import SandboxState

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(
    exc: OAuthError, provider: OAuthProvider, *, basic_used: bool = False
) -> Response:
    """The JSON error body; a failed Basic auth names its scheme (RFC 6749 §5.2)."""
    headers = dict(NO_STORE)
    if exc.status == 401 and basic_used:
        headers["WWW-Authenticate"] = f'Basic realm="{provider.name}-sandbox"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, status_code=exc.status, headers=headers)


def basic_credentials(header: str) -> tuple[str, str] | None:
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


def authenticate_client(
    provider: OAuthProvider, request: Request, body_client_id: str
) -> SandboxApp:
    """Confidential clients use Basic auth; public ones name themselves in the body."""
    basic = basic_credentials(request.headers.get("authorization", ""))
    if basic is not None:
        client_id, secret = basic
        app = provider.apps.get(client_id)
        if app is None:
            raise OAuthError("invalid_client", "Unknown client", 401)
        if app.client_secret is not None and secret != app.client_secret:
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return app
    app = provider.apps.get(body_client_id)
    if app is None:
        raise OAuthError(
            "invalid_client", "Send HTTP Basic credentials or a registered client_id", 401
        )
    if not app.is_public:
        raise OAuthError("invalid_client", "This client must authenticate with HTTP Basic", 401)
    return app


def required(form: FormData, *names: str) -> list[str]:
    """The named form fields, or invalid_request naming the missing ones."""
    missing = [name for name in names if not form.get(name)]
    if missing:
        raise OAuthError("invalid_request", f"Missing parameter: {', '.join(missing)}")
    return [str(form.get(name)) for name in names]


def _grant_tokens(
    provider: OAuthProvider, request: Request, form: FormData, *, verifier_required: bool
) -> dict[str, object]:
    """Authenticate the client and run the form's grant; raise OAuthError when refused."""
    grant_type = str(form.get("grant_type", ""))
    if not grant_type:
        raise OAuthError("invalid_request", "Missing parameter: grant_type")
    app = authenticate_client(provider, request, str(form.get("client_id", "")))
    if grant_type == "authorization_code":
        # Xero's PKCE-only apps must send the verifier; where PKCE is optional it may be absent.
        names = ["code", "redirect_uri"] + (["code_verifier"] if verifier_required else [])
        code, redirect_uri, *_ = required(form, *names)
        verifier = str(form.get("code_verifier") or "") or None
        return provider.exchange_code(app, code, redirect_uri, verifier)
    if grant_type == "refresh_token":
        (refresh_token,) = required(form, "refresh_token")
        return provider.refresh(app, refresh_token)
    raise OAuthError("unsupported_grant_type", f"Unsupported grant_type: {grant_type}")


async def token_endpoint(
    request: Request,
    provider: OAuthProvider,
    *,
    verifier_required: bool,
    omit_fields: frozenset[str] = frozenset(),
) -> Response:
    """A provider's token endpoint: authorization_code and refresh_token grants.

    Counted and fault-injected as target `token`; `omit_fields` are left out of the body.
    """
    state: SandboxState = request.app.state.sandbox
    form = await request.form()
    grant_type = str(form.get("grant_type", ""))
    known = grant_type in ("authorization_code", "refresh_token")
    state.calls[f"{provider.stat_prefix}token.{grant_type if known else 'other'}"] += 1

    async def process() -> Response:
        try:
            body = _grant_tokens(provider, request, form, verifier_required=verifier_required)
        except OAuthError as exc:
            basic_used = "authorization" in request.headers
            return oauth_error_response(exc, provider, basic_used=basic_used)
        shown = {key: value for key, value in body.items() if key not in omit_fields}
        return JSONResponse(shown, headers=NO_STORE)

    return await state.with_faults("token", provider.name, process)
