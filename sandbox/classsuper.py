"""The Class Super-like provider: OpenID Connect, one Class business per authorisation.

State and rules only; `classsuper_identity.py` and `classsuper_api.py` turn HTTP into calls on
`ClassProvider`. Published facts (provider-facts §7, Class's support articles): authorization
code with OpenID Connect at `/connect/authorize` and `/connect/token` (IdentityServer-shaped),
confidential clients authenticate with HTTP Basic; the person signs in with Class credentials
and MFA; access tokens last 15 minutes; refresh tokens 30 days and are single-use (each refresh
rotates it, the previous one stops working shortly after); `offline_access` is needed for a
refresh token; the scope is an access specifier such as `fund.read` plus
`target:b/<business_code>`, so one authorisation covers one Class business. The API lives at
`/api/1.0/{scope}/{area}/{action}` (e.g. `b/{Business}/fund-data/fund-list`) and takes the
action version in the Accept header (`vnd.superip.action.v1`).

Facts assumed (Class does not publish them; chosen to look like IdentityServer and to be
stated once, here):
- the previous refresh token keeps working for 60 seconds after its first rotation
  (`REFRESH_TOKEN_GRACE`), long enough to repeat a refresh whose answer was lost;
- an authorize request naming no `target:b/...` shows a business selection page (one business,
  radio buttons, sorted by name) and the granted `scope` names the chosen business: how a
  practice without business codes in its config discovers them. One naming a business shows
  that business to allow, or a refusal page when the person cannot reach it;
- revocation is RFC 7009 at `/connect/revocation`; revoking either token ends the grant;
- a refused refresh is `invalid_grant` whose `error_description` says why: "The grant has been
  revoked" (the app cancelled in Class) or "The refresh token has expired" (a Class that says
  neither gets clientlink's sentence for both: "revoked, expired or already used");
- the token response is IdentityServer's: `{id_token, access_token, expires_in: 900,
  token_type: "Bearer", refresh_token, scope}`; access tokens are opaque reference tokens; the
  id_token carries `sub`, `name` and `email`;
- known access specifiers are `fund.read` and `fund.write`;
- the fund list answers a JSON array of `{id, code, name, abn, entityType, email,
  businessCode}`; `id` is a GUID (like the member ids in Class's URL examples), `entityType`
  one of SMSF, Trust, Company, Individual; one fund's detail is
  `b/{Business}/fund-data/fund-detail/{id}`;
- the API answers JSON only when asked for it (`application/json` or
  `application/vnd.superip.action.v1+json`); the real default (XML) is not emulated: the
  sandbox answers 406 and says what to send. Errors are RFC 7807 problem details;
- no rate limits are published, so none are emulated.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta

from clientlink.sandbox.accounts import STAFF_USERS, SandboxApp, StaffUser
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.oauth import (
    AccessRefused,
    ApiAuthError,
    Grant,
    OAuthError,
    OAuthProvider,
    SignInTransaction,
    new_secret,
)
from clientlink.sandbox.oidc import person_claims
from clientlink.sandbox.seed import make_abn
from clientlink.sandbox.smsf_seed import COMPANY, INDIVIDUAL, SMSF, TRUST, business_entities

ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
REFRESH_TOKEN_GRACE = timedelta(seconds=60)
FUND_READ = "fund.read"
ACCESS_SPECIFIERS = frozenset({FUND_READ, "fund.write"})
BUSINESS_SCOPE_PREFIX = "target:b/"
STANDARD_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})

CLASS_CLIENT_ID = "clientlink-class"
CLASS_CLIENT_SECRET = "sandbox-class-secret"

# The default practice: three Class businesses holding different numbers of funds.
DEFAULT_FUND_COUNTS = (12, 7, 4)
CLASS_SEED = 20250214
# The staff member who reaches only the first business (the others reach all three).
LIMITED_USER = STAFF_USERS[2]

# smsf_seed's entity types (BGL's words) as Class names them.
_CLASS_TYPES = {SMSF: "SMSF", TRUST: "Trust", COMPANY: "Company", INDIVIDUAL: "Individual"}
_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ClassFund:
    """One fund (or other entity) of a Class business."""

    id: str
    code: str
    name: str
    abn: str
    entity_type: str
    email: str
    business: str

    def to_json(self) -> dict[str, str]:
        """The fund as the fund-list and fund-detail actions answer it."""
        return {
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "abn": self.abn,
            "entityType": self.entity_type,
            "email": self.email,
            "businessCode": self.business,
        }


@dataclass
class ClassBusiness:
    """A Class business: its code, name and ABN, and its funds by id.

    `tenant_id` is the code: the shared sign-in pages name what is selected by it.
    """

    code: str
    name: str
    abn: str
    funds: dict[str, ClassFund] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.code

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "abn": self.abn,
            "funds": [fund.to_json() for fund in self.funds.values()],
        }


def default_businesses(counts: tuple[int, ...] = DEFAULT_FUND_COUNTS) -> list[ClassBusiness]:
    """The practice's Class businesses, the same on every run (smsf_seed's entities)."""
    rng = random.Random(CLASS_SEED)
    generated = business_entities(len(counts), max(counts, default=0), seed=CLASS_SEED)
    businesses = []
    for smsf_business, count in zip(generated, counts, strict=True):
        code = smsf_business.firm.code
        funds = [
            ClassFund(
                id=str(uuid.UUID(entity.fund_id)),
                code=entity.fund_code,
                name=entity.fund_name,
                abn=entity.abn,
                entity_type=_CLASS_TYPES.get(entity.entity_type, entity.entity_type),
                email=entity.email,
                business=code,
            )
            for entity in smsf_business.entities[:count]
        ]
        businesses.append(
            ClassBusiness(
                code=code,
                name=smsf_business.firm.name,
                abn=make_abn(rng),
                funds={fund.id: fund for fund in funds},
            )
        )
    return businesses


def default_class_apps() -> list[SandboxApp]:
    """The app every sandbox's Class starts with: confidential (HTTP Basic), any loopback port."""
    return [
        SandboxApp(
            client_id=CLASS_CLIENT_ID,
            name="clientlink (Class)",
            client_secret=CLASS_CLIENT_SECRET,
            any_loopback_path=True,
        )
    ]


def default_access(businesses: list[ClassBusiness]) -> dict[str, set[str] | None]:
    """Which businesses each staff member reaches: all, except LIMITED_USER the first only."""
    first = {businesses[0].code} if businesses else set()
    return {email: (first if email == LIMITED_USER else None) for email in STAFF_USERS}


def business_of_scope(scope: str) -> str | None:
    """The business code a scope's `target:b/<code>` names (the first one), or None."""
    for item in scope.split():
        if item.startswith(BUSINESS_SCOPE_PREFIX):
            return item[len(BUSINESS_SCOPE_PREFIX) :]
    return None


def scope_problem(scope: str) -> str | None:
    """Why an authorize scope is refused (invalid_scope), or None when it is acceptable."""
    items = scope.split()
    targets = [item for item in items if item.startswith(BUSINESS_SCOPE_PREFIX)]
    unknown = [
        item
        for item in items
        if item not in STANDARD_SCOPES and item not in ACCESS_SPECIFIERS and item not in targets
    ]
    if unknown:
        return f"Unknown scope: {' '.join(unknown)}"
    if "openid" not in items:
        return "openid is required (Class signs in with OpenID Connect)"
    if not any(item in ACCESS_SPECIFIERS for item in items):
        return f"an access specifier such as {FUND_READ} is required"
    if len(targets) > 1:
        return "one authorisation covers one business: name at most one target:b/<code>"
    if targets and not _CODE_PATTERN.match(targets[0][len(BUSINESS_SCOPE_PREFIX) :]):
        return "target:b/ must be followed by a business code"
    return None


class ClassProvider(OAuthProvider):
    """The emulated Class identity server and the Class API's view of its grants."""

    name = "class"
    stat_prefix = "class."
    display_name = "Class Super"
    selects_one_company = True
    access_token_lifetime = ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime = REFRESH_TOKEN_LIFETIME
    refresh_rotation_grace = REFRESH_TOKEN_GRACE

    def __init__(
        self,
        clock: SandboxClock,
        businesses: list[ClassBusiness],
        apps: list[SandboxApp],
        users: list[StaffUser],
        access: dict[str, set[str] | None] | None = None,
    ) -> None:
        # `orgs` (what the shared sign-in pages select) are the businesses, by code.
        super().__init__(clock, businesses, apps, users)  # type: ignore[arg-type]
        self.businesses = {business.code: business for business in businesses}
        self.access = access if access is not None else default_access(businesses)

    # -- sign-in -----------------------------------------------------------------------

    def organisations_for(self, email: str) -> list[ClassBusiness]:  # type: ignore[override]
        """The businesses `email` reaches, sorted by name (the selection page's order)."""
        allowed = self.access.get(email.lower())
        reachable = [
            business
            for business in self.businesses.values()
            if allowed is None or business.code in allowed
        ]
        return sorted(reachable, key=lambda business: business.name.casefold())

    def verify_authenticator(self, txn: SignInTransaction, code: str) -> None:
        """After MFA: a request naming a business goes straight to allowing that business."""
        super().verify_authenticator(txn, code)
        assert txn.user is not None
        wanted = business_of_scope(txn.scope)
        if wanted is None:
            return
        if wanted not in {b.code for b in self.organisations_for(txn.user)}:
            del self.transactions[txn.id]
            raise AccessRefused(
                f"You don't have access to the Class business {wanted!r}. Ask your Class "
                "administrator for access, or sign in as someone who has it."
            )
        txn.tenant_ids = [wanted]
        txn.step = "consent"

    def select_organisations(self, txn: SignInTransaction, company_ids: list[str]) -> None:
        """The chosen business is what the granted scope names."""
        super().select_organisations(txn, company_ids)
        (code,) = txn.tenant_ids
        txn.scope = f"{txn.scope} {BUSINESS_SCOPE_PREFIX}{code}"

    def _id_token_claims(self, grant: Grant, issuer: str) -> dict[str, object]:
        claims = super()._id_token_claims(grant, issuer)
        person = person_claims(grant.user, ["email", "profile"])
        return claims | {"name": person["name"], "email": person["email"]}

    # -- tokens ------------------------------------------------------------------------

    def _token_response(self, grant: Grant) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self._new_access_token(grant, new_secret()).value,
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "token_type": "Bearer",
        }
        if "offline_access" in grant.scope.split():
            body["refresh_token"] = self._new_refresh_token(grant).value
        body["scope"] = grant.scope
        return body

    def revoke_token(self, app: SandboxApp, value: str) -> None:
        """RFC 7009: revoking either token of a grant ends the grant (unknown ones: no-op)."""
        token = self.tokens.get(value)
        if token is None:
            return
        grant = self.grants[token.grant_id]
        if grant.client_id != app.client_id:
            raise OAuthError("invalid_grant", "The token was issued to another client")
        self.revoke_grant(grant.grant_id, disconnect=True)

    def realm_of(self, grant: Grant) -> str | None:
        """The one business a Class grant covers."""
        return business_of_scope(grant.scope)

    # -- the API -----------------------------------------------------------------------

    def authenticate_bearer(self, authorization: str | None) -> Grant:
        """The live grant of a bearer access token, or ApiAuthError (401)."""
        token = self.bearer_token(authorization)
        if token is None or token.revoked:
            raise ApiAuthError(401, "Unauthorized", "The access token is invalid")
        if self.clock.now() >= token.expires_at:
            raise ApiAuthError(401, "Unauthorized", "The access token has expired")
        grant = self.grants[token.grant_id]
        if grant.revoked:
            raise ApiAuthError(401, "Unauthorized", "The access token is invalid")
        return grant

    def business_for(self, grant: Grant, code: str) -> ClassBusiness:
        """The business `code` if the grant covers it and its user still reaches it."""
        business = self.businesses.get(code)
        if business is None or self.realm_of(grant) != code:
            raise ApiAuthError(403, "Forbidden", f"This authorisation does not cover {code!r}")
        if code not in {b.code for b in self.organisations_for(grant.user)}:
            raise ApiAuthError(403, "Forbidden", f"The user no longer has access to {code!r}")
        return business

    # -- admin changes -----------------------------------------------------------------

    def find_fund(self, fund_id: str) -> ClassFund | None:
        for business in self.businesses.values():
            if fund_id in business.funds:
                return business.funds[fund_id]
        return None

    def change_fund(self, fund_id: str, **changes: str) -> ClassFund:
        """As if the fund's details were edited in Class (name, abn, email, entity_type)."""
        fund = self.find_fund(fund_id)
        if fund is None:
            raise KeyError(fund_id)
        unknown = set(changes) - {"name", "abn", "email", "entity_type"}
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
        changed = replace(fund, **changes)
        self.businesses[fund.business].funds[fund_id] = changed
        return changed
