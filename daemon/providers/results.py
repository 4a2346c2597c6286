"""What a provider's answers become: a grant's tokens, a verified organisation, the person
who signed in, and the unverified reading of the JWTs a provider hands us."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clientlink.common.abn import abn_digits, abn_is_valid


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
    SELF_MANAGED_SUPERANNUATION_FUND or SOLE_TRADER; BGL's entityType, such as SMSF); no value
    is refused. It is stored as the client's ``entity_type``.
    """

    tenant_id: str
    name: str
    legal_name: str | None
    abn: str | None
    organisation_type: str | None = None
    # The provider's own email for the entity (BGL's fundEmail), when it has one.
    email: str | None = None
    # The provider business the entity belongs to, where one grant covers one business or
    # firm (Class's business code, BGL's firm code); None where the provider has no such level.
    business: str | None = None


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


def jwt_claims(token: str) -> dict[str, Any] | None:
    """A JWT's claims without verifying it (tokens the provider handed us to read)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def jwt_claim(token: str, claim: str) -> str | None:
    """Read one claim of a JWT access token without verifying it (it is ours to read)."""
    value = (jwt_claims(token) or {}).get(claim)
    return str(value) if value else None


def tenant_abn(value: object) -> str | None:
    """The ABN a tenant list gives for an entity, as 11 digits; None when it gives none or
    one that fails the checksum (a wrong ABN is no hint for finding the entity's client)."""
    if not isinstance(value, str) or not abn_is_valid(value):
        return None
    return abn_digits(value)
