"""Accounting-software providers: their published endpoints and one adapter per kind.

A provider is named in config.toml (``[providers.NAME]``) with a ``kind`` — ``xero`` or
``quickbooks`` — whose built-in definition carries the real endpoints; any endpoint can
be overridden, which is how the sandbox is configured. Nothing here knows the sandbox.

Adapters sit on authlib's :class:`AsyncOAuth2Client` (over httpx) with PKCE S256 and
turn every provider answer into a :class:`TokenSet`, tenants, or one of the
:class:`ProviderError` classes below, which say whether a failure is final (the person
must re-authorise) or transient (retry later).
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.client import DEFAULT_HEADERS as OAUTH_DEFAULT_HEADERS

with warnings.catch_warnings():
    # authlib prefers the httpx2 fork and warns when it falls back to httpx, which is what
    # clientlink builds on.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from clientlink.common.config import ProviderConfig
from clientlink.daemon.clock import Clock
from clientlink.daemon.limits import QUICKBOOKS_LIMITS, XERO_LIMITS, ProviderLimits, RateLimiter
from clientlink.daemon.store import TenantRow
from clientlink.daemon.usage import EgressMeter

log = logging.getLogger(__name__)


def _http_library(client_class: type) -> ModuleType:
    """The HTTP library (httpx, or its httpx2 fork) that ``client_class`` is built on.

    Read from the class's public bases, so timeouts, auth and the errors caught below are
    always those of the library authlib really uses."""
    for base in client_class.__mro__:
        package = base.__module__.partition(".")[0]
        if base.__name__ == "AsyncClient" and package in ("httpx", "httpx2"):
            return sys.modules[package]
    raise ImportError(f"{client_class.__qualname__} is not built on an httpx AsyncClient")


httpx = _http_library(AsyncOAuth2Client)

# How often a routine (not person-asked) check lists a Xero consent's connections.
CONNECTIONS_CHECK_INTERVAL = timedelta(hours=6)


@dataclass(frozen=True)
class ProviderDefinition:
    """What a provider publishes: endpoints, scopes, and how its grants age."""

    kind: str
    display_name: str
    authorize_url: str
    token_url: str
    revoke_url: str | None
    connections_url: str | None
    api_base: str
    scopes: tuple[str, ...]
    refresh_idle_days: int | None = None
    requires_secret: bool = False
    refresh_grace_seconds: int | None = None
    """How long the previous refresh token keeps working after a rotation whose answer
    was lost (None: unknown, assume none)."""
    # How a confidential app authenticates at the token (and revocation) endpoint: the
    # method the provider documents. Xero and Intuit both document HTTP Basic
    # (provider-facts §1, §2); Xero also takes the form body, which its SDK sends.
    client_auth: str = "client_secret_basic"


XERO = ProviderDefinition(
    kind="xero",
    display_name="Xero",
    authorize_url="https://login.xero.com/identity/connect/authorize",
    token_url="https://identity.xero.com/connect/token",
    revoke_url="https://identity.xero.com/connect/revocation",
    connections_url="https://api.xero.com/connections",
    api_base="https://api.xero.com/api.xro/2.0",
    scopes=("offline_access", "openid", "profile", "email", "accounting.settings.read"),
    refresh_idle_days=60,
    refresh_grace_seconds=30 * 60,
)

QUICKBOOKS = ProviderDefinition(
    kind="quickbooks",
    display_name="QuickBooks Online",
    authorize_url="https://appcenter.intuit.com/connect/oauth2",
    token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    revoke_url="https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    connections_url=None,
    api_base="https://quickbooks.api.intuit.com/v3/company",
    # openid: the id_token names the Intuit user who connected the company.
    scopes=("com.intuit.quickbooks.accounting", "openid", "email"),
    refresh_idle_days=100,
    requires_secret=True,
    refresh_grace_seconds=24 * 3600,
)

BUILTIN_DEFINITIONS = {definition.kind: definition for definition in (XERO, QUICKBOOKS)}


def build_definition(config: ProviderConfig) -> ProviderDefinition:
    """The built-in definition for ``config.kind`` with the config's overrides applied."""
    base = BUILTIN_DEFINITIONS[config.kind]
    overrides: dict[str, Any] = {
        name: getattr(config, name)
        for name in ("authorize_url", "token_url", "revoke_url", "connections_url", "api_base")
        if getattr(config, name)
    }
    if config.display_name:
        overrides["display_name"] = config.display_name
    if config.scopes:
        overrides["scopes"] = tuple(config.scopes)
    return replace(base, **overrides)


# --------------------------------------------------------------------------- results


@dataclass
class TokenSet:
    """One grant's tokens and when they end. Only the vault ever sees it serialised."""

    access_token: str
    refresh_token: str | None
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    hard_expires_at: datetime | None = None
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def secret_json(self) -> bytes:
        """The secret part, for the vault to encrypt."""
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "scope": self.scope,
            }
        ).encode()

    @classmethod
    def from_secret_json(
        cls,
        blob: bytes,
        *,
        access_expires_at: datetime,
        refresh_expires_at: datetime | None,
        hard_expires_at: datetime | None,
    ) -> TokenSet:
        data = json.loads(blob)
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            access_expires_at=access_expires_at,
            refresh_expires_at=refresh_expires_at,
            hard_expires_at=hard_expires_at,
            scope=data.get("scope"),
        )


@dataclass(frozen=True)
class OrganisationDetails:
    """What one verifying API call tells us about a tenant.

    `organisation_type` is kept as the provider sent it (Xero's OrganisationType, such as
    SELF_MANAGED_SUPERANNUATION_FUND or SOLE_TRADER); no value is refused.
    """

    tenant_id: str
    name: str
    legal_name: str | None
    abn: str | None
    organisation_type: str | None = None


@dataclass(frozen=True)
class ProviderUser:
    """Who signed in at the provider, from the OpenID Connect id_token of the code exchange.

    `subject` is the id_token's `sub`; `user_id` the provider's own user id where it sends
    one (Xero's `xero_userid`).
    """

    subject: str
    email: str | None = None
    name: str | None = None
    user_id: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "sub": self.subject,
            "email": self.email,
            "name": self.name,
            "user_id": self.user_id,
        }


class ProviderError(Exception):
    """A provider call failed; ``str()`` is a sentence a person can act on."""


class ProviderRefused(ProviderError):
    """The provider refused the grant or the request: final until someone re-authorises."""

    def __init__(self, message: str, error: str = "", description: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class ProviderUnavailable(ProviderError):
    """A transient failure (network, timeout, 5xx): try again later."""


class RateLimited(ProviderUnavailable):
    """The provider said 429: wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None, problem: str | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.problem = problem


class AccessTokenRejected(ProviderError):
    """The API refused the access token (401): refresh, then try once more."""


class TenantForbidden(ProviderError):
    """The API refused this tenant (403): the business was disconnected from the app."""


# --------------------------------------------------------------------------- adapters


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
        self._oauth = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=definition.client_auth if client_secret else "none",
            code_challenge_method="S256",
            timeout=httpx.Timeout(timeout_seconds),
        )
        self.limiter = RateLimiter(self.limits, clock)
        # Bytes of API answers received, by month (the service swaps in its lasting meter).
        self.egress = EgressMeter()
        self._oauth.register_compliance_hook("access_token_response", _raise_for_throttle)
        self._oauth.register_compliance_hook("refresh_token_response", _raise_for_throttle)

    async def close(self) -> None:
        await self._oauth.aclose()

    def authorization_url(self, *, redirect_uri: str, state: str, code_verifier: str) -> str:
        """The address the person opens to sign in and allow access."""
        url, _ = self._oauth.create_authorization_url(
            self.definition.authorize_url,
            state=state,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            scope=" ".join(self.definition.scopes),
        )
        return url

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
        claims = _jwt_claims(id_token) if isinstance(id_token, str) else None
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

    # ------------------------------------------------------------------ helpers

    def _token_headers(self) -> dict[str, str]:
        """Headers for token-endpoint calls (a copy: authlib may add to them)."""
        return dict(OAUTH_DEFAULT_HEADERS)

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
        try:
            return await pending
        except OAuthError as exc:
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
            raise ProviderUnavailable(f"cannot reach {display}: {exc}") from exc
        except ValueError as exc:
            if not expect_token:
                return None
            raise ProviderUnavailable(f"{display} sent an unreadable answer: {exc}") from exc

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
        async with self.limiter.slot(tenant):
            try:
                response = await self._oauth.request(
                    "GET", url, headers=request_headers, withhold_token=True
                )
            except httpx.TimeoutException as exc:
                raise ProviderUnavailable(f"{display} did not answer in time") from exc
            except httpx.TransportError as exc:
                raise ProviderUnavailable(f"cannot reach {display}: {exc}") from exc
        self.limiter.observe(tenant, response.headers)
        self.egress.add(_wire_bytes(response), self._clock.now())
        try:
            _raise_for_api_status(response, display)
        except RateLimited as exc:
            scope = None if exc.problem and exc.problem.lower().startswith("app") else tenant
            self.limiter.block(scope, exc.retry_after if exc.retry_after is not None else 60)
            raise
        return response


class XeroAdapter(ProviderAdapter):
    """Xero: one token set reaches every organisation the user connected."""

    limits = XERO_LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # When each consent's connections were last listed (routine checks are spaced).
        self._connections_checked: dict[str, datetime] = {}

    async def list_tenants(
        self, tokens: TokenSet, callback_params: dict[str, str]
    ) -> tuple[str | None, list[TenantRow]]:
        assert self.definition.connections_url
        auth_event_id = _jwt_claim(tokens.access_token, "authentication_event_id")
        url = self.definition.connections_url
        if auth_event_id:
            url += f"?authEventId={auth_event_id}"
        response = await self._api_get(url, tokens)
        tenants = [
            TenantRow(
                tenant_id=item["tenantId"],
                tenant_name=item.get("tenantName") or item["tenantId"],
                tenant_type=item.get("tenantType"),
                connection_id=item.get("id"),
                auth_event_id=item.get("authEventId"),
            )
            for item in response.json()
        ]
        return auth_event_id, tenants

    async def connected_tenants(self, tokens: TokenSet, *, fresh: bool = True) -> set[str] | None:
        # One call lists every connection of the token's user and app: a business that
        # disconnected clientlink in Xero is missing from it. Routine checks of one consent
        # (its authentication event) run at most every CONNECTIONS_CHECK_INTERVAL: Xero
        # prices API egress, and a watcher refreshing every 25 minutes would otherwise
        # list every connection each time.
        assert self.definition.connections_url
        consent = _jwt_claim(tokens.access_token, "authentication_event_id")
        now = self._clock.now()
        last = self._connections_checked.get(consent) if consent else None
        if not fresh and last is not None and now - last < CONNECTIONS_CHECK_INTERVAL:
            return None
        response = await self._api_get(self.definition.connections_url, tokens)
        if consent:
            self._connections_checked[consent] = now
        return {item["tenantId"] for item in response.json()}

    async def fetch_organisation(self, tokens: TokenSet, tenant_id: str) -> OrganisationDetails:
        response = await self._api_get(
            f"{self.definition.api_base}/Organisation",
            tokens,
            {"xero-tenant-id": tenant_id},
            tenant=tenant_id,
        )
        organisation = response.json()["Organisations"][0]
        # Xero documents no ABN field; for AU organisations RegistrationNumber holds it.
        abn = "".join(ch for ch in organisation.get("RegistrationNumber") or "" if ch.isdigit())
        return OrganisationDetails(
            tenant_id=tenant_id,
            name=organisation.get("Name") or tenant_id,
            legal_name=organisation.get("LegalName"),
            abn=abn or None,
            organisation_type=organisation.get("OrganisationType") or None,
        )


class QuickBooksAdapter(ProviderAdapter):
    """QuickBooks Online: one grant per company, named by ``realmId`` on the callback."""

    limits = QUICKBOOKS_LIMITS

    def _token_headers(self) -> dict[str, str]:
        # Intuit tells a grant's hard end (the 5-year cap) only when asked.
        return {**super()._token_headers(), "x-include-refresh-token-hard-expires-in": "true"}

    async def revoke(self, refresh_token: str) -> None:
        """Intuit's revoke takes JSON `{"token": ...}` with HTTP Basic (as its SDK sends)."""
        if not self.definition.revoke_url:
            return
        display = self.definition.display_name
        try:
            response = await self._oauth.request(
                "POST",
                self.definition.revoke_url,
                json={"token": refresh_token},
                auth=httpx.BasicAuth(self.client_id, self.client_secret or ""),
                headers={"Accept": "application/json"},
                withhold_token=True,
            )
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"{display} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"cannot reach {display}: {exc}") from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{display} answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise ProviderRefused(
                f"{display} refused to revoke the authorisation (HTTP {response.status_code}: "
                f"{_error_detail(response)})",
                str(response.status_code),
            )

    async def list_tenants(
        self, tokens: TokenSet, callback_params: dict[str, str]
    ) -> tuple[str | None, list[TenantRow]]:
        realm_id = callback_params.get("realmId")
        if not realm_id:
            raise ProviderRefused(
                "QuickBooks did not say which company was connected (no realmId on the "
                "redirect): sign in again and pick a company",
                "invalid_request",
            )
        details = await self.fetch_organisation(tokens, realm_id)
        return None, [TenantRow(tenant_id=realm_id, tenant_name=details.name, tenant_type="REALM")]

    async def fetch_organisation(self, tokens: TokenSet, tenant_id: str) -> OrganisationDetails:
        response = await self._api_get(
            f"{self.definition.api_base}/{tenant_id}/companyinfo/{tenant_id}",
            tokens,
            tenant=tenant_id,
        )
        info = response.json().get("CompanyInfo", {})
        # QuickBooks documents no ABN field; AU companies carry it as a NameValue pair.
        extra = {item.get("Name"): item.get("Value") for item in info.get("NameValue") or []}
        abn = "".join(ch for ch in str(extra.get("ABN") or "") if ch.isdigit())
        return OrganisationDetails(
            tenant_id=tenant_id,
            name=info.get("CompanyName") or tenant_id,
            legal_name=info.get("LegalName"),
            abn=abn or None,
        )


ADAPTERS: dict[str, type[ProviderAdapter]] = {"xero": XeroAdapter, "quickbooks": QuickBooksAdapter}


def _wire_bytes(response: httpx.Response) -> int:
    """What an answer cost in egress: its body as sent, or as read when not announced."""
    announced = response.headers.get("content-length")
    return int(announced) if announced and announced.isdigit() else len(response.content)


def _raise_for_throttle(response: httpx.Response) -> httpx.Response:
    if response.status_code == 429:
        raise _rate_limited(response, "the token endpoint")
    return response


def _rate_limited(response: httpx.Response, display: str) -> RateLimited:
    retry_after = response.headers.get("Retry-After")
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        seconds = None
    problem = response.headers.get("X-Rate-Limit-Problem")
    return RateLimited(
        f"{display} is rate-limiting clientlink ({problem or 'too many requests'})",
        seconds,
        problem,
    )


def _raise_for_api_status(response: httpx.Response, display: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    if status == 429:
        raise _rate_limited(response, display)
    if status == 401:
        raise AccessTokenRejected(f"{display} refused the access token: {detail}")
    if status == 403:
        raise TenantForbidden(
            f"{display} no longer gives access to this business ({detail}); it was "
            "disconnected from clientlink: re-authorise"
        )
    if status >= 500:
        raise ProviderUnavailable(f"{display} answered HTTP {status}; will try again")
    raise ProviderRefused(f"{display} refused the request (HTTP {status}): {detail}", str(status))


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no detail"
    if isinstance(body, dict):
        if "Detail" in body:
            return str(body["Detail"])
        fault = body.get("Fault", {}).get("Error") if isinstance(body.get("Fault"), dict) else None
        if fault:
            return str(fault[0].get("Detail") or fault[0].get("Message"))
        # Intuit's gateway (401, 403) writes the same fault in lower case.
        gateway = body.get("fault")
        errors = gateway.get("error") if isinstance(gateway, dict) else None
        if errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("message"))
    return response.reason_phrase or "no detail"


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """A JWT's claims without verifying it (tokens the provider handed us to read)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _jwt_claim(token: str, claim: str) -> str | None:
    """Read one claim of a JWT access token without verifying it (it is ours to read)."""
    value = (_jwt_claims(token) or {}).get(claim)
    return str(value) if value else None
