"""MYOB Business: one company file per grant, named by ``businessId`` on the redirect.

What MYOB publishes and this adapter follows (provider-facts §3): the authorize and token
endpoints share a path name (`/oauth2/account/authorize`, `/oauth2/v1/authorize`); the app
authenticates with `client_id` and `client_secret` in the form body; `expires_in` comes as a
string ("1200"); the token answer names the MYOB user (`user.username`); API keys made after
12 March 2025 ask for the granular `sme-*` scopes and a consent covers one company file,
named on the redirect (`businessId`, `businessName`) only when `prompt=consent` was sent;
every API call carries `x-myobapi-key` (the client id) and `x-myobapi-version: v2`; the
file's Company Information is at `{api_base}/{businessId}/Company`.

ABNOrTFN holds either an ABN or a tax file number. Only a valid ABN (11 digits, ATO checksum)
becomes the client's ABN; anything else is dropped unread, so a TFN is never stored or shown.

MYOB says 403 with `RateLimitError` ("Developer Over Qps") when a key goes over its rate:
that is a rate limit, not a file that went away. `DeveloperInactive` is the app's key.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from clientlink.common.abn import abn_is_valid
from clientlink.daemon.limits import MYOB_LIMITS
from clientlink.daemon.providers.adapter import ProviderAdapter
from clientlink.daemon.providers.errors import ProviderRefused, RateLimited
from clientlink.daemon.providers.http import raise_for_api_status
from clientlink.daemon.providers.results import OrganisationDetails, ProviderUser, TokenSet
from clientlink.daemon.store import TenantRow

if TYPE_CHECKING:
    import httpx

API_VERSION = "v2"
# How long to hold MYOB calls back after "Developer Over Qps" (it sends no Retry-After).
OVER_QPS_PAUSE_SECONDS = 2.0


def abn_from(abn_or_tfn: object) -> str | None:
    """The ABN in MYOB's ABNOrTFN field, or None (a TFN, or anything else, is dropped)."""
    digits = re.sub(r"[\s-]", "", str(abn_or_tfn or ""))
    return digits if len(digits) == 11 and abn_is_valid(digits) else None


class MyobAdapter(ProviderAdapter):
    """MYOB Business: one company file per grant, named by ``businessId`` on the redirect."""

    limits = MYOB_LIMITS

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, business: str | None = None
    ) -> str:
        """The sign-in address with `prompt=consent`: without it MYOB does not say which
        company file was chosen."""
        url = super().authorization_url(
            redirect_uri=redirect_uri, state=state, code_verifier=code_verifier
        )
        return url + "&prompt=consent"

    def _token_set(self, token: dict[str, Any]) -> TokenSet:
        tokens = super()._token_set(token)
        user = token.get("user")
        if isinstance(user, dict):
            tokens.extra["user"] = {
                "uid": str(user.get("uid") or ""),
                "username": str(user.get("username") or ""),
            }
        return tokens

    def provider_user(self, tokens: TokenSet) -> ProviderUser | None:
        """The MYOB user the token answer names (MYOB sends no id_token)."""
        user = tokens.extra.get("user")
        if not isinstance(user, dict) or not (user.get("uid") or user.get("username")):
            return None
        username = user.get("username") or None
        return ProviderUser(
            subject=user.get("uid") or username or "",
            email=username if username and "@" in username else None,
            name=username,
            user_id=user.get("uid") or None,
        )

    def _api_headers(self) -> dict[str, str]:
        return {"x-myobapi-key": self.client_id, "x-myobapi-version": API_VERSION}

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code == 403:
            name, message = _myob_error(response)
            if name == "RateLimitError" or "over qps" in message.lower():
                raise RateLimited(
                    f"MYOB is rate-limiting clientlink ({message or name})",
                    OVER_QPS_PAUSE_SECONDS,
                    "app",
                )
            if name == "DeveloperInactive" or "developer inactive" in message.lower():
                raise ProviderRefused(
                    f"MYOB does not accept this app's API key ({message or name}): fix "
                    f"client_id under [providers.{self.name}] in config.toml; the clients' "
                    "authorisations are not affected",
                    "invalid_client",
                )
        raise_for_api_status(response, self.definition.display_name)

    async def list_tenants(
        self, tokens: TokenSet, callback_params: dict[str, str]
    ) -> tuple[str | None, list[TenantRow]]:
        business_id = (callback_params.get("businessId") or "").strip()
        if not business_id:
            raise ProviderRefused(
                "MYOB did not say which company file was connected (no businessId on the "
                "redirect): sign in again and choose a company file",
                "invalid_request",
            )
        details = await self.fetch_organisation(tokens, business_id)
        name = callback_params.get("businessName") or details.name
        return None, [TenantRow(tenant_id=business_id, tenant_name=name, tenant_type="FILE")]

    async def fetch_organisation(self, tokens: TokenSet, tenant_id: str) -> OrganisationDetails:
        response = await self._api_get(
            f"{self.definition.api_base}/{tenant_id}/Company",
            tokens,
            self._api_headers(),
            tenant=tenant_id,
        )
        try:
            info = response.json()
        except ValueError:
            info = None
        if not isinstance(info, dict):
            info = {}
        return OrganisationDetails(
            tenant_id=tenant_id,
            name=str(info.get("CompanyName") or "") or tenant_id,
            legal_name=None,
            abn=abn_from(info.get("ABNOrTFN")),
            email=str(info.get("EmailAddress") or "") or None,
        )


def _myob_error(response: httpx.Response) -> tuple[str, str]:
    """The first error's Name and Message of MYOB's `{"Errors": [...]}` body."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    errors = body.get("Errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("Name") or ""), str(errors[0].get("Message") or "")
    return "", ""
