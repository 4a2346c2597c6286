"""The OAuth2 adapter every provider shares: authorisation URLs with PKCE S256, the code
exchange, refresh and revocation on authlib's :class:`AsyncOAuth2Client` (over httpx), and
API calls inside the provider's rate limits. Every answer becomes a :class:`TokenSet`, tenants,
or one of the :mod:`.errors`."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clientlink.common.wording import plural
from clientlink.daemon.clock import Clock
from clientlink.daemon.limits import ProviderLimits, RateLimiter
from clientlink.daemon.providers.definitions import ProviderDefinition
from clientlink.daemon.providers.errors import (
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
)
from clientlink.daemon.providers.http import (
    library,
    oauth_client_class,
    oauth_error_class,
    raise_for_api_status,
    raise_for_throttle,
    token_default_headers,
    unreachable,
    wire_bytes,
)
from clientlink.daemon.providers.results import (
    OrganisationDetails,
    ProviderUser,
    TokenSet,
    jwt_claims,
)
from clientlink.daemon.store import TenantRow
from clientlink.daemon.usage import EgressMeter

if TYPE_CHECKING:
    import httpx

# The name the daemon's log lines have always carried for provider calls.
log = logging.getLogger("clientlink.daemon.providers")


class ProviderAdapter(ABC):
    """Talks OAuth2 and the one verifying API call to one configured provider."""

    limits: ProviderLimits = ProviderLimits()

    def __init__(
        self,
        name: str,
        definition: ProviderDefinition,
        client_id: str,
        client_secret: str | None,
        clock: Clock,
        timeout_seconds: float = 20.0,
    ) -> None:
        self.name = name
        self.definition = definition
        self.client_id = client_id
        self.client_secret = client_secret
        self._clock = clock
        self._timeout_seconds = timeout_seconds
        self._oauth_client: Any = None
        self.limiter = RateLimiter(self.limits, clock)
        # Bytes of API answers received, by month (the service swaps in its lasting meter).
        self.egress = EgressMeter()

    @property
    def _oauth(self) -> Any:
        """authlib's OAuth2 client, built (and authlib and httpx imported) on first use: a
        daemon that only waits never loads them."""
        if self._oauth_client is None:
            client = oauth_client_class()(
                client_id=self.client_id,
                client_secret=self.client_secret,
                token_endpoint_auth_method=(
                    self.definition.client_auth if self.client_secret else "none"
                ),
                code_challenge_method="S256",
                timeout=library().Timeout(self._timeout_seconds),
            )
            client.register_compliance_hook("access_token_response", raise_for_throttle)
            client.register_compliance_hook("refresh_token_response", raise_for_throttle)
            self._oauth_client = client
        return self._oauth_client

    async def close(self) -> None:
        if self._oauth_client is not None:
            await self._oauth_client.aclose()

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, business: str | None = None
    ) -> str:
        """The address the person opens to sign in and allow access (to `business`, for a
        provider whose authorisation covers one business)."""
        url, _ = self._oauth.create_authorization_url(
            self.definition.authorize_url,
            state=state,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            scope=" ".join(self.scopes_for(business)),
        )
        return url

    def scopes_for(self, business: str | None) -> tuple[str, ...]:
        """The scopes a sign-in asks for (the business is added by providers that scope one)."""
        return self.definition.scopes

    def grant_business(self, tokens: TokenSet, callback_params: dict[str, str]) -> str | None:
        """The provider business a new grant covers, where it covers one (else None)."""
        return None

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        """Trade an authorization code for tokens."""
        token = await self._token_call(
            self._oauth.fetch_token(
                self.definition.token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
                headers=self._token_headers(),
            )
        )
        return self._token_set(token)

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Use a refresh token; a response without a new refresh token keeps the old one."""
        token = await self._token_call(
            self._oauth.refresh_token(
                self.definition.token_url,
                refresh_token=refresh_token,
                headers=self._token_headers(),
            )
        )
        tokens = self._token_set(token)
        if not tokens.refresh_token:
            tokens.refresh_token = refresh_token
        return tokens

    async def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token at the provider (RFC 7009)."""
        if not self.definition.revoke_url:
            return
        await self._token_call(
            self._oauth.revoke_token(
                self.definition.revoke_url, token=refresh_token, token_type_hint="refresh_token"
            ),
            expect_token=False,
        )

    def revocation_note(self) -> str | None:
        """What to tell the person when revoking needs a step at the provider (else None)."""
        return None

    def refresh_refused_reason(
        self, exc: ProviderRefused, refresh_expires_at: datetime | None
    ) -> str:
        """Why the provider refused a refresh, for the clients' status reason. A provider
        whose refusals do not say enough tells revoked from expired here."""
        return str(exc)

    def expired_unused_reason(
        self, exc: ProviderRefused, refresh_expires_at: datetime | None
    ) -> str | None:
        """The reason for a refresh token that ran out unused — its stored lifetime has
        passed, or the provider's refusal says "expired" — else None."""
        said_expired = "expired" in (exc.description or "").lower()
        if not said_expired and (
            refresh_expires_at is None or self._clock.now() < refresh_expires_at
        ):
            return None
        days = self.definition.refresh_idle_days
        span = plural(days, "day") if days else "its lifetime"
        return (
            f"the {self.definition.display_name} authorisation expired after {span} "
            "without use: re-authorise"
        )

    @abstractmethod
    async def list_tenants(
        self, tokens: TokenSet, callback_params: dict[str, str]
    ) -> tuple[str | None, list[TenantRow]]:
        """The tenants this grant reaches, and the consent's auth event id if known."""

    @abstractmethod
    async def fetch_organisation(self, tokens: TokenSet, tenant_id: str) -> OrganisationDetails:
        """One API call that proves the grant works for ``tenant_id``."""

    async def connected_tenants(self, tokens: TokenSet, *, fresh: bool = True) -> set[str] | None:
        """Every tenant the grant still reaches, when one call can tell; else None.

        Without `fresh` an adapter may answer None (not checked now) to keep routine
        keep-alive traffic small.
        """
        return None

    def provider_user(self, tokens: TokenSet) -> ProviderUser | None:
        """The provider user the code exchange's id_token names, or None without one.

        The id_token came straight from the token endpoint over TLS, so its claims are read
        without checking the signature (OpenID Connect Core §3.1.3.7); one issued to
        another client is ignored.
        """
        id_token = tokens.extra.get("id_token")
        claims = jwt_claims(id_token) if isinstance(id_token, str) else None
        if not claims or not claims.get("sub"):
            return None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.client_id not in audiences:
            log.warning("%s sent an id_token for another client; ignored", self.name)
            return None

        def text(name: str) -> str | None:
            value = claims.get(name)
            return str(value) if value else None

        return ProviderUser(
            subject=str(claims["sub"]),
            email=text("email"),
            name=text("name") or text("preferred_username"),
            user_id=text("xero_userid"),
        )

    async def who_signed_in(self, tokens: TokenSet) -> ProviderUser | None:
        """The provider user of a fresh sign-in: the id_token's, completed from the
        provider's UserInfo endpoint when the id_token gives no email (and the provider
        has one). UserInfo failing is not the sign-in failing: what is known is kept."""
        user = self.provider_user(tokens)
        url = self.definition.userinfo_url
        if not url or (user is not None and user.email):
            return user
        try:
            response = await self._api_get(url, tokens)
            body = response.json()
        except (ProviderError, ValueError) as exc:
            log.warning("%s did not say who signed in: %s", self.name, exc)
            return user
        if not isinstance(body, dict) or not body.get("sub"):
            return user
        if user is not None and str(body["sub"]) != user.subject:
            log.warning("%s UserInfo named another user than the id_token; ignored", self.name)
            return user

        def text(*names: str) -> str | None:
            parts = [str(body[name]) for name in names if isinstance(body.get(name), str)]
            return " ".join(part for part in parts if part) or None

        return ProviderUser(
            subject=str(body["sub"]),
            email=text("email"),
            name=text("name") or text("givenName", "familyName"),
            user_id=user.user_id if user is not None else None,
        )

    # ------------------------------------------------------------------ helpers

    def _token_headers(self) -> dict[str, str]:
        """Headers for token-endpoint calls (a copy: authlib may add to them)."""
        return token_default_headers()

    def _token_set(self, token: dict[str, Any]) -> TokenSet:
        now = self._clock.now()
        expires_in = float(token.get("expires_in") or 1800)
        refresh_expires_at = None
        if token.get("x_refresh_token_expires_in"):
            refresh_expires_at = now + timedelta(seconds=float(token["x_refresh_token_expires_in"]))
        elif self.definition.refresh_idle_days and token.get("refresh_token"):
            refresh_expires_at = now + timedelta(days=self.definition.refresh_idle_days)
        hard_expires_at = None
        if token.get("x_refresh_token_hard_expires_in"):
            hard_expires_at = now + timedelta(
                seconds=float(token["x_refresh_token_hard_expires_in"])
            )
        return TokenSet(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            access_expires_at=now + timedelta(seconds=expires_in),
            refresh_expires_at=refresh_expires_at,
            hard_expires_at=hard_expires_at,
            scope=token.get("scope"),
            extra={"id_token": token["id_token"]} if token.get("id_token") else {},
        )

    async def _token_call(self, pending, expect_token: bool = True):  # type: ignore[no-untyped-def]
        display = self.definition.display_name
        httpx, oauth_error = library(), oauth_error_class()
        try:
            return await pending
        except oauth_error as exc:
            error = exc.error or "error"
            if error in ("invalid_client", "unauthorized_client"):
                message = (
                    f"{display} does not accept this app's client id or secret ({error}): fix "
                    f"the app credentials (`clientlink provider set-secret {self.name}`, and "
                    f"client_id under [providers.{self.name}] in config.toml); the clients' "
                    "authorisations are not affected"
                )
            elif error == "invalid_grant":
                message = (
                    f"{display} refused the authorisation (it was revoked, expired or "
                    "already used): re-authorise"
                )
            else:
                message = f"{display} refused the request: {error}"
                if exc.description:
                    message += f" ({exc.description})"
            raise ProviderRefused(message, error, exc.description) from exc
        except RateLimited:
            raise
        except httpx.HTTPStatusError as exc:
            raise ProviderUnavailable(
                f"{display} answered HTTP {exc.response.status_code}; will try again"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"{display} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(unreachable(display, exc)) from exc
        except ValueError as exc:
            if not expect_token:
                return None
            raise ProviderUnavailable(f"{display} sent an unreadable answer: {exc}") from exc

    def _raise_for_status(self, response: httpx.Response) -> None:
        """Turn an API answer's failure into one of the :mod:`.errors` (the provider's
        own error shapes are read by the adapter that knows them)."""
        raise_for_api_status(response, self.definition.display_name)

    async def _api_get(
        self,
        url: str,
        tokens: TokenSet,
        headers: dict[str, str] | None = None,
        *,
        tenant: str | None = None,
    ) -> httpx.Response:
        """One API call inside the provider's limits for ``tenant`` (None: app-level)."""
        display = self.definition.display_name
        request_headers = {"Authorization": f"Bearer {tokens.access_token}"}
        request_headers.update(headers or {})
        request_headers.setdefault("Accept", "application/json")
        httpx = library()
        async with self.limiter.slot(tenant):
            try:
                response = await self._oauth.request(
                    "GET", url, headers=request_headers, withhold_token=True
                )
            except httpx.TimeoutException as exc:
                raise ProviderUnavailable(f"{display} did not answer in time") from exc
            except httpx.TransportError as exc:
                raise ProviderUnavailable(unreachable(display, exc)) from exc
        self.limiter.observe(tenant, response.headers)
        self.egress.add(wire_bytes(response), self._clock.now())
        try:
            self._raise_for_status(response)
        except RateLimited as exc:
            scope = None if exc.problem and exc.problem.lower().startswith("app") else tenant
            self.limiter.block(scope, exc.retry_after if exc.retry_after is not None else 60)
            raise
        return response
