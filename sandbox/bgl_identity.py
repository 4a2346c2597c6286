"""HTTP side of the SF360-like OAuth server: the authorize pages and the token endpoint.

Paths mirror BGL's under the `/bgl` prefix: `/bgl/oauth/authorize` and `/bgl/oauth/token`
(api.bgl360.com.au in real life). The token endpoint takes its parameters in the query
string and the client's credentials as HTTP Basic, as BGL documents; a form body carrying
the parameters instead is refused with a sentence saying where they go. There is no
revocation endpoint: the account holder removes an integration in SF360's Integrations page.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.sandbox.bgl import KNOWN_SCOPES, BglProvider
from clientlink.sandbox.oauth import OAuthError
from clientlink.sandbox.oauth_http import (
    basic_credentials,
    issuer_url,
    oauth_error_response,
    token_endpoint,
)
from clientlink.sandbox.sign_in_pages import AuthorizeRequest, SignInPages, sandbox_state
from clientlink.sandbox.state import SandboxState

PREFIX = "/bgl"
AUTHORIZE_PATH = PREFIX + "/oauth/authorize"
TOKEN_PATH = PREFIX + "/oauth/token"


def _bgl(state: SandboxState) -> BglProvider:
    return state.bgl


pages = SignInPages(AUTHORIZE_PATH, _bgl)


async def authorize(request: Request) -> Response:
    """GET authorize: scopes must be BGL's; PKCE S256 is optional, `plain` refused."""
    parsed = pages.parse_authorize(request)
    if not isinstance(parsed, AuthorizeRequest):
        return parsed
    challenge = parsed.pkce_challenge(required=False)
    if isinstance(challenge, Response):
        return challenge
    unknown = [scope for scope in parsed.scope.split() if scope not in KNOWN_SCOPES]
    if unknown:
        return parsed.fail("invalid_scope", f"Unknown scope: {' '.join(unknown)}")
    return pages.begin(request, parsed, challenge)


async def token(request: Request) -> Response:
    """POST token: the grant's parameters in the query string, HTTP Basic client auth."""
    bgl = sandbox_state(request).bgl
    try:
        if basic_credentials(request.headers.get("authorization", "")) is None:
            raise OAuthError(
                "invalid_client",
                "Send the client credentials in the Authorization header (HTTP Basic)",
                401,
            )
        body = await request.form()
        if "grant_type" in body or "code" in body or "refresh_token" in body:
            raise OAuthError(
                "invalid_request",
                "Send grant_type, code, scope and redirect_uri in the query string, not the body",
            )
    except OAuthError as exc:
        return oauth_error_response(exc, bgl, basic_used="authorization" in request.headers)
    params = FormData(list(request.query_params.multi_items()))
    return await token_endpoint(request, bgl, issuer=issuer_url(request, PREFIX), params=params)


def identity_routes() -> list[Route]:
    """The SF360-like OAuth server's routes."""
    return [
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        *pages.step_routes(),
        Route(TOKEN_PATH, token, methods=["POST"]),
    ]
