"""What every emulated OAuth2 provider shares: sign-in with TOTP, codes, grants, tokens.

`OAuthProvider` holds the state and the RFC rules (6749 single-use codes, 7636 PKCE S256,
rotating refresh tokens with a grace for the previous one, 7009 revocation); a provider
subclass (`xero.py`, `quickbooks.py`) sets the lifetimes and supplies what differs: how a
company is named on the selection page, what consent connects, the token response body, how
revocation reaches the grant, and the API's answers to bad bearer tokens.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyotp

from clientlink.sandbox.accounts import SandboxApp, StaffUser
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.oidc import registered_claims, signer
from clientlink.sandbox.seed import SeedOrg

CODE_LIFETIME = timedelta(minutes=10)
SIGN_IN_LIFETIME = timedelta(minutes=30)

_VERIFIER_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

SignInStep = Literal["sign_in", "authenticator", "organisations", "consent"]
TokenKind = Literal["access", "refresh"]


class OAuthError(Exception):
    """An RFC 6749 error the token or revocation endpoint turns into a JSON response."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class SignInError(Exception):
    """A problem with a step of the sign-in pages; the message is shown on the page."""


class AccessRefused(SignInError):
    """The person may not allow what was asked (a business they cannot reach): the sign-in
    ends on a page saying so."""


class ApiAuthError(Exception):
    """A bearer token the API refuses: HTTP status, the provider's title and detail text."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def s256_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def with_query(url: str, params: dict[str, str]) -> str:
    """Append `params` to `url`, keeping any query the registered redirect URI already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def new_secret() -> str:
    """32 random bytes, URL-safe so codes and tokens survive forms and headers unescaped."""
    return secrets.token_urlsafe(32)


@dataclass
class SignInTransaction:
    """One person's walk through the authorize pages, keyed by a hidden form field."""

    id: str
    app: SandboxApp
    redirect_uri: str
    scope: str
    state: str | None
    # None when the app sent no PKCE challenge (allowed for QuickBooks' confidential apps).
    code_challenge: str | None
    created_at: datetime
    step: SignInStep = "sign_in"
    user: str | None = None
    tenant_ids: list[str] = field(default_factory=list)


@dataclass
class AuthorizationCode:
    """An issued code, bound to its client, redirect URI and PKCE challenge (if any)."""

    code: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    user: str
    scope: str
    tenant_ids: list[str]
    auth_event_id: str
    issued_at: datetime
    used: bool = False
    grant_id: str | None = None


@dataclass
class Grant:
    """What one code exchange created: a token family for one user and app.

    `hard_expires_at` is a cap no refresh can pass (QuickBooks' 5 years); None means none.
    """

    grant_id: str
    user: str
    client_id: str
    scope: str
    auth_event_id: str
    tenant_ids: list[str]
    created_at: datetime
    hard_expires_at: datetime | None = None
    revoked: bool = False
    refresh_token: str | None = None


@dataclass
class IssuedToken:
    """An access or refresh token as the sandbox remembers it.

    A rotated refresh token keeps working for `rotation_grace` after its first rotation.
    """

    value: str
    kind: TokenKind
    grant_id: str
    issued_at: datetime
    expires_at: datetime
    rotation_grace: timedelta = timedelta()
    revoked: bool = False
    rotated_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """One of active, rotated, revoked, expired (revoked wins, then expiry)."""
        if self.revoked:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        if self.rotated_at is not None:
            if now >= self.rotated_at + self.rotation_grace:
                return "expired"
            return "rotated"
        return "active"


class OAuthProvider(ABC):
    """One emulated identity server and its API's view of grants, all in memory."""

    # "xero" or "quickbooks": the admin API's `provider` field and fault rules' filter.
    name: ClassVar[str]
    # Prefix for GET /_sandbox/stats keys; Xero's stay unprefixed as they always were.
    stat_prefix: ClassVar[str] = ""
    # What the sign-in pages say the person is signing in to.
    display_name: ClassVar[str]
    # QuickBooks grants one company per consent (radio buttons); Xero several (checkboxes).
    selects_one_company: ClassVar[bool] = False
    access_token_lifetime: ClassVar[timedelta]
    refresh_token_lifetime: ClassVar[timedelta]
    refresh_rotation_grace: ClassVar[timedelta]
    grant_hard_lifetime: ClassVar[timedelta | None] = None
    # How long a refresh token's value is handed out again before a refresh rotates it
    # (Intuit: about 24 hours); None rotates on every refresh (Xero).
    refresh_value_lifetime: ClassVar[timedelta | None] = None
    # Whether a refresh_token grant's response carries a new id_token too.
    id_token_on_refresh: ClassVar[bool] = False

    def __init__(
        self,
        clock: SandboxClock,
        orgs: list[SeedOrg],
        apps: list[SandboxApp],
        users: list[StaffUser],
    ) -> None:
        self.clock = clock
        self.orgs = {org.tenant_id: org for org in orgs}
        self.apps = {app.client_id: app for app in apps}
        self.users = {user.email.lower(): user for user in users}
        self.transactions: dict[str, SignInTransaction] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, IssuedToken] = {}

    # -- what a provider supplies --------------------------------------------------------

    def company_id(self, org: SeedOrg) -> str:
        """The id the selection page posts for `org` (Xero's tenant id unless overridden)."""
        return org.tenant_id

    def _on_consent(self, txn: SignInTransaction, auth_event_id: str) -> None:
        """What allowing access connects, before the code is issued (nothing by default)."""
        return None

    def _redirect_params(self, txn: SignInTransaction) -> dict[str, str]:
        """Extra query parameters on the code redirect, after `code` and `state`."""
        return {}

    @abstractmethod
    def _token_response(self, grant: Grant) -> dict[str, object]:
        """Issue the grant's next tokens and return the token endpoint's JSON body."""

    def _disconnect(self, grant: Grant) -> None:
        """Undo what consent connected when the user revokes the grant (nothing by default)."""
        return None

    def realm_of(self, grant: Grant) -> str | None:
        """The single company a grant is tied to, for providers that tie it to one."""
        return None

    def _id_token_claims(self, grant: Grant, issuer: str) -> dict[str, object]:
        """The id_token's claims when `openid` was granted (registered ones by default)."""
        return registered_claims(
            issuer=issuer, audience=grant.client_id, user=grant.user, now=self.clock.now()
        )

    def _with_id_token(
        self, grant: Grant, body: dict[str, object], issuer: str | None
    ) -> dict[str, object]:
        if issuer is not None and "openid" in grant.scope.split():
            body["id_token"] = signer().sign(self._id_token_claims(grant, issuer))
        return body

    # -- the sign-in pages -------------------------------------------------------------

    def begin_sign_in(
        self,
        app: SandboxApp,
        redirect_uri: str,
        scope: str,
        state: str | None,
        challenge: str | None,
    ) -> SignInTransaction:
        """Start a sign-in transaction for an already validated authorize request."""
        self._forget_stale_transactions()
        txn = SignInTransaction(
            id=new_secret(),
            app=app,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            code_challenge=challenge,
            created_at=self.clock.now(),
        )
        self.transactions[txn.id] = txn
        return txn

    def transaction(self, txn_id: str, step: SignInStep) -> SignInTransaction:
        """Return the live transaction at `step`, or raise SignInError for a stale one."""
        txn = self.transactions.get(txn_id)
        if txn is None or self.clock.now() >= txn.created_at + SIGN_IN_LIFETIME:
            raise SignInError("This sign-in has expired. Start again from the app.")
        if txn.step != step:
            raise SignInError("This page is out of date. Start again from the app.")
        return txn

    def sign_in(self, txn: SignInTransaction, email: str, password: str) -> None:
        """Check email and password; on success move on to the authenticator step."""
        user = self.users.get(email.strip().lower())
        if user is None or not secrets.compare_digest(user.password, password):
            raise SignInError("Your email or password is incorrect.")
        txn.user = user.email
        txn.step = "authenticator"

    def current_totp(self, email: str) -> str:
        """The authenticator code for `email` at the sandbox's time (shown as a hint)."""
        return pyotp.TOTP(self.users[email.lower()].totp_secret).at(self.clock.now())

    def verify_authenticator(self, txn: SignInTransaction, code: str) -> None:
        """Check the TOTP code against the sandbox clock (one step of drift either way)."""
        assert txn.user is not None
        totp = pyotp.TOTP(self.users[txn.user.lower()].totp_secret)
        code = code.strip().replace(" ", "")
        if not (code.isdigit() and len(code) == 6) or not totp.verify(
            code, for_time=self.clock.now(), valid_window=1
        ):
            raise SignInError("That code didn't work. Check your authenticator app and retry.")
        txn.step = "organisations"

    def organisations_for(self, email: str) -> list[SeedOrg]:
        """The organisations `email` may connect, in seed order."""
        allowed = self.users[email.lower()].tenant_ids
        return [org for org in self.orgs.values() if allowed is None or org.tenant_id in allowed]

    def select_organisations(self, txn: SignInTransaction, company_ids: list[str]) -> None:
        """Record the chosen companies (by `company_id`), all reachable by the user."""
        assert txn.user is not None
        if self.selects_one_company and len(company_ids) != 1:
            raise SignInError("Select one company to connect.")
        if not company_ids:
            raise SignInError("Select at least one organisation to connect.")
        reachable = {
            self.company_id(org): org.tenant_id for org in self.organisations_for(txn.user)
        }
        if any(cid not in reachable for cid in company_ids):
            raise SignInError("You don't have access to one of the selected organisations.")
        # dict.fromkeys de-duplicates while keeping the order the person ticked them in.
        txn.tenant_ids = list(dict.fromkeys(reachable[cid] for cid in company_ids))
        txn.step = "consent"

    def finish_consent(self, txn: SignInTransaction, allow: bool) -> str:
        """Allow (connect, issue a code) or cancel; return the redirect URL."""
        del self.transactions[txn.id]
        extra = {"state": txn.state} if txn.state is not None else {}
        if not allow:
            return with_query(
                txn.redirect_uri,
                {"error": "access_denied", "error_description": "The user denied access"} | extra,
            )
        assert txn.user is not None
        auth_event_id = str(uuid.uuid4())
        self._on_consent(txn, auth_event_id)
        code = AuthorizationCode(
            code=new_secret(),
            client_id=txn.app.client_id,
            redirect_uri=txn.redirect_uri,
            code_challenge=txn.code_challenge,
            user=txn.user,
            scope=txn.scope,
            tenant_ids=list(txn.tenant_ids),
            auth_event_id=auth_event_id,
            issued_at=self.clock.now(),
        )
        self.codes[code.code] = code
        params = {"code": code.code} | extra | self._redirect_params(txn)
        return with_query(txn.redirect_uri, params)

    def _forget_stale_transactions(self) -> None:
        cutoff = self.clock.now() - SIGN_IN_LIFETIME
        for txn_id in [t.id for t in self.transactions.values() if t.created_at < cutoff]:
            del self.transactions[txn_id]

    # -- the token endpoint -------------------------------------------------------------

    def exchange_code(
        self,
        app: SandboxApp,
        code_value: str,
        redirect_uri: str,
        verifier: str | None,
        *,
        issuer: str | None = None,
    ) -> dict[str, object]:
        """The `authorization_code` grant; returns the token response body.

        The verifier is checked only when the authorize request carried a challenge. With
        an `issuer` (the identity server's URL) and `openid` granted, an id_token is added.
        """
        if verifier is not None and not _VERIFIER_PATTERN.match(verifier):
            raise OAuthError(
                "invalid_request",
                "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]",
            )
        code = self.codes.get(code_value)
        if code is None or code.client_id != app.client_id:
            raise OAuthError("invalid_grant", "The authorization code is invalid")
        if code.used:
            # RFC 6749 §4.1.2: a replayed code may mean it leaked, so kill what it produced.
            if code.grant_id is not None:
                self.revoke_grant(code.grant_id, disconnect=False)
            raise OAuthError("invalid_grant", "The authorization code has already been used")
        # Any exchange attempt burns the code, so a wrong guess can't be retried.
        code.used = True
        if self.clock.now() >= code.issued_at + CODE_LIFETIME:
            raise OAuthError("invalid_grant", "The authorization code has expired")
        if redirect_uri != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorize request")
        if code.code_challenge is not None:
            if verifier is None:
                raise OAuthError("invalid_grant", "code_verifier is required (PKCE was used)")
            if not secrets.compare_digest(s256_challenge(verifier), code.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        now = self.clock.now()
        hard_end = now + self.grant_hard_lifetime if self.grant_hard_lifetime else None
        grant = Grant(
            grant_id=str(uuid.uuid4()),
            user=code.user,
            client_id=app.client_id,
            scope=code.scope,
            auth_event_id=code.auth_event_id,
            tenant_ids=list(code.tenant_ids),
            created_at=now,
            hard_expires_at=hard_end,
        )
        self.grants[grant.grant_id] = grant
        code.grant_id = grant.grant_id
        return self._with_id_token(grant, self._token_response(grant), issuer)

    def refresh(
        self, app: SandboxApp, refresh_value: str, *, issuer: str | None = None
    ) -> dict[str, object]:
        """The `refresh_token` grant: rotate, honouring the previous token's grace period.

        Where a provider keeps a refresh token's value for a while (`refresh_value_lifetime`)
        the current token is handed out again, its rolling lifetime renewed.
        """
        token = self.tokens.get(refresh_value)
        if token is None or token.kind != "refresh":
            raise OAuthError("invalid_grant", "The refresh token is invalid")
        grant = self.grants[token.grant_id]
        if grant.client_id != app.client_id:
            raise OAuthError("invalid_grant", "The refresh token was issued to another client")
        now = self.clock.now()
        state = token.state(now)
        if state == "revoked" or grant.revoked:
            raise OAuthError("invalid_grant", "The grant has been revoked")
        if state == "expired":
            if grant.hard_expires_at is not None and now >= grant.hard_expires_at:
                raise OAuthError(
                    "invalid_grant",
                    "The grant reached its hard expiry; the user must connect the app again",
                )
            raise OAuthError("invalid_grant", "The refresh token has expired")
        # Within the grace a lost response can be recovered: a fresh pair replaces whatever
        # the grant currently holds. The grace clock starts at the first rotation only.
        kept = self._kept_refresh_token(grant)
        for value in (refresh_value, grant.refresh_token):
            previous = self.tokens.get(value) if value else None
            if previous is not None and previous is not kept and previous.rotated_at is None:
                previous.rotated_at = now
        body = self._token_response(grant)
        return self._with_id_token(grant, body, issuer) if self.id_token_on_refresh else body

    def _kept_refresh_token(self, grant: Grant) -> IssuedToken | None:
        """The grant's current refresh token if its value is still handed out again."""
        if self.refresh_value_lifetime is None or not grant.refresh_token:
            return None
        current = self.tokens.get(grant.refresh_token)
        now = self.clock.now()
        if current is None or current.state(now) != "active":
            return None
        return current if now < current.issued_at + self.refresh_value_lifetime else None

    def _new_access_token(self, grant: Grant, value: str) -> IssuedToken:
        now = self.clock.now()
        access = IssuedToken(
            value=value,
            kind="access",
            grant_id=grant.grant_id,
            issued_at=now,
            expires_at=now + self.access_token_lifetime,
        )
        self.tokens[access.value] = access
        return access

    def _new_refresh_token(self, grant: Grant) -> IssuedToken:
        """A refresh token for the rolling lifetime, never past the grant's hard end.

        A value the provider still keeps is renewed and returned instead of a new one.
        """
        now = self.clock.now()
        expires_at = now + self.refresh_token_lifetime
        if grant.hard_expires_at is not None:
            expires_at = min(expires_at, grant.hard_expires_at)
        kept = self._kept_refresh_token(grant)
        if kept is not None:
            kept.expires_at = max(kept.expires_at, expires_at)
            return kept
        refresh = IssuedToken(
            value=new_secret(),
            kind="refresh",
            grant_id=grant.grant_id,
            issued_at=now,
            expires_at=expires_at,
            rotation_grace=self.refresh_rotation_grace,
        )
        self.tokens[refresh.value] = refresh
        grant.refresh_token = refresh.value
        return refresh

    # -- revocation and admin changes ------------------------------------------------

    def revoke_grant(self, grant_id: str, *, disconnect: bool) -> Grant:
        """Kill every token of a grant; with `disconnect`, also undo what consent connected."""
        grant = self.grants[grant_id]
        grant.revoked = True
        for token in self.tokens.values():
            if token.grant_id == grant_id:
                token.revoked = True
        if disconnect:
            self._disconnect(grant)
        return grant

    def expire_refresh(self, grant_id: str) -> Grant:
        """Make the grant's current refresh token (and any in grace) expired as of now."""
        return self._cap_refresh_tokens(grant_id, self.clock.now())

    def set_hard_end(self, grant_id: str, moment: datetime) -> Grant:
        """Move the grant's hard end; its refresh tokens end there at the latest."""
        grant = self.grants[grant_id]
        grant.hard_expires_at = moment
        return self._cap_refresh_tokens(grant_id, moment)

    def _cap_refresh_tokens(self, grant_id: str, moment: datetime) -> Grant:
        for token in self.tokens.values():
            if token.grant_id == grant_id and token.kind == "refresh":
                token.expires_at = min(token.expires_at, moment)
        return self.grants[grant_id]

    # -- the API -----------------------------------------------------------------------

    def bearer_token(self, authorization: str | None) -> IssuedToken | None:
        """The access token an `Authorization: Bearer` header names, in whatever state."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        return token if token is not None and token.kind == "access" else None

    # -- admin views -------------------------------------------------------------------

    def grant_json(self, grant: Grant) -> dict[str, object]:
        """A grant as the admin API lists it."""
        refresh = self.tokens.get(grant.refresh_token) if grant.refresh_token else None
        hard_end = grant.hard_expires_at
        return {
            "grant_id": grant.grant_id,
            "provider": self.name,
            "user": grant.user,
            "client_id": grant.client_id,
            "auth_event_id": grant.auth_event_id,
            "tenant_ids": list(grant.tenant_ids),
            "realm_id": self.realm_of(grant),
            "scope": grant.scope,
            "revoked": grant.revoked,
            "created_at": grant.created_at.isoformat(),
            "refresh_expires_at": refresh.expires_at.isoformat() if refresh else None,
            "hard_expires_at": hard_end.isoformat() if hard_end else None,
        }

    def token_json(self, token: IssuedToken) -> dict[str, object]:
        """A token as the admin API lists it (the value included: it is a rehearsal)."""
        return {
            "token": token.value,
            "provider": self.name,
            "kind": token.kind,
            "grant_id": token.grant_id,
            "issued_at": token.issued_at.isoformat(),
            "expires_at": token.expires_at.isoformat(),
            "state": token.state(self.clock.now()),
        }
