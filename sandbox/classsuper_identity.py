"""HTTP side of the Class-like identity server: authorize pages, token and revocation.

Paths mirror Class's (app.class.com.au) under the `/class` prefix: `/class/connect/authorize`,
`/class/connect/token`, and the assumed IdentityServer endpoints `/class/connect/revocation`
and `/class/.well-known/openid-configuration` (see `classsuper.py` for what is assumed).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.sandbox.classsuper import (
    ACCESS_SPECIFIERS,
    STANDARD_SCOPES,
    ClassProvider,
    scope_problem,
)
from clientlink.sandbox.oauth_http import (
    discovery_document,
    issuer_url,
    jwks,
    revocation_endpoint,
    token_endpoint,
)
from clientlink.sandbox.sign_in_pages import AuthorizeRequest, SignInPages, sandbox_state
from clientlink.sandbox.state import SandboxState

PREFIX = "/class"
AUTHORIZE_PATH = PREFIX + "/connect/authorize"
TOKEN_PATH = PREFIX + "/connect/token"
REVOCATION_PATH = PREFIX + "/connect/revocation"
DISCOVERY_PATH = PREFIX + "/.well-known/openid-configuration"
JWKS_PATH = DISCOVERY_PATH + "/jwks"


def _class(state: SandboxState) -> ClassProvider:
    return state.classsuper


pages = SignInPages(AUTHORIZE_PATH, _class, select_slug="businesses")


async def authorize(request: Request) -> Response:
    """GET authorize: OpenID Connect scopes, an access specifier, at most one business."""
    parsed = pages.parse_authorize(request)
    if not isinstance(parsed, AuthorizeRequest):
        return parsed
    # Confidential apps need no PKCE; a challenge that is sent must be S256.
    challenge = parsed.pkce_challenge(required=parsed.app.is_public)
    if isinstance(challenge, Response):
        return challenge
    problem = scope_problem(parsed.scope)
    if problem is not None:
        return parsed.fail("invalid_scope", problem)
    return pages.begin(request, parsed, challenge)


async def token(request: Request) -> Response:
    """POST token: authorization_code and refresh_token grants (HTTP Basic client auth)."""
    return await token_endpoint(
        request, sandbox_state(request).classsuper, issuer=issuer_url(request, PREFIX)
    )


async def revocation(request: Request) -> Response:
    """POST revocation (RFC 7009): 200 even for unknown tokens; the grant ends."""
    return await revocation_endpoint(request, sandbox_state(request).classsuper, "class.revocation")


async def discovery(request: Request) -> Response:
    """GET the OpenID Provider Configuration, naming this sandbox's endpoints."""
    return discovery_document(
        request,
        PREFIX,
        authorize=AUTHORIZE_PATH,
        token=TOKEN_PATH,
        revocation=REVOCATION_PATH,
        jwks=JWKS_PATH,
        scopes=sorted(STANDARD_SCOPES | ACCESS_SPECIFIERS),
    )


def identity_routes() -> list[Route]:
    """The Class-like identity server's routes."""
    return [
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        *pages.step_routes(),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOCATION_PATH, revocation, methods=["POST"]),
        Route(DISCOVERY_PATH, discovery, methods=["GET"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
    ]
