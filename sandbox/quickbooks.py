"""The QuickBooks Online-like provider: one company (realm) per consent, Intuit's lifetimes.

State and rules only; `quickbooks_identity.py` and `quickbooks_api.py` turn HTTP into calls
on `QuickBooksProvider`. Intuit's numbers: access tokens 1 hour; refresh tokens a rolling
101 days (`x_refresh_token_expires_in: 8726400`), capped by a hard end 5 years after the
consent; a refresh token's value is handed out again for about 24 hours, then rotates, and
the previous one keeps working for 24 hours after its successor is issued; revoking any
token disconnects the app. With `openid` the code exchange adds an id_token, and the
UserInfo endpoint tells who signed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.oauth import (
    ApiAuthError,
    Grant,
    OAuthProvider,
    SignInTransaction,
    new_secret,
)
from clientlink.sandbox.oidc import person_claims, user_subject
from clientlink.sandbox.seed import SeedOrg

ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
# What Intuit's token responses say: x_refresh_token_expires_in is 8,726,400 s (101 days).
REFRESH_TOKEN_ROLLING_LIFETIME = timedelta(seconds=8_726_400)
REFRESH_TOKEN_GRACE = timedelta(hours=24)
REFRESH_VALUE_LIFETIME = timedelta(hours=24)
# Five calendar years, counting the leap day that any five-year span contains at least once.
GRANT_HARD_LIFETIME = timedelta(days=5 * 365 + 1)
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING_SCOPE,
        "com.intuit.quickbooks.payment",
        "openid",
        "profile",
        "email",
        "phone",
        "address",
    }
)


class QuickBooksProvider(OAuthProvider):
    """The emulated Intuit OAuth server and QuickBooks Online's view of its grants."""

    name = "quickbooks"
    stat_prefix = "quickbooks."
    display_name = "QuickBooks Online"
    selects_one_company = True
    access_token_lifetime = ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime = REFRESH_TOKEN_ROLLING_LIFETIME
    refresh_rotation_grace = REFRESH_TOKEN_GRACE
    grant_hard_lifetime = GRANT_HARD_LIFETIME
    refresh_value_lifetime = REFRESH_VALUE_LIFETIME

    def company_id(self, org: SeedOrg) -> str:
        """Companies are picked, and named on the redirect, by realm id."""
        return org.realm_id

    def org_for_realm(self, realm_id: str) -> SeedOrg | None:
        """The seed organisation whose realm id is `realm_id`."""
        return next((org for org in self.orgs.values() if org.realm_id == realm_id), None)

    def realm_of(self, grant: Grant) -> str | None:
        """The one company a QuickBooks grant covers."""
        (tenant_id,) = grant.tenant_ids
        return self.orgs[tenant_id].realm_id

    def _redirect_params(self, txn: SignInTransaction) -> dict[str, str]:
        (tenant_id,) = txn.tenant_ids
        return {"realmId": self.orgs[tenant_id].realm_id}

    def _id_token_claims(self, grant: Grant, issuer: str) -> dict[str, object]:
        """Intuit's id_token: `aud` is a list, the company is `realmid`."""
        claims = super()._id_token_claims(grant, issuer)
        return claims | {"aud": [grant.client_id], "realmid": self.realm_of(grant)}

    def user_info(self, grant: Grant) -> dict[str, object]:
        """The UserInfo answer for the grant's user, by the scopes granted."""
        scopes = grant.scope.split()
        person = person_claims(grant.user, scopes)
        body: dict[str, object] = {"sub": user_subject(grant.user)}
        if "email" in scopes:
            body |= {"email": grant.user, "emailVerified": True}
        if "profile" in scopes:
            body |= {"givenName": person["given_name"], "familyName": person["family_name"]}
        return body

    def _token_response(self, grant: Grant) -> dict[str, object]:
        """Intuit's body; `x_refresh_token_hard_expires_in` is dropped unless asked for."""
        issued = self.clock.now()
        refresh = self._new_refresh_token(grant)
        access = self._new_access_token(grant, new_secret())
        assert grant.hard_expires_at is not None

        def seconds_left(moment: datetime) -> int:
            # From the issue instant, rounded: the clock flows on while a response is built.
            return max(0, round((moment - issued).total_seconds()))

        return {
            "token_type": "bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "refresh_token": refresh.value,
            "x_refresh_token_expires_in": seconds_left(refresh.expires_at),
            "access_token": access.value,
            "x_refresh_token_hard_expires_in": seconds_left(grant.hard_expires_at),
        }

    def revoke_token(self, app: SandboxApp, value: str) -> None:
        """Revoking either token disconnects the app from the company: the grant ends."""
        token = self.tokens.get(value)
        if token is None:
            return
        grant = self.grants[token.grant_id]
        if grant.client_id == app.client_id:
            self.revoke_grant(grant.grant_id, disconnect=True)

    def authenticate_bearer(self, authorization: str | None) -> Grant:
        """Resolve a bearer header to its live grant, or raise ApiAuthError (Intuit's 3200)."""
        token = self.bearer_token(authorization)
        if token is None or token.revoked:
            raise ApiAuthError(401, "AuthenticationFailed", "Token invalid")
        if self.clock.now() >= token.expires_at:
            expired_at = token.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise ApiAuthError(401, "AuthenticationFailed", f"Token expired: {expired_at}")
        return self.grants[token.grant_id]
