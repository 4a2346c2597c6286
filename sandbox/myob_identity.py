"""HTTP side of the secure.myob.com-like OAuth server: authorize pages and the token endpoint.

Paths mirror MYOB's under the `/myob` prefix: `/myob/oauth2/account/authorize` (the sign-in
pages) and `POST /myob/oauth2/v1/authorize` (the token endpoint: the same path name). The
token endpoint takes `client_id` and `client_secret` in the form body, as MYOB documents (HTTP
Basic is accepted too, as any RFC 6749 server would). MYOB documents no revocation endpoint;
a grant is revoked through the admin API (as a person removing the app in MYOB would).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.sandbox.myob import COMPANY_FILE_SCOPE, LEGACY_SCOPES, SME_SCOPES, MyobProvider
from clientlink.sandbox.oauth_http import issuer_url, token_endpoint
from clientlink.sandbox.sign_in_pages import AuthorizeRequest, SignInPages, sandbox_state
from clientlink.sandbox.state import SandboxState

AUTHORIZE_PATH = "/myob/oauth2/account/authorize"
TOKEN_PATH = "/myob/oauth2/v1/authorize"
ISSUER_PATH = "/myob/oauth2"


def _myob(state: SandboxState) -> MyobProvider:
    return state.myob


pages = SignInPages(AUTHORIZE_PATH, _myob, select_slug="company-files")


async def authorize(request: Request) -> Response:
    """GET authorize: the granular sme-* scopes (this key is new), PKCE optional."""
    parsed = pages.parse_authorize(request)
    if not isinstance(parsed, AuthorizeRequest):
        return parsed
    challenge = parsed.pkce_challenge(required=False)
    if isinstance(challenge, Response):
        return challenge
    scopes = parsed.scope.split()
    legacy = [scope for scope in scopes if scope in LEGACY_SCOPES]
    if legacy:
        return parsed.fail(
            "invalid_scope",
            f"{' '.join(legacy)}: API keys created after 12 March 2025 use the sme-* scopes",
        )
    unknown = [scope for scope in scopes if scope not in SME_SCOPES]
    if unknown:
        return parsed.fail("invalid_scope", f"Unknown scope: {' '.join(unknown)}")
    if COMPANY_FILE_SCOPE not in scopes:
        return parsed.fail("invalid_scope", f"{COMPANY_FILE_SCOPE} is needed to open a file")
    myob = sandbox_state(request).myob
    txn = myob.begin_sign_in(parsed.app, parsed.redirect_uri, parsed.scope, parsed.state, challenge)
    if parsed.params.get("prompt") == "consent":
        myob.consent_prompted.add(txn.id)
    return pages.show_sign_in(request, txn)


async def token(request: Request) -> Response:
    """POST the token endpoint: authorization_code and refresh_token grants."""
    return await token_endpoint(
        request, sandbox_state(request).myob, issuer=issuer_url(request, ISSUER_PATH)
    )


def identity_routes() -> list[Route]:
    """The MYOB-like OAuth server's routes (with or without a trailing slash, as MYOB's
    examples and SDKs write them both ways)."""
    return [
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        Route(AUTHORIZE_PATH + "/", authorize, methods=["GET"]),
        *pages.step_routes(),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(TOKEN_PATH + "/", token, methods=["POST"]),
    ]
