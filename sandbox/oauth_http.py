"""HTTP pieces every provider's token and revocation endpoints share (RFC 6749 §2.3, §5.2)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.oauth import OAuthError, OAuthProvider
from clientlink.sandbox.oidc import signer
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


def authenticate_client(provider: OAuthProvider, request: Request, form: FormData) -> SandboxApp:
    """Authenticate the client by either RFC 6749 §2.3.1 method, or as a public client.

    Confidential clients send `client_id:client_secret` as HTTP Basic (client_secret_basic)
    or `client_id` and `client_secret` in the form body (client_secret_post); a public (PKCE)
    client names itself with `client_id` alone. Using both methods at once is refused.
    """
    body_client_id = str(form.get("client_id", ""))
    body_secret = form.get("client_secret")
    basic = basic_credentials(request.headers.get("authorization", ""))
    if basic is not None:
        if body_secret is not None:
            raise OAuthError(
                "invalid_request",
                "Use one client authentication method: HTTP Basic or client_secret in the body",
            )
        client_id, secret = basic
        app = provider.apps.get(client_id)
        if app is None:
            raise OAuthError("invalid_client", "Unknown client", 401)
        if app.client_secret is not None and not secrets.compare_digest(secret, app.client_secret):
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return app
    app = provider.apps.get(body_client_id)
    if app is None:
        raise OAuthError(
            "invalid_client", "Send HTTP Basic credentials or a registered client_id", 401
        )
    if body_secret is not None:
        if app.client_secret is None or not secrets.compare_digest(
            str(body_secret), app.client_secret
        ):
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return app
    if not app.is_public:
        raise OAuthError(
            "invalid_client",
            "This client must authenticate: HTTP Basic or client_secret in the body",
            401,
        )
    return app


def issuer_url(request: Request, path: str) -> str:
    """The identity server's issuer: this sandbox's address plus the provider's prefix."""
    return str(request.base_url).rstrip("/") + path


def required(form: FormData, *names: str) -> list[str]:
    """The named form fields, or invalid_request naming the missing ones."""
    missing = [name for name in names if not form.get(name)]
    if missing:
        raise OAuthError("invalid_request", f"Missing parameter: {', '.join(missing)}")
    return [str(form.get(name)) for name in names]


def _grant_tokens(
    provider: OAuthProvider, request: Request, form: FormData, *, issuer: str
) -> dict[str, object]:
    """Authenticate the client and run the form's grant; raise OAuthError when refused."""
    grant_type = str(form.get("grant_type", ""))
    if not grant_type:
        raise OAuthError("invalid_request", "Missing parameter: grant_type")
    app = authenticate_client(provider, request, form)
    if grant_type == "authorization_code":
        # The verifier is required exactly when the authorize request carried a challenge
        # (always, for public clients); exchange_code checks it against the code.
        code, redirect_uri = required(form, "code", "redirect_uri")
        verifier = str(form.get("code_verifier") or "") or None
        return provider.exchange_code(app, code, redirect_uri, verifier, issuer=issuer)
    if grant_type == "refresh_token":
        (refresh_token,) = required(form, "refresh_token")
        return provider.refresh(app, refresh_token, issuer=issuer)
    raise OAuthError("unsupported_grant_type", f"Unsupported grant_type: {grant_type}")


async def token_endpoint(
    request: Request,
    provider: OAuthProvider,
    *,
    issuer: str,
    omit_fields: frozenset[str] = frozenset(),
    params: FormData | None = None,
) -> Response:
    """A provider's token endpoint: authorization_code and refresh_token grants.

    Counted and fault-injected as target `token`; `omit_fields` are left out of the body;
    `issuer` goes into id_tokens. `params` replace the form body where a provider takes
    its parameters elsewhere (BGL: the query string).
    """
    state: SandboxState = request.app.state.sandbox
    form = params if params is not None else await request.form()
    grant_type = str(form.get("grant_type", ""))
    known = grant_type in ("authorization_code", "refresh_token")
    state.calls[f"{provider.stat_prefix}token.{grant_type if known else 'other'}"] += 1

    async def process() -> Response:
        try:
            body = _grant_tokens(provider, request, form, issuer=issuer)
        except OAuthError as exc:
            basic_used = "authorization" in request.headers
            return oauth_error_response(exc, provider, basic_used=basic_used)
        shown = {key: value for key, value in body.items() if key not in omit_fields}
        return JSONResponse(shown, headers=NO_STORE)

    return await state.with_faults("token", provider.name, process)


def case_insensitive(routes: list[Route]) -> list[Route]:
    """Make `routes` match their paths in any letter case (Xero's paths are)."""
    for route in routes:
        route.path_regex = re.compile(route.path_regex.pattern, re.IGNORECASE)
    return routes


def discovery_document(
    request: Request,
    issuer_path: str,
    *,
    authorize: str,
    token: str,
    revocation: str,
    jwks: str,
    scopes: list[str],
    userinfo: str | None = None,
) -> Response:
    """An OpenID Provider Configuration for this sandbox's address (Discovery 1.0 §3)."""
    base = str(request.base_url).rstrip("/")
    body: dict[str, object] = {
        "issuer": base + issuer_path,
        "authorization_endpoint": base + authorize,
        "token_endpoint": base + token,
        "revocation_endpoint": base + revocation,
        "jwks_uri": base + jwks,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }
    if userinfo is not None:
        body["userinfo_endpoint"] = base + userinfo
    return JSONResponse(body)


async def jwks(request: Request) -> Response:
    """GET the identity server's signing keys (RFC 7517 JWK Set)."""
    return JSONResponse(signer().jwks())


async def revocation_endpoint(request: Request, provider: OAuthProvider, stat: str) -> Response:
    """A provider's RFC 7009 revocation endpoint: the client authenticated as at its token
    endpoint, 200 even for an unknown token (what revoking means is the provider's own
    ``revoke_token``), counted under ``stat`` and subject to the provider's faults."""
    state: SandboxState = request.app.state.sandbox
    state.calls[stat] += 1

    async def process() -> Response:
        form = await request.form()
        try:
            app = authenticate_client(provider, request, form)
            (value,) = required(form, "token")
            provider.revoke_token(app, value)
        except OAuthError as exc:
            return oauth_error_response(
                exc, provider, basic_used="authorization" in request.headers
            )
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    return await state.with_faults("revocation", provider.name, process)
