"""HTTP side of the Xero-like identity server: authorize pages, token and revocation.

Paths mirror Xero's under the `/xero` prefix: `/xero/identity/connect/authorize`,
`/xero/identity/connect/token`, `/xero/identity/connect/revocation`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.sandbox.oauth import OAuthError
from clientlink.sandbox.oauth_http import (
    authenticate_client,
    oauth_error_response,
    required,
    token_endpoint,
)
from clientlink.sandbox.sign_in_pages import AuthorizeRequest, SignInPages, sandbox_state
from clientlink.sandbox.state import SandboxState
from clientlink.sandbox.xero import XeroProvider

AUTHORIZE_PATH = "/xero/identity/connect/authorize"
TOKEN_PATH = "/xero/identity/connect/token"
REVOCATION_PATH = "/xero/identity/connect/revocation"


def _xero(state: SandboxState) -> XeroProvider:
    return state.xero


pages = SignInPages(AUTHORIZE_PATH, _xero)


async def authorize(request: Request) -> Response:
    """GET authorize: validate the request, then show the sign-in page."""
    parsed = pages.parse_authorize(request)
    if not isinstance(parsed, AuthorizeRequest):
        return parsed
    challenge = parsed.params.get("code_challenge", "")
    # RFC 7636 §4.3: an omitted method means plain, which the sandbox, like a careful
    # provider for native apps, refuses.
    if not challenge or parsed.params.get("code_challenge_method") != "S256":
        return parsed.fail("invalid_request", "PKCE S256 is required")
    if len(challenge) != 43:
        return parsed.fail("invalid_request", "code_challenge must be a 43-character S256 value")
    return pages.begin(request, parsed, challenge)


async def token(request: Request) -> Response:
    """POST token: authorization_code (PKCE verifier required) and refresh_token grants."""
    return await token_endpoint(request, sandbox_state(request).xero, verifier_required=True)


async def revocation(request: Request) -> Response:
    """POST revocation (RFC 7009): 200 even for unknown tokens."""
    state = sandbox_state(request)
    xero = state.xero
    state.calls["revocation"] += 1

    async def process() -> Response:
        form = await request.form()
        try:
            app = authenticate_client(xero, request, str(form.get("client_id", "")))
            (value,) = required(form, "token")
        except OAuthError as exc:
            return oauth_error_response(exc, xero, basic_used="authorization" in request.headers)
        xero.revoke_token(app, value)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    return await state.with_faults("revocation", xero.name, process)


def identity_routes() -> list[Route]:
    """The identity server's routes."""
    return [
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        *pages.step_routes(),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOCATION_PATH, revocation, methods=["POST"]),
    ]
