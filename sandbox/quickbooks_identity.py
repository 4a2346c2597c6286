"""HTTP side of the Intuit-like OAuth server: authorize pages, token and revoke.

Paths mirror Intuit's under the `/quickbooks` prefix: `/quickbooks/connect/oauth2`
(appcenter.intuit.com), `/quickbooks/oauth2/v1/tokens/bearer` (oauth.platform.intuit.com) and
`/quickbooks/oauth2/v1/tokens/revoke` (developer.api.intuit.com's `/v2/...` in real life).
"""

from __future__ import annotations

import json

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.oauth import ApiAuthError, OAuthError
from clientlink.sandbox.oauth_http import (
    authenticate_client,
    discovery_document,
    issuer_url,
    jwks,
    oauth_error_response,
    token_endpoint,
)
from clientlink.sandbox.quickbooks import ACCOUNTING_SCOPE, KNOWN_SCOPES, QuickBooksProvider
from clientlink.sandbox.sign_in_pages import AuthorizeRequest, SignInPages, sandbox_state
from clientlink.sandbox.state import SandboxState

AUTHORIZE_PATH = "/quickbooks/connect/oauth2"
TOKEN_PATH = "/quickbooks/oauth2/v1/tokens/bearer"
REVOCATION_PATH = "/quickbooks/oauth2/v1/tokens/revoke"
ISSUER_PATH = "/quickbooks/op/v1"
JWKS_PATH = ISSUER_PATH + "/jwks"
USERINFO_PATH = "/quickbooks/v1/openid_connect/userinfo"
# intuit-oauth's AuthClient reads its endpoints from here (`environment=` this URL).
DISCOVERY_PATH = "/quickbooks/.well-known/openid_configuration/"
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"
HARD_EXPIRY_FIELD = "x_refresh_token_hard_expires_in"


def _quickbooks(state: SandboxState) -> QuickBooksProvider:
    return state.quickbooks


pages = SignInPages(AUTHORIZE_PATH, _quickbooks, select_slug="companies")


async def authorize(request: Request) -> Response:
    """GET authorize: PKCE S256 is optional (confidential apps), `plain` is refused."""
    parsed = pages.parse_authorize(request)
    if not isinstance(parsed, AuthorizeRequest):
        return parsed
    challenge = parsed.pkce_challenge(required=False)
    if isinstance(challenge, Response):
        return challenge
    scopes = parsed.scope.split()
    unknown = [scope for scope in scopes if scope not in KNOWN_SCOPES]
    if unknown:
        return parsed.fail("invalid_scope", f"Unknown scope: {' '.join(unknown)}")
    if ACCOUNTING_SCOPE not in scopes:
        return parsed.fail("invalid_scope", f"{ACCOUNTING_SCOPE} is needed to connect a company")
    return pages.begin(request, parsed, challenge)


async def token(request: Request) -> Response:
    """POST bearer: authorization_code and refresh_token grants, Basic client auth.

    `x_refresh_token_hard_expires_in` is sent only when the request asks for it.
    """
    asked = request.headers.get(HARD_EXPIRY_HEADER, "").strip().lower() == "true"
    return await token_endpoint(
        request,
        sandbox_state(request).quickbooks,
        issuer=issuer_url(request, ISSUER_PATH),
        omit_fields=frozenset() if asked else frozenset({HARD_EXPIRY_FIELD}),
    )


async def _token_to_revoke(request: Request) -> str:
    """The `token` of Intuit's JSON revoke body, or invalid_request saying what to send."""
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    value = body.get("token") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise OAuthError("invalid_request", 'Send a JSON body: {"token": "<refresh or access>"}')
    return value


async def revocation(request: Request) -> Response:
    """POST revoke `{"token": ...}` with Basic auth: the grant ends (the app is disconnected).

    Like RFC 7009, an unknown token still gets 200.
    """
    state = sandbox_state(request)
    qbo = state.quickbooks
    state.calls["quickbooks.revocation"] += 1

    async def process() -> Response:
        try:
            # Intuit's revoke takes a JSON body: the client authenticates with Basic only.
            app = authenticate_client(qbo, request, FormData())
            value = await _token_to_revoke(request)
        except OAuthError as exc:
            return oauth_error_response(exc, qbo, basic_used="authorization" in request.headers)
        qbo.revoke_token(app, value)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    return await state.with_faults("revocation", qbo.name, process)


async def discovery(request: Request) -> Response:
    """GET Intuit's OpenID discovery document, naming this sandbox's endpoints."""
    return discovery_document(
        request,
        ISSUER_PATH,
        authorize=AUTHORIZE_PATH,
        token=TOKEN_PATH,
        revocation=REVOCATION_PATH,
        jwks=JWKS_PATH,
        userinfo=USERINFO_PATH,
        scopes=sorted(KNOWN_SCOPES),
    )


async def user_info(request: Request) -> Response:
    """GET UserInfo with the bearer access token: who signed in (OpenID Connect §5.3)."""
    qbo = sandbox_state(request).quickbooks
    try:
        grant = qbo.authenticate_bearer(request.headers.get("authorization"))
    except ApiAuthError as exc:
        return JSONResponse(
            {"error": "invalid_token", "error_description": exc.detail},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if "openid" not in grant.scope.split():
        return JSONResponse(
            {"error": "insufficient_scope", "error_description": "openid was not granted"},
            status_code=403,
        )
    return JSONResponse(qbo.user_info(grant))


def identity_routes() -> list[Route]:
    """The Intuit-like OAuth server's routes."""
    return [
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        *pages.step_routes(),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOCATION_PATH, revocation, methods=["POST"]),
        Route(DISCOVERY_PATH, discovery, methods=["GET"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
        Route(USERINFO_PATH, user_info, methods=["GET"]),
    ]
