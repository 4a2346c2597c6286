"""The MYOB Business-like provider: one company file per consent, MYOB's token answers.

State and rules only; `myob_identity.py` and `myob_api.py` turn HTTP into calls on
`MyobProvider`. The company files are the practice's businesses (`seed.py`), each known to
MYOB by a GUID of its own (`business_id`).

Published facts it follows (provider-facts §3): authorize at `/oauth2/account/authorize`,
token at `/oauth2/v1/authorize` (the same path name), the code lives 2 to 5 minutes; the
token answer is `{access_token, token_type: "bearer", expires_in: "1200"` (a string),
`refresh_token, scope, user: {uid, username}}`; API keys made after 12 March 2025 ask for
the granular `sme-*` scopes; a consent covers one company file, and only an Administrator
of that file may give it; the redirect names the file (`businessId`, `businessName`) when
the authorize request said `prompt=consent`; `GET /accountright/` lists no files for such
keys; `/{cf_uri}/Company` has CompanyName, SerialNumber, ABNOrTFN, ABNBranch, ACN; every
API call carries `x-myobapi-key` and `x-myobapi-version: v2`.

Assumed, because MYOB does not publish it (each is a choice of this sandbox):
- Refresh tokens: MYOB publishes no lifetime. A third party reports that MYOB asks for
  re-authorisation once a year, so a grant ends 365 days after its consent whatever the
  refreshes (`grant_hard_lifetime`); until then its refresh token does not expire. Each
  refresh rotates the refresh token and the previous one stops working at once (no grace
  is documented, so none is given).
- The code lives 3 minutes (inside the published 2 to 5).
- `/{cf_uri}/Company` is allowed with `sme-company-file` or `sme-company-settings`;
  `/{cf_uri}/` with `sme-company-file`. Legacy `CompanyFile` and `la.global` are refused
  for this (new) key.
- API errors come as `{"Errors": [{"Name", "Message", "AdditionalDetails", "ErrorCode",
  "Severity"}]}` (the shape the pymyob SDK reads); an unknown or missing `x-myobapi-key` is
  403 `DeveloperInactive`; a version other than v2 is 400.
- Rate limits are not published; the often quoted 8 calls a second and 1,000,000 a day per
  API key are emulated, refused with 403 `RateLimitError` "Developer Over Qps".
- A non-Administrator is told so on the company file page and cannot continue.
- A file whose ABNOrTFN holds a tax file number (some sole traders' files) shows the TFN
  there, as MYOB's Company Information window allows.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from clientlink.sandbox.accounts import MYOB_BOOKKEEPER, SandboxApp, StaffUser
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.oauth import (
    ApiAuthError,
    Grant,
    OAuthProvider,
    SignInError,
    SignInTransaction,
    new_secret,
)
from clientlink.sandbox.seed import SeedOrg, format_abn

ACCESS_TOKEN_LIFETIME = timedelta(seconds=1200)
# Assumed (see the module docstring): a year from consent, no idle expiry before that.
GRANT_HARD_LIFETIME = timedelta(days=365)
CODE_LIFETIME = timedelta(minutes=3)
COMPANY_FILE_SCOPE = "sme-company-file"
COMPANY_SETTINGS_SCOPE = "sme-company-settings"
SME_SCOPES = frozenset(
    {
        "sme-banking",
        COMPANY_FILE_SCOPE,
        COMPANY_SETTINGS_SCOPE,
        "sme-contacts-customer",
        "sme-contacts-employee",
        "sme-contacts-personal",
        "sme-contacts-supplier",
        "sme-general-ledger",
        "sme-inventory",
        "sme-payroll",
        "sme-purchases",
        "sme-sales",
        "sme-timebilling",
    }
)
LEGACY_SCOPES = frozenset({"CompanyFile", "la.global"})
API_VERSION = "v2"

_BUSINESS_NAMESPACE = uuid.UUID("0b7c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d")
_USER_NAMESPACE = uuid.UUID("5e2a9c41-7d3b-4f60-8a1e-c9b2d4f6a803")
TFN_WEIGHTS = (1, 4, 3, 7, 5, 8, 6, 9, 10)


def business_id_of(org: SeedOrg) -> str:
    """The company file's GUID (MYOB's `businessId`), stable per business."""
    return str(uuid.uuid5(_BUSINESS_NAMESPACE, org.tenant_id))


def make_tfn(rng: random.Random) -> str:
    """A 9-digit tax file number that passes the ATO's weighted check (sum mod 11 == 0)."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        partial = sum(w * d for w, d in zip(TFN_WEIGHTS, digits, strict=False))
        for last in range(10):
            if (partial + TFN_WEIGHTS[8] * last) % 11 == 0:
                return "".join(map(str, [*digits, last]))


@dataclass
class CompanyFile:
    """What MYOB's Company Information window holds for one business's file."""

    business_id: str
    company_name: str
    serial_number: str
    abn_or_tfn: str
    abn_branch: str
    acn: str
    email: str
    phone: str
    overrides: dict[str, str] = field(default_factory=dict)


def company_file_for(org: SeedOrg) -> CompanyFile:
    """The company file of `org`: a few sole traders' files hold a TFN instead of an ABN."""
    rng = random.Random(org.tenant_id)
    holds_tfn = org.organisation_type == "SOLE_TRADER" and rng.random() < 0.5
    tfn = make_tfn(rng)
    abn_or_tfn = f"{tfn[:3]} {tfn[3:6]} {tfn[6:]}" if holds_tfn else format_abn(org.abn)
    acn = ""
    if org.organisation_type == "COMPANY":
        acn = org.abn[2:5] + " " + org.abn[5:8] + " " + org.abn[8:]
    return CompanyFile(
        business_id=business_id_of(org),
        company_name=org.name[:40],
        serial_number="61" + str(rng.randrange(10**9, 10**10)),
        abn_or_tfn=abn_or_tfn,
        abn_branch="001" if rng.random() < 0.2 else "",
        acn=acn,
        email=org.email,
        phone=org.phone,
    )


class MyobProvider(OAuthProvider):
    """The emulated secure.myob.com and the MYOB Business API's view of its grants."""

    name = "myob"
    stat_prefix = "myob."
    display_name = "MYOB"
    selects_one_company = True
    access_token_lifetime = ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime = GRANT_HARD_LIFETIME
    refresh_rotation_grace = timedelta()
    grant_hard_lifetime = GRANT_HARD_LIFETIME
    code_lifetime = CODE_LIFETIME

    def __init__(
        self,
        clock: SandboxClock,
        orgs: list[SeedOrg],
        apps: list[SandboxApp],
        users: list[StaffUser],
    ) -> None:
        # The bookkeeper is a MYOB user of every file and Administrator of none.
        bookkeeper = StaffUser(email=MYOB_BOOKKEEPER)
        known = {user.email.lower() for user in users}
        super().__init__(
            clock, orgs, apps, [*users, *([bookkeeper] if bookkeeper.email not in known else [])]
        )
        self.non_admins = {MYOB_BOOKKEEPER}
        # Company Information edits made at MYOB (admin API), by tenant id.
        self.edits: dict[str, dict[str, str]] = {}
        # Sign-ins whose authorize request said prompt=consent (by transaction id).
        self.consent_prompted: set[str] = set()

    # -- company files -----------------------------------------------------------------

    def company_id(self, org: SeedOrg) -> str:
        """Files are picked, and named on the redirect, by their GUID."""
        return business_id_of(org)

    def org_for_business(self, business_id: str) -> SeedOrg | None:
        return next((o for o in self.orgs.values() if business_id_of(o) == business_id), None)

    def company_file(self, org: SeedOrg) -> CompanyFile:
        """The file as it stands, with the edits made at MYOB."""
        file = company_file_for(org)
        edits = self.edits.get(org.tenant_id, {})
        file.company_name = edits.get("company_name", file.company_name)
        file.abn_or_tfn = edits.get("abn_or_tfn", file.abn_or_tfn)
        file.email = edits.get("email", file.email)
        return file

    def edit_company(self, business_id: str, changes: dict[str, str]) -> CompanyFile:
        """Change a file's Company Information (company_name, abn_or_tfn, email)."""
        org = self.org_for_business(business_id)
        if org is None:
            raise KeyError(business_id)
        unknown = set(changes) - {"company_name", "abn_or_tfn", "email"}
        if unknown:
            raise ValueError(f"unknown company fields: {', '.join(sorted(unknown))}")
        self.edits.setdefault(org.tenant_id, {}).update(changes)
        return self.company_file(org)

    def organisations_for(self, email: str) -> list[SeedOrg]:
        """The files `email` can open, sorted by name as MYOB's list shows them."""
        return sorted(super().organisations_for(email), key=lambda org: org.name.casefold())

    def realm_of(self, grant: Grant) -> str | None:
        """The one company file a MYOB grant covers (its businessId)."""
        (tenant_id,) = grant.tenant_ids
        return business_id_of(self.orgs[tenant_id])

    # -- sign-in -------------------------------------------------------------------------

    def select_organisations(self, txn: SignInTransaction, company_ids: list[str]) -> None:
        """One file, and only an Administrator of it may connect an app to it."""
        super().select_organisations(txn, company_ids)
        assert txn.user is not None
        if txn.user.lower() in self.non_admins:
            (tenant_id,) = txn.tenant_ids
            txn.tenant_ids = []
            txn.step = "organisations"
            raise SignInError(
                f"You're not an Administrator of {self.orgs[tenant_id].name}. Only an "
                "Administrator of a company file can give an app access to it: ask one to "
                "connect it, or to make you an Administrator."
            )

    def _redirect_params(self, txn: SignInTransaction) -> dict[str, str]:
        """businessId and businessName, only when the app asked with prompt=consent."""
        if txn.id not in self.consent_prompted:
            return {}
        self.consent_prompted.discard(txn.id)
        (tenant_id,) = txn.tenant_ids
        org = self.orgs[tenant_id]
        return {
            "businessId": business_id_of(org),
            "businessName": self.company_file(org).company_name,
        }

    # -- tokens ------------------------------------------------------------------------

    def user_uid(self, email: str) -> str:
        return str(uuid.uuid5(_USER_NAMESPACE, email.lower()))

    def _token_response(self, grant: Grant) -> dict[str, object]:
        """MYOB's body: expires_in is a string, and the user who signed in comes along."""
        refresh = self._new_refresh_token(grant)
        access = self._new_access_token(grant, new_secret())
        return {
            "access_token": access.value,
            "token_type": "bearer",
            "expires_in": str(int(ACCESS_TOKEN_LIFETIME.total_seconds())),
            "refresh_token": refresh.value,
            "scope": grant.scope,
            "user": {"uid": self.user_uid(grant.user), "username": grant.user},
        }

    def authenticate_bearer(self, authorization: str | None) -> Grant:
        """Resolve a bearer header to its live grant, or raise ApiAuthError (401)."""
        token = self.bearer_token(authorization)
        if token is None or token.revoked:
            raise ApiAuthError(401, "OAuthTokenIsInvalid", "The supplied OAuth token is not valid")
        if self.clock.now() >= token.expires_at:
            raise ApiAuthError(401, "OAuthTokenIsInvalid", "The supplied OAuth token has expired")
        return self.grants[token.grant_id]
