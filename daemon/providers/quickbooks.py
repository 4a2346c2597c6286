"""QuickBooks Online: one grant per company, named by ``realmId`` on the callback; Intuit's
own revocation call; CompanyInfo verifies the company."""

from __future__ import annotations

from clientlink.daemon.limits import QUICKBOOKS_LIMITS
from clientlink.daemon.providers.adapter import ProviderAdapter
from clientlink.daemon.providers.errors import ProviderRefused, ProviderUnavailable
from clientlink.daemon.providers.http import error_detail, library, unreachable
from clientlink.daemon.providers.results import OrganisationDetails, TokenSet
from clientlink.daemon.store import TenantRow


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
        httpx = library()
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
            raise ProviderUnavailable(unreachable(display, exc)) from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{display} answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise ProviderRefused(
                f"{display} refused to revoke the authorisation (HTTP {response.status_code}: "
                f"{error_detail(response)})",
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
