"""Xero: one token set reaches every organisation the user connected (its connections
endpoint lists them), and the Organisation endpoint verifies one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from clientlink.daemon.limits import XERO_LIMITS
from clientlink.daemon.providers.adapter import ProviderAdapter
from clientlink.daemon.providers.results import OrganisationDetails, TokenSet, jwt_claim
from clientlink.daemon.store import TenantRow

# How often a routine (not person-asked) check lists a Xero consent's connections.
CONNECTIONS_CHECK_INTERVAL = timedelta(hours=6)


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
        auth_event_id = jwt_claim(tokens.access_token, "authentication_event_id")
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
        consent = jwt_claim(tokens.access_token, "authentication_event_id")
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
