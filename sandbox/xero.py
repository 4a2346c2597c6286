"""The Xero-like provider: lifetimes, JWT access tokens, connections and API auth answers.

This module holds state and rules only; `xero_identity.py` and `xero_api.py` turn HTTP into
calls on `XeroProvider`. Lifetimes follow Xero's published numbers (access 30 min, refresh
60 days idle, 30-minute grace for the previous refresh token); what every provider shares
(sign-in, codes, rotation, revocation of grants) lives in `oauth.py`.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from clientlink.common.xero_tiers import TIER_NAMES, XERO_TIERS, XeroTier
from clientlink.sandbox.accounts import SandboxApp, StaffUser
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.oauth import (
    ApiAuthError,
    Grant,
    OAuthProvider,
    SignInError,
    SignInTransaction,
)
from clientlink.sandbox.oidc import person_claims, user_subject
from clientlink.sandbox.seed import SeedOrg

ACCESS_TOKEN_LIFETIME = timedelta(seconds=1800)
REFRESH_TOKEN_IDLE_LIFETIME = timedelta(days=60)
REFRESH_TOKEN_GRACE = timedelta(minutes=30)
OFFLINE_ACCESS = "offline_access"


def xero_datetime(moment: datetime) -> str:
    """Format like Xero's connection dates: `2019-12-07T18:46:19.5165400` (7 digits, no Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def xero_user_id(user: str) -> str:
    """The Xero user id of a sandbox user (stable across starts)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, user.lower()))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _access_token_jwt(grant: Grant, now: datetime) -> str:
    """A JWT shaped like Xero's access tokens, whose claims clients may read.

    Xero signs with RS256; the sandbox's third segment is random bytes instead, which keeps
    the token unguessable. Clients read claims such as ``authentication_event_id`` (the
    consent whose connections this token was issued for) but never verify the signature.
    """
    header = {"alg": "RS256", "kid": "sandbox", "typ": "JWT"}
    issued = int(now.timestamp())
    claims = {
        "nbf": issued,
        "exp": issued + int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        "iss": "clientlink-sandbox",
        "aud": "clientlink-sandbox/resources",
        "client_id": grant.client_id,
        "sub": user_subject(grant.user),
        "xero_userid": xero_user_id(grant.user),
        "jti": secrets.token_hex(16),
        "authentication_event_id": grant.auth_event_id,
        "scope": grant.scope.split(),
    }
    return ".".join(
        (
            _b64url(json.dumps(header, separators=(",", ":")).encode()),
            _b64url(json.dumps(claims, separators=(",", ":")).encode()),
            _b64url(secrets.token_bytes(32)),
        )
    )


@dataclass
class Connection:
    """Xero's connection: one tenant authorised for one (user, app) pair."""

    id: str
    user: str
    client_id: str
    tenant_id: str
    auth_event_id: str
    created_at: datetime
    updated_at: datetime


class XeroProvider(OAuthProvider):
    """The emulated Xero identity server and API data, all in memory."""

    name = "xero"
    display_name = "Xero"
    access_token_lifetime = ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime = REFRESH_TOKEN_IDLE_LIFETIME
    refresh_rotation_grace = REFRESH_TOKEN_GRACE
    id_token_on_refresh = True

    def __init__(
        self,
        clock: SandboxClock,
        orgs: list[SeedOrg],
        apps: list[SandboxApp],
        users: list[StaffUser],
    ) -> None:
        super().__init__(clock, orgs, apps, users)
        self.connections: dict[str, Connection] = {}

    # -- the app's tier (since March 2026) ------------------------------------------------

    def tier(self, client_id: str) -> XeroTier:
        """The pricing tier the app is on."""
        return XERO_TIERS[self.apps[client_id].tier]

    def set_tier(self, client_id: str, tier: str) -> SandboxApp:
        """Move the app to `tier` (a name in XERO_TIERS)."""
        if tier not in XERO_TIERS:
            raise ValueError(f"unknown tier {tier!r}: use one of {', '.join(TIER_NAMES)}")
        app = replace(self.apps[client_id], tier=tier)
        self.apps[client_id] = app
        return app

    def app_connection_count(self, client_id: str) -> int:
        """Organisations connected to the app, whoever connected them."""
        return len({c.tenant_id for c in self.connections.values() if c.client_id == client_id})

    def select_organisations(self, txn: SignInTransaction, company_ids: list[str]) -> None:
        """As every provider, but refuse a selection past the tier's connection cap."""
        super().select_organisations(txn, company_ids)
        tier = self.tier(txn.app.client_id)
        if tier.connection_cap is None:
            return
        connected = {
            c.tenant_id for c in self.connections.values() if c.client_id == txn.app.client_id
        }
        if len(connected | set(txn.tenant_ids)) > tier.connection_cap:
            txn.step, txn.tenant_ids = "organisations", []
            raise SignInError(
                f"{txn.app.name} can connect at most {tier.connection_cap} organisations on "
                f"Xero's {tier.name.capitalize()} tier and has {len(connected)} already. "
                "Select fewer organisations, or ask the app's developer to change tier."
            )

    # -- consent connects tenants ---------------------------------------------------------

    def _on_consent(self, txn: SignInTransaction, auth_event_id: str) -> None:
        assert txn.user is not None
        now = self.clock.now()
        existing = {
            conn.tenant_id: conn
            for conn in self.connections.values()
            if conn.user == txn.user and conn.client_id == txn.app.client_id
        }
        for tenant_id in txn.tenant_ids:
            conn = existing.get(tenant_id)
            if conn is None:
                conn = Connection(
                    id=str(uuid.uuid4()),
                    user=txn.user,
                    client_id=txn.app.client_id,
                    tenant_id=tenant_id,
                    auth_event_id=auth_event_id,
                    created_at=now,
                    updated_at=now,
                )
                self.connections[conn.id] = conn
            else:
                # Xero keeps the connection id on re-consent and only moves these two.
                conn.updated_at = now
                conn.auth_event_id = auth_event_id

    def _disconnect(self, grant: Grant) -> None:
        # Xero: revoking ends the grant and removes the user's connections for the app.
        self.remove_connections(user=grant.user, client_id=grant.client_id)

    # -- tokens -------------------------------------------------------------------------

    def _id_token_claims(self, grant: Grant, issuer: str) -> dict[str, object]:
        """Xero's id_token: the person (by scope) and their Xero user id."""
        claims = super()._id_token_claims(grant, issuer)
        claims |= {
            "xero_userid": xero_user_id(grant.user),
            "global_session_id": grant.auth_event_id.replace("-", ""),
            "sid": grant.grant_id.replace("-", ""),
            "preferred_username": grant.user,
            "amr": ["pwd", "mfa"],
        }
        return claims | person_claims(grant.user, grant.scope.split())

    def _token_response(self, grant: Grant) -> dict[str, object]:
        access = self._new_access_token(grant, _access_token_jwt(grant, self.clock.now()))
        body: dict[str, object] = {
            "access_token": access.value,
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "token_type": "Bearer",
        }
        if OFFLINE_ACCESS in grant.scope.split():
            body["refresh_token"] = self._new_refresh_token(grant).value
        body["scope"] = grant.scope
        return body

    def revoke_token(self, app: SandboxApp, value: str) -> None:
        """RFC 7009 revocation; unknown tokens and other clients' tokens are ignored."""
        token = self.tokens.get(value)
        if token is None:
            return
        grant = self.grants[token.grant_id]
        if grant.client_id != app.client_id:
            return
        if token.kind == "refresh":
            self.revoke_grant(grant.grant_id, disconnect=True)
        else:
            token.revoked = True

    # -- connections ---------------------------------------------------------------------

    def remove_connections(
        self,
        *,
        user: str | None = None,
        client_id: str | None = None,
        tenant_id: str | None = None,
    ) -> list[Connection]:
        """Remove connections matching every given filter; return what was removed."""
        removed = [
            conn
            for conn in self.connections.values()
            if (user is None or conn.user == user)
            and (client_id is None or conn.client_id == client_id)
            and (tenant_id is None or conn.tenant_id == tenant_id)
        ]
        for conn in removed:
            del self.connections[conn.id]
        return removed

    def connections_of(
        self, user: str, client_id: str, auth_event_id: str | None = None
    ) -> list[Connection]:
        """The (user, app) pair's connections, oldest first, optionally of one auth event."""
        found = [
            conn
            for conn in self.connections.values()
            if conn.user == user
            and conn.client_id == client_id
            and (auth_event_id is None or conn.auth_event_id == auth_event_id)
        ]
        return sorted(found, key=lambda conn: conn.created_at)

    def is_connected(self, user: str, client_id: str, tenant_id: str) -> bool:
        """Whether `tenant_id` is connected for this user and app."""
        return any(conn.tenant_id == tenant_id for conn in self.connections_of(user, client_id))

    def connection_json(self, conn: Connection) -> dict[str, str]:
        """A connection as Xero's `GET /connections` shows it."""
        return {
            "id": conn.id,
            "authEventId": conn.auth_event_id,
            "tenantId": conn.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": self.orgs[conn.tenant_id].name,
            "createdDateUtc": xero_datetime(conn.created_at),
            "updatedDateUtc": xero_datetime(conn.updated_at),
        }

    # -- the API -----------------------------------------------------------------------

    def authenticate_bearer(self, authorization: str | None) -> Grant:
        """Resolve an `Authorization: Bearer` header to its live grant or raise ApiAuthError."""
        token = self.bearer_token(authorization)
        if token is None or token.revoked:
            raise ApiAuthError(401, "Unauthorized", "AuthenticationUnsuccessful")
        if self.clock.now() >= token.expires_at:
            expired_at = token.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            raise ApiAuthError(401, "Unauthorized", f"TokenExpired: token expired at {expired_at}")
        return self.grants[token.grant_id]
