"""The BGL Simple Fund 360-like provider: one authorisation covers every entity of the firm.

State and rules only; `bgl_identity.py` and `bgl_api.py` turn HTTP into calls on
`BglProvider`. What BGL publishes (provider-facts §7): the authorization code grant, the
person signs in to SF360 (with MFA) and approves; the token request carries its parameters
in the query string with the client credentials in the Authorization header; tokens are
opaque UUIDs, the response is `{access_token, token_type: "bearer", refresh_token,
expires_in, scope}`; scopes `audit`, `investment`, `smsf_partner`, registered per app;
`GET /fund/list` lists every entity of the firm and `GET /sf/funds/{fundId}` one entity;
the account holder removes an integration in SF360's Integrations page.

What BGL does not publish, and what this sandbox assumes:
- lifetimes: access tokens 7 days (the published example's `expires_in` of 581,977 s is
  just under 7 days); refresh tokens 30 days, renewed by each refresh (a rolling lifetime);
- refresh tokens rotate on every refresh and the previous one stops at once (no grace):
  the strictest choice, so a client that survives it survives a gentler provider;
- errors are RFC 6749's: `invalid_grant` with "Invalid refresh token" for a removed
  integration (its tokens are gone) and "Invalid refresh token (expired)" for an expired
  one; the API answers a bad bearer token 401 `{"error": "invalid_token", ...}` (RFC 6750)
  and an entity the firm no longer holds 404;
- PKCE S256 is accepted but not required (BGL registers confidential apps only);
- no rate limits are documented, so none are enforced; faults can still be injected;
- there is no revocation endpoint: revoking is the Integrations page (the admin API's
  `grants/{id}/revoke` plays it);
- the sign-in has no business selection: a BGL user belongs to one firm, and the consent
  covers all its entities;
- a fund can come back under a new fundID with its ABN unchanged (SF360 re-created it): the
  admin API's `bgl/funds/{id}` with `fund_id` plays it; `/fund/list`'s `ABN` is then the only
  thing tying it to its client (the daemon's "ABN as a hint").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

from clientlink.sandbox.accounts import SandboxApp, StaffUser
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.oauth import (
    ApiAuthError,
    Grant,
    OAuthError,
    OAuthProvider,
    SignInError,
    SignInTransaction,
)
from clientlink.sandbox.seed import abn_is_valid
from clientlink.sandbox.smsf_seed import ENTITY_TYPES, SmsfBusiness, SmsfEntity

ACCESS_TOKEN_LIFETIME = timedelta(days=7)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
KNOWN_SCOPES = frozenset({"audit", "investment", "smsf_partner"})


@dataclass(frozen=True)
class FirmSummary:
    """What the consent page names: the firm, covering every one of its entities."""

    name: str


class BglProvider(OAuthProvider):
    """The emulated SF360 OAuth server and its view of the firm's funds and entities."""

    name = "bgl"
    stat_prefix = "bgl."
    display_name = "BGL Simple Fund 360"
    access_token_lifetime = ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime = REFRESH_TOKEN_LIFETIME
    refresh_rotation_grace = timedelta()

    def __init__(
        self,
        clock: SandboxClock,
        business: SmsfBusiness,
        apps: list[SandboxApp],
        users: list[StaffUser],
    ) -> None:
        super().__init__(clock, [], apps, users)
        self.firm = business.firm
        self.entities: dict[str, SmsfEntity] = {e.fund_id: e for e in business.entities}

    # -- sign-in: no selection, the firm's entities are covered ----------------------------

    def verify_authenticator(self, txn: SignInTransaction, code: str) -> None:
        """After the code the person goes straight to the consent for the whole firm."""
        super().verify_authenticator(txn, code)
        txn.tenant_ids = list(self.entities)
        txn.step = "consent"

    def select_organisations(self, txn: SignInTransaction, company_ids: list[str]) -> None:
        raise SignInError("SF360 has no business selection: allow access for the firm.")

    def consented(self, txn: SignInTransaction) -> list[object]:
        count = len(txn.tenant_ids)
        return [FirmSummary(f"{self.firm.name} (firm {self.firm.code}, {count} entities)")]

    def _new_token_value(self) -> str:
        return str(uuid.uuid4())

    def _token_response(self, grant: Grant) -> dict[str, object]:
        refresh = self._new_refresh_token(grant)
        access = self._new_access_token(grant, self._new_token_value())
        return {
            "access_token": access.value,
            "token_type": "bearer",
            "refresh_token": refresh.value,
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "scope": grant.scope,
        }

    def refresh(
        self, app: SandboxApp, refresh_value: str, *, issuer: str | None = None
    ) -> dict[str, object]:
        """Rotate; the refusals read like SF360's token store (found or not, expired)."""
        token = self.tokens.get(refresh_value)
        if token is not None and token.kind == "refresh":
            state = token.state(self.clock.now())
            if state == "expired" and token.rotated_at is None:
                raise OAuthError("invalid_grant", "Invalid refresh token (expired)")
            if state != "active":
                raise OAuthError("invalid_grant", "Invalid refresh token")
        try:
            return super().refresh(app, refresh_value, issuer=issuer)
        except OAuthError as exc:
            raise OAuthError("invalid_grant", "Invalid refresh token") from exc

    # -- the API ----------------------------------------------------------------------

    def authenticate_bearer(self, authorization: str | None) -> Grant:
        """The live grant of a bearer header, or ApiAuthError (401 invalid_token)."""
        token = self.bearer_token(authorization)
        if token is None or token.revoked or self.grants[token.grant_id].revoked:
            raise ApiAuthError(401, "invalid_token", "Invalid access token")
        if self.clock.now() >= token.expires_at:
            raise ApiAuthError(401, "invalid_token", "Access token expired")
        return self.grants[token.grant_id]

    def funds_of(self, grant: Grant) -> list[SmsfEntity]:
        """Every entity the grant's firm holds now (SF360 lists the firm, not the consent)."""
        return list(self.entities.values())

    # -- admin: the firm changes its entities ---------------------------------------------

    def change_entity(
        self,
        fund_id: str,
        *,
        fund_name: str | None = None,
        abn: str | None = None,
        email: str | None = None,
        clear_email: bool = False,
        entity_type: str | None = None,
        fund_id_to: str | None = None,
    ) -> SmsfEntity:
        """Rename an entity, change its ABN, email or type, or give it a new fund id.

        Names are the firm's own, so they may hold anything; an ABN must be "" or valid.
        """
        entity = self.entities[fund_id]
        if abn is not None and abn != "" and not abn_is_valid(abn):
            raise ValueError(f"{abn!r} is not a valid ABN (checksum)")
        if entity_type is not None and entity_type not in ENTITY_TYPES:
            raise ValueError(f"entity_type must be one of {', '.join(ENTITY_TYPES)}")
        if fund_id_to is not None and (not fund_id_to or fund_id_to in self.entities):
            raise ValueError("the new fund id must be non-empty and not already in use")
        changed = replace(
            entity,
            fund_name=entity.fund_name if fund_name is None else fund_name,
            abn=entity.abn if abn is None else abn.replace(" ", ""),
            email="" if clear_email else (entity.email if email is None else email),
            entity_type=entity.entity_type if entity_type is None else entity_type,
            fund_id=entity.fund_id if fund_id_to is None else fund_id_to,
        )
        if fund_id_to is not None:
            del self.entities[fund_id]
        self.entities[changed.fund_id] = changed
        return changed

    def remove_entity(self, fund_id: str) -> SmsfEntity:
        """The firm stops holding the entity (archived or moved to another firm)."""
        return self.entities.pop(fund_id)


def fund_list_item(entity: SmsfEntity) -> dict[str, object]:
    """One entry of `/fund/list` in BGL's published shape (ABN may be "", fundEmail null)."""
    return {
        "fundID": entity.fund_id,
        "fundCode": entity.fund_code,
        "fundName": entity.fund_name,
        "entityType": entity.entity_type,
        "code": entity.fund_code,
        "sfCode": entity.sf_code,
        "ABN": entity.abn,
        "firmName": entity.firm_name,
        "firm": entity.firm,
        "fundEmail": entity.email or None,
    }


def fund_details(entity: SmsfEntity) -> dict[str, object]:
    """`/sf/funds/{fundId}`: the entity's details (keys `name`, `abn`, `entityType`, ...)."""
    return {
        "id": entity.fund_id,
        "name": entity.fund_name,
        "abn": entity.abn,
        "entityType": entity.entity_type,
        "fundCode": entity.fund_code,
        "sfCode": entity.sf_code,
        "email": entity.email or None,
        "firm": entity.firm,
        "firmName": entity.firm_name,
    }
