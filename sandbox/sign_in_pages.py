"""The sign-in pages every provider shares: sign in → authenticator → pick companies → consent.

A provider's authorize route validates its own rules (PKCE, scopes) after `parse_authorize`
and hands over to `show_sign_in`; the four POST steps are the same for every provider, only
the selection differs (checkboxes for Xero, one radio button for QuickBooks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.oauth import (
    AccessRefused,
    OAuthProvider,
    SignInError,
    SignInTransaction,
    with_query,
)
from clientlink.sandbox.seed import format_abn
from clientlink.sandbox.state import SandboxState

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def sandbox_state(request: Request) -> SandboxState:
    """The world the app serving `request` emulates."""
    return request.app.state.sandbox


@dataclass
class AuthorizeRequest:
    """An authorize request whose client and redirect URI are known good.

    From here on problems are reported by redirecting back to the app (RFC 6749 §4.1.2.1).
    """

    app: SandboxApp
    redirect_uri: str
    state: str | None
    scope: str
    params: QueryParams

    def fail(self, error: str, description: str) -> Response:
        """Redirect to the app with an RFC 6749 error (and the app's state)."""
        extra = {"state": self.state} if self.state is not None else {}
        location = with_query(
            self.redirect_uri, {"error": error, "error_description": description} | extra
        )
        return RedirectResponse(location, status_code=302)

    def pkce_challenge(self, *, required: bool) -> str | Response | None:
        """The S256 code_challenge (None when absent and not `required`), or a refusal.

        RFC 7636 §4.3: a challenge without a method is `plain`, which is refused.
        """
        challenge = self.params.get("code_challenge")
        method = self.params.get("code_challenge_method")
        if challenge is None and method is None and not required:
            return None
        if not challenge or method != "S256":
            return self.fail("invalid_request", "PKCE S256 is required")
        if len(challenge) != 43:
            return self.fail("invalid_request", "code_challenge must be a 43-character S256 value")
        return challenge


class SignInPages:
    """One provider's sign-in pages, under `authorize_path`."""

    def __init__(
        self,
        authorize_path: str,
        provider_of: Callable[[SandboxState], OAuthProvider],
        select_slug: str = "organisations",
    ) -> None:
        self.authorize_path = authorize_path
        self.sign_in_path = authorize_path + "/sign-in"
        self.authenticator_path = authorize_path + "/authenticator"
        self.select_path = f"{authorize_path}/{select_slug}"
        self.consent_path = authorize_path + "/consent"
        self._provider_of = provider_of

    def provider(self, request: Request) -> OAuthProvider:
        """The provider these pages sign in to."""
        return self._provider_of(sandbox_state(request))

    # -- rendering ---------------------------------------------------------------------

    def _page(
        self, request: Request, name: str, title: str, status_code: int = 200, **context: Any
    ) -> Response:
        context = {"title": title, "provider_name": self.provider(request).display_name, **context}
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        # Sign-in pages carry a transaction id; keep them out of shared caches.
        response.headers["Cache-Control"] = "no-store"
        return response

    def error_page(self, request: Request, message: str, status_code: int = 400) -> Response:
        """A page that says what is wrong and never redirects."""
        return self._page(request, "error.html", "Sign-in problem", status_code, error=message)

    def show_sign_in(
        self,
        request: Request,
        txn: SignInTransaction,
        error: str | None = None,
        email: str = "",
    ) -> Response:
        """The email and password page of `txn`."""
        return self._page(
            request,
            "sign_in.html",
            "Log in",
            txn=txn.id,
            action=self.sign_in_path,
            app_name=txn.app.name,
            email=email,
            error=error,
        )

    def _authenticator_page(
        self, request: Request, txn: SignInTransaction, error: str | None = None
    ) -> Response:
        assert txn.user is not None
        return self._page(
            request,
            "authenticator.html",
            "Two-step authentication",
            txn=txn.id,
            action=self.authenticator_path,
            user=txn.user,
            hint_code=self.provider(request).current_totp(txn.user),
            error=error,
        )

    def _select_rows(
        self, request: Request, txn: SignInTransaction, filter_text: str, ticked: set[str] | None
    ) -> list[dict[str, Any]]:
        """The organisations (or companies) to choose from, sorted by name; ``shown`` where
        they match every word of ``filter_text`` (name or ABN); ``checked`` where their value
        is in ``ticked`` (the posted ticks), else where the transaction chose them."""
        assert txn.user is not None
        provider = self.provider(request)
        words = filter_text.casefold().split()
        chosen = set(txn.tenant_ids)
        rows = []
        for org in sorted(
            provider.organisations_for(txn.user), key=lambda org: (org.name.casefold(), org.name)
        ):
            value = provider.company_id(org)
            abn_display = format_abn(org.abn)
            search = " ".join([org.name, org.abn or "", abn_display]).casefold()
            rows.append(
                {
                    "value": value,
                    "tenant_id": org.tenant_id,
                    "name": org.name,
                    "abn_display": abn_display,
                    "search": search,
                    "shown": all(word in search for word in words),
                    "checked": value in ticked if ticked is not None else org.tenant_id in chosen,
                }
            )
        return rows

    def _select_page(
        self,
        request: Request,
        txn: SignInTransaction,
        error: str | None = None,
        *,
        filter_text: str = "",
        ticked: set[str] | None = None,
        tick_shown: bool = False,
    ) -> Response:
        """The selection page: every row in it, those the filter does not match hidden (so
        their ticks stay); ``tick_shown`` also ticks every row the filter shows."""
        rows = self._select_rows(request, txn, filter_text, ticked)
        if tick_shown:
            for row in rows:
                row["checked"] = row["checked"] or row["shown"]
        one = self.provider(request).selects_one_company
        return self._page(
            request,
            "organisations.html",
            "Select a company" if one else "Select organisations",
            txn=txn.id,
            action=self.select_path,
            app_name=txn.app.name,
            orgs=rows,
            shown=sum(1 for row in rows if row["shown"]),
            filter=filter_text,
            select_one=one,
            error=error,
        )

    def _consent_page(self, request: Request, txn: SignInTransaction) -> Response:
        orgs = self.provider(request).consented(txn)
        return self._page(
            request,
            "consent.html",
            "Allow access",
            txn=txn.id,
            action=self.consent_path,
            app_name=txn.app.name,
            scopes=txn.scope.split(),
            orgs=orgs,
        )

    # -- the authorize request -----------------------------------------------------------

    def parse_authorize(self, request: Request) -> AuthorizeRequest | Response:
        """Count the call and check what every provider checks; a Response means refused.

        Unknown clients and unregistered redirect URIs get an error page (never a redirect,
        RFC 6749 §4.1.2.1); a bad response_type or a missing scope redirects with an error.
        """
        provider = self.provider(request)
        sandbox_state(request).calls[provider.stat_prefix + "authorize"] += 1
        params = request.query_params
        app = provider.apps.get(params.get("client_id", ""))
        if app is None:
            return self.error_page(request, "Unknown client_id: this app is not registered.")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not app.accepts_redirect_uri(redirect_uri):
            return self.error_page(
                request,
                "Invalid redirect_uri: it is not registered for this app "
                "(loopback apps must use http://127.0.0.1:PORT/..., not localhost).",
            )
        parsed = AuthorizeRequest(
            app=app,
            redirect_uri=redirect_uri,
            state=params.get("state"),
            scope=" ".join(params.get("scope", "").split()),
            params=params,
        )
        if params.get("response_type") != "code":
            return parsed.fail("unsupported_response_type", "response_type must be code")
        if not parsed.scope:
            return parsed.fail("invalid_request", "scope is required")
        return parsed

    def begin(
        self, request: Request, authorize: AuthorizeRequest, challenge: str | None
    ) -> Response:
        """Start the sign-in transaction and show its first page."""
        txn = self.provider(request).begin_sign_in(
            authorize.app, authorize.redirect_uri, authorize.scope, authorize.state, challenge
        )
        return self.show_sign_in(request, txn)

    # -- the steps ---------------------------------------------------------------------

    async def sign_in_step(self, request: Request) -> Response:
        """POST email and password."""
        form = await request.form()
        provider = self.provider(request)
        try:
            txn = provider.transaction(str(form.get("txn", "")), "sign_in")
        except SignInError as exc:
            return self.error_page(request, str(exc))
        email = str(form.get("email", ""))
        try:
            provider.sign_in(txn, email, str(form.get("password", "")))
        except SignInError as exc:
            return self.show_sign_in(request, txn, str(exc), email)
        return self._authenticator_page(request, txn)

    async def authenticator_step(self, request: Request) -> Response:
        """POST the 6-digit authenticator code."""
        form = await request.form()
        provider = self.provider(request)
        try:
            txn = provider.transaction(str(form.get("txn", "")), "authenticator")
        except SignInError as exc:
            return self.error_page(request, str(exc))
        try:
            provider.verify_authenticator(txn, str(form.get("code", "")))
        except AccessRefused as exc:
            return self.error_page(request, str(exc), 403)
        except SignInError as exc:
            return self._authenticator_page(request, txn, str(exc))
        # No selection step: BGL's firm, or the Class business the request named.
        if txn.step == "consent":
            return self._consent_page(request, txn)
        return self._select_page(request, txn)

    async def select_step(self, request: Request) -> Response:
        """POST the ticked organisations (or the one chosen company)."""
        form = await request.form()
        provider = self.provider(request)
        try:
            txn = provider.transaction(str(form.get("txn", "")), "organisations")
        except SignInError as exc:
            return self.error_page(request, str(exc))
        ticked = [str(v) for v in form.getlist("tenant")]
        action = str(form.get("action", ""))
        filter_text = str(form.get("filter", ""))[:200]
        if action in ("filter", "select-shown"):
            # The page without JavaScript: filter it, or tick every row the filter shows.
            return self._select_page(
                request,
                txn,
                filter_text=filter_text,
                ticked=set(ticked),
                tick_shown=action == "select-shown" and not provider.selects_one_company,
            )
        try:
            provider.select_organisations(txn, ticked)
        except SignInError as exc:
            return self._select_page(
                request, txn, str(exc), filter_text=filter_text, ticked=set(ticked)
            )
        return self._consent_page(request, txn)

    async def consent_step(self, request: Request) -> Response:
        """POST Allow access or Cancel; both end in a 302 to the app's redirect URI."""
        form = await request.form()
        provider = self.provider(request)
        try:
            txn = provider.transaction(str(form.get("txn", "")), "consent")
        except SignInError as exc:
            return self.error_page(request, str(exc))
        allow = form.get("decision") == "allow"
        return RedirectResponse(provider.finish_consent(txn, allow), status_code=302)

    def step_routes(self) -> list[Route]:
        """The four POST steps (the provider adds its own GET authorize route)."""
        return [
            Route(self.sign_in_path, self.sign_in_step, methods=["POST"]),
            Route(self.authenticator_path, self.authenticator_step, methods=["POST"]),
            Route(self.select_path, self.select_step, methods=["POST"]),
            Route(self.consent_path, self.consent_step, methods=["POST"]),
        ]
