"""Class Super: one grant per Class business (scope ``target:b/<code>``); the business's
fund list gives the grant's tenants, one fund's detail verifies it.

Class's API is ``{api_base}/{scope}/{area}/{action}`` with the action version in the Accept
header (provider-facts §7). The business a grant covers is read from the scope the token
endpoint granted, which Class repeats on every refresh. Assumed where Class publishes nothing
(the sandbox's module docstring lists the same): the fund list is a JSON array of
``{id, code, name, abn, entityType, email, businessCode}``, one fund's detail is
``b/{business}/fund-data/fund-detail/{id}``, and no rate limits are published.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from clientlink.daemon.providers.adapter import ProviderAdapter
from clientlink.daemon.providers.errors import ProviderRefused, ProviderUnavailable
from clientlink.daemon.providers.results import OrganisationDetails, TokenSet, tenant_abn
from clientlink.daemon.store import TenantRow

BUSINESS_SCOPE_PREFIX = "target:b/"
ACCEPT = {"Accept": "application/vnd.superip.action.v1+json"}
BUSINESS_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def business_of_scope(scope: str | None) -> str | None:
    """The business code a granted scope names (``target:b/<code>``), or None."""
    for item in (scope or "").split():
        if item.startswith(BUSINESS_SCOPE_PREFIX) and BUSINESS_CODE.match(
            item[len(BUSINESS_SCOPE_PREFIX) :]
        ):
            return item[len(BUSINESS_SCOPE_PREFIX) :]
    return None


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


class ClassSuperAdapter(ProviderAdapter):
    """Class Super: one grant per business; its funds are the grant's tenants."""

    def scopes_for(self, business: str | None) -> tuple[str, ...]:
        """The configured scopes plus ``target:b/<code>``; without a business Class's own
        selection page asks the person which one."""
        scopes = self.definition.scopes
        return (*scopes, BUSINESS_SCOPE_PREFIX + business) if business else scopes

    def grant_business(self, tokens: TokenSet, callback_params: dict[str, str]) -> str | None:
        return business_of_scope(tokens.scope)

    def refresh_refused_reason(
        self, exc: ProviderRefused, refresh_expires_at: datetime | None
    ) -> str:
        """Expired unused, or the app cancelled in Class (a refusal saying "revoked");
        a refusal that says neither keeps the shared sentence."""
        expired = self.expired_unused_reason(exc, refresh_expires_at)
        if expired is not None:
            return expired
        if "revoked" in (exc.description or "").lower():
            return (
                f"the app was cancelled in {self.definition.display_name}, which revoked "
                "clientlink's access: re-authorise"
            )
        return str(exc)

    def _business(self, tokens: TokenSet) -> str:
        business = business_of_scope(tokens.scope)
        if business is None:
            raise ProviderRefused(
                f"{self.definition.display_name} did not say which business this "
                "authorisation covers (no target:b/ in the granted scope): sign in again",
                "invalid_request",
            )
        return business

    def _unreadable(self, what: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{self.definition.display_name} sent an unreadable {what}; will try again"
        )

    async def list_tenants(
        self, tokens: TokenSet, callback_params: dict[str, str]
    ) -> tuple[str | None, list[TenantRow]]:
        business = self._business(tokens)
        response = await self._api_get(
            f"{self.definition.api_base}/b/{business}/fund-data/fund-list", tokens, ACCEPT
        )
        try:
            funds = response.json()
        except ValueError:
            funds = None
        if not isinstance(funds, list):
            raise self._unreadable("fund list")
        tenants = []
        for fund in funds:
            fund_id = _text(fund.get("id")) if isinstance(fund, dict) else None
            if fund_id is None:
                continue  # an entry without an id cannot be bound to a client
            tenants.append(
                TenantRow(
                    tenant_id=fund_id,
                    tenant_name=_text(fund.get("name")) or fund_id,
                    tenant_type=_text(fund.get("entityType")),
                    business=business,
                    abn=tenant_abn(fund.get("abn")),
                )
            )
        return None, tenants

    async def fetch_organisation(self, tokens: TokenSet, tenant_id: str) -> OrganisationDetails:
        business = self._business(tokens)
        fund_path = quote(tenant_id, safe="")
        response = await self._api_get(
            f"{self.definition.api_base}/b/{business}/fund-data/fund-detail/{fund_path}",
            tokens,
            ACCEPT,
            tenant=tenant_id,
        )
        try:
            fund = response.json()
        except ValueError:
            fund = None
        if not isinstance(fund, dict):
            raise self._unreadable("fund")
        abn = "".join(ch for ch in _text(fund.get("abn")) or "" if ch.isdigit())
        return OrganisationDetails(
            tenant_id=tenant_id,
            name=_text(fund.get("name")) or tenant_id,
            legal_name=None,
            abn=abn or None,
            organisation_type=_text(fund.get("entityType")),
            email=_text(fund.get("email")),
            business=business,
        )
