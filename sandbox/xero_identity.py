"""HTTP side of the Xero-like identity server: authorize pages, token and revocation.

Paths mirror Xero's under the `/xero` prefix: `/xero/identity/connect/authorize`,
`/xero/identity/connect/token`, `/xero/identity/connect/revocation`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.sandbox.oauth_http import (
    case_insensitive,
    discovery_document,
    issuer_url,
    jwks,
    revocation_endpoint,
    token_endpoint,
)
from clientlink.sandbox.sign_in_pages import AuthorizeRequest, SignInPages, sandbox_state
from clientlink.sandbox.state import SandboxState
from clientlink.sandbox.xero import XeroProvider

IDENTITY_PREFIX = "/xero/identity"
AUTHORIZE_PATH = IDENTITY_PREFIX + "/connect/authorize"
TOKEN_PATH = IDENTITY_PREFIX + "/connect/token"
REVOCATION_PATH = IDENTITY_PREFIX + "/connect/revocation"
DISCOVERY_PATH = IDENTITY_PREFIX + "/.well-known/openid-configuration"
JWKS_PATH = DISCOVERY_PATH + "/jwks"


def _xero(state: SandboxState) -> XeroProvider:
    return state.xero


pages = SignInPages(AUTHORIZE_PATH, _xero)


async def authorize(request: Request) -> Response:
    """GET authorize: validate the request, then show the sign-in page."""
    parsed = pages.parse_authorize(request)
    if not isinstance(parsed, AuthorizeRequest):
        return parsed
    # Public ("Auth Code with PKCE") apps must use PKCE; a confidential app's standard code
    # flow needs none, but a challenge it sends must be S256 (provider-facts §1, §8).
    challenge = parsed.pkce_challenge(required=parsed.app.is_public)
    if isinstance(challenge, Response):
        return challenge
    return pages.begin(request, parsed, challenge)


async def token(request: Request) -> Response:
    """POST token: authorization_code and refresh_token grants, either client auth method."""
    return await token_endpoint(
        request, sandbox_state(request).xero, issuer=issuer_url(request, IDENTITY_PREFIX)
    )


async def revocation(request: Request) -> Response:
    """POST revocation (RFC 7009): 200 even for unknown tokens."""
    return await revocation_endpoint(request, sandbox_state(request).xero, "revocation")


async def discovery(request: Request) -> Response:
    """GET the OpenID Provider Configuration (OpenID Connect Discovery 1.0)."""
    return discovery_document(
        request,
        IDENTITY_PREFIX,
        authorize=AUTHORIZE_PATH,
        token=TOKEN_PATH,
        revocation=REVOCATION_PATH,
        jwks=JWKS_PATH,
        scopes=["openid", "profile", "email", "offline_access"],
    )


def identity_routes() -> list[Route]:
    """The identity server's routes (paths match in any case, as Xero's do)."""
    return case_insensitive(
        [
            Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
            *pages.step_routes(),
            Route(TOKEN_PATH, token, methods=["POST"]),
            Route(REVOCATION_PATH, revocation, methods=["POST"]),
            Route(DISCOVERY_PATH, discovery, methods=["GET"]),
            Route(JWKS_PATH, jwks, methods=["GET"]),
        ]
    )
