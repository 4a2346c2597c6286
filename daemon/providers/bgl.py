"""BGL Simple Fund 360: one authorisation covers every fund and entity of the firm.

What differs from the shared adapter: the token endpoint takes its parameters in the query
string (authlib would put them in the body) with the client credentials as HTTP Basic;
`/fund/list` gives the firm's entities (tenant = fundID, business = the firm code, type =
entityType, email = fundEmail, ABN a hint); `/sf/funds/{fundId}` verifies one entity.
BGL publishes no revocation endpoint: the account holder removes clientlink in SF360's
Integrations page. Why a refused refresh failed — the integration removed, or the
authorisation expired unused — is decided here, in :meth:`BglAdapter.refresh_refused_reason`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from clientlink.daemon.providers.adapter import ProviderAdapter
from clientlink.daemon.providers.errors import ProviderRefused, TenantForbidden
from clientlink.daemon.providers.http import library, oauth_error_class, raise_for_throttle
from clientlink.daemon.providers.results import OrganisationDetails, TokenSet, tenant_abn
from clientlink.daemon.store import TenantRow

INTEGRATIONS_HINT = "remove clientlink in SF360's Integrations page"


class BglAdapter(ProviderAdapter):
    """BGL Simple Fund 360: the firm's entities under one grant, token calls by query string."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The firm each new grant's fund list named, until the sign-in stores the grant.
        self._firms: dict[str, str] = {}

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        token = await self._token_call(
            self._query_token_request(
                grant_type="authorization_code",
                code=code,
                scope=" ".join(self.definition.scopes),
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
        )
        return self._token_set(token)

    async def refresh(self, refresh_token: str) -> TokenSet:
        token = await self._token_call(
            self._query_token_request(grant_type="refresh_token", refresh_token=refresh_token)
        )
        tokens = self._token_set(token)
        if not tokens.refresh_token:
            tokens.refresh_token = refresh_token
        return tokens

    async def _query_token_request(self, **params: str) -> dict[str, Any]:
        """POST the token endpoint with `params` in the query string and HTTP Basic.

        Answers become what authlib's own calls raise, so `_token_call` reads them alike.
        """
        url = f"{self.definition.token_url}?{urlencode(params)}"
        response = await self._oauth.request(
            "POST",
            url,
            auth=library().BasicAuth(self.client_id, self.client_secret or ""),
            headers={"Accept": "application/json"},
            withhold_token=True,
        )
        raise_for_throttle(response)
        if response.status_code >= 500:
            response.raise_for_status()
        body = response.json()  # a ValueError here is "an unreadable answer"
        if not isinstance(body, dict):
            raise ValueError("the token answer is not a JSON object")
        if response.status_code >= 400 or "error" in body:
            raise oauth_error_class()(
                error=str(body.get("error") or response.status_code),
                description=str(body.get("error_description") or "") or None,
            )
        if not body.get("access_token"):
            raise ValueError("the token answer has no access_token")
        return body

    async def revoke(self, refresh_token: str) -> None:
        """BGL has no revocation endpoint (unless config.toml names one): nothing to call."""
        if self.definition.revoke_url:
            await super().revoke(refresh_token)

    def revocation_note(self) -> str | None:
        if self.definition.revoke_url:
            return None
        return (
            f"{self.definition.display_name} has no revocation call: clientlink forgot this "
            f"sign-in; to end it at BGL too, {INTEGRATIONS_HINT}."
        )

    def refresh_refused_reason(
        self, exc: ProviderRefused, refresh_expires_at: datetime | None
    ) -> str:
        """Revoked (the integration was removed) or expired unused, from what BGL said and
        the refresh lifetime the daemon stored."""
        return self.expired_unused_reason(exc, refresh_expires_at) or (
            "the SF360 integration was removed (revoked in SF360's Integrations page): re-authorise"
        )

    def grant_business(self, tokens: TokenSet, callback_params: dict[str, str]) -> str | None:
        """The firm whose entities the grant covers (from its fund list)."""
        return self._firms.pop(tokens.access_token, None)

    async def list_tenants(
        self, tokens: TokenSet, callback_params: dict[str, str]
    ) -> tuple[str | None, list[TenantRow]]:
        response = await self._api_get(f"{self.definition.api_base}/fund/list", tokens)
        funds = response.json().get("funds")
        if not isinstance(funds, list):
            raise ProviderRefused(
                f"{self.definition.display_name} sent a fund list without funds", "invalid_response"
            )
        tenants = []
        for item in funds:
            if not isinstance(item, dict) or not item.get("fundID"):
                continue
            fund_id = str(item["fundID"])
            tenants.append(
                TenantRow(
                    tenant_id=fund_id,
                    tenant_name=str(item.get("fundName") or item.get("fundCode") or fund_id),
                    tenant_type=str(item["entityType"]) if item.get("entityType") else None,
                    business=str(item["firm"]) if item.get("firm") else None,
                    abn=tenant_abn(item.get("ABN")),
                )
            )
        firms = {tenant.business for tenant in tenants if tenant.business}
        if len(firms) == 1:
            self._firms[tokens.access_token] = firms.pop()
        return None, tenants

    async def fetch_organisation(self, tokens: TokenSet, tenant_id: str) -> OrganisationDetails:
        display = self.definition.display_name
        try:
            response = await self._api_get(
                f"{self.definition.api_base}/sf/funds/{tenant_id}", tokens, tenant=tenant_id
            )
        except ProviderRefused as exc:
            if exc.error == "404":
                raise TenantForbidden(
                    f"{display} no longer lists this entity for the firm (it was archived or "
                    "moved to another firm): re-authorise, or deactivate the client"
                ) from exc
            raise
        fund = response.json()
        abn = "".join(ch for ch in str(fund.get("abn") or "") if ch.isdigit())
        return OrganisationDetails(
            tenant_id=tenant_id,
            name=fund.get("name") or fund.get("fundCode") or tenant_id,
            legal_name=None,
            abn=abn or None,
            organisation_type=fund.get("entityType") or None,
            email=fund.get("email") or None,
            business=fund.get("firm") or None,
        )
