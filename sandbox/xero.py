"""The Xero-like provider's world: sign-in transactions, codes, grants, tokens, connections.

This module holds state and rules only; `xero_identity.py` and `xero_api.py` turn HTTP into
calls on `XeroProvider`. Lifetimes follow Xero's published numbers (access 30 min, refresh
60 days idle, 30-minute grace for the previous refresh token) and the OAuth RFCs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyotp

from clientlink.sandbox.accounts import SandboxApp, StaffUser
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.seed import SeedOrg

ACCESS_TOKEN_LIFETIME = timedelta(seconds=1800)
REFRESH_TOKEN_IDLE_LIFETIME = timedelta(days=60)
REFRESH_TOKEN_GRACE = timedelta(minutes=30)
CODE_LIFETIME = timedelta(minutes=10)
SIGN_IN_LIFETIME = timedelta(minutes=30)
OFFLINE_ACCESS = "offline_access"

_VERIFIER_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# An S256 challenge is the unpadded base64url of a SHA-256 digest: always 43 characters.
_CHALLENGE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")

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


class ApiAuthError(Exception):
    """A bearer token the API refuses; `detail` is Xero's problem `Detail` text."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def s256_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def xero_datetime(moment: datetime) -> str:
    """Format like Xero's connection dates: `2019-12-07T18:46:19.5165400` (7 digits, no Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def with_query(url: str, params: dict[str, str]) -> str:
    """Append `params` to `url`, keeping any query the registered redirect URI already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _new_secret() -> str:
    # 32 bytes of randomness, URL-safe so tokens survive forms and headers unescaped.
    return secrets.token_urlsafe(32)


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
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, grant.user)),
        "xero_userid": str(uuid.uuid5(uuid.NAMESPACE_DNS, grant.user)),
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
class SignInTransaction:
    """One person's walk through the authorize pages, keyed by a hidden form field."""

    id: str
    app: SandboxApp
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str
    created_at: datetime
    step: SignInStep = "sign_in"
    user: str | None = None
    tenant_ids: list[str] = field(default_factory=list)


@dataclass
class AuthorizationCode:
    """An issued code, bound to its client, redirect URI and PKCE challenge."""

    code: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    user: str
    scope: str
    tenant_ids: list[str]
    auth_event_id: str
    issued_at: datetime
    used: bool = False
    grant_id: str | None = None


@dataclass
class Grant:
    """What one code exchange created: a token family for one user and app."""

    grant_id: str
    user: str
    client_id: str
    scope: str
    auth_event_id: str
    tenant_ids: list[str]
    created_at: datetime
    revoked: bool = False
    refresh_token: str | None = None


@dataclass
class IssuedToken:
    """An access or refresh token as the sandbox remembers it."""

    value: str
    kind: TokenKind
    grant_id: str
    issued_at: datetime
    expires_at: datetime
    revoked: bool = False
    rotated_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """One of active, rotated, revoked, expired (revoked wins, then expiry)."""
        if self.revoked:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        if self.rotated_at is not None:
            if now >= self.rotated_at + REFRESH_TOKEN_GRACE:
                return "expired"
            return "rotated"
        return "active"


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


class XeroProvider:
    """The emulated Xero identity server and API data, all in memory."""

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
        self.connections: dict[str, Connection] = {}

    # -- the sign-in pages -------------------------------------------------------------

    def begin_sign_in(
        self, app: SandboxApp, redirect_uri: str, scope: str, state: str | None, challenge: str
    ) -> SignInTransaction:
        """Start a sign-in transaction for an already validated authorize request."""
        self._forget_stale_transactions()
        txn = SignInTransaction(
            id=_new_secret(),
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

    def select_organisations(self, txn: SignInTransaction, tenant_ids: list[str]) -> None:
        """Record the ticked organisations; at least one, all reachable by the user."""
        assert txn.user is not None
        if not tenant_ids:
            raise SignInError("Select at least one organisation to connect.")
        reachable = {org.tenant_id for org in self.organisations_for(txn.user)}
        unknown = [tid for tid in tenant_ids if tid not in reachable]
        if unknown:
            raise SignInError("You don't have access to one of the selected organisations.")
        # dict.fromkeys de-duplicates while keeping the order the person ticked them in.
        txn.tenant_ids = list(dict.fromkeys(tenant_ids))
        txn.step = "consent"

    def finish_consent(self, txn: SignInTransaction, allow: bool) -> str:
        """Allow (connect tenants, issue a code) or cancel; return the redirect URL."""
        del self.transactions[txn.id]
        extra = {"state": txn.state} if txn.state is not None else {}
        if not allow:
            return with_query(
                txn.redirect_uri,
                {"error": "access_denied", "error_description": "The user denied access"} | extra,
            )
        assert txn.user is not None
        auth_event_id = str(uuid.uuid4())
        self._connect(txn.user, txn.app.client_id, txn.tenant_ids, auth_event_id)
        code = AuthorizationCode(
            code=_new_secret(),
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
        return with_query(txn.redirect_uri, {"code": code.code} | extra)

    def _connect(
        self, user: str, client_id: str, tenant_ids: list[str], auth_event_id: str
    ) -> None:
        now = self.clock.now()
        existing = {
            conn.tenant_id: conn
            for conn in self.connections.values()
            if conn.user == user and conn.client_id == client_id
        }
        for tenant_id in tenant_ids:
            conn = existing.get(tenant_id)
            if conn is None:
                conn = Connection(
                    id=str(uuid.uuid4()),
                    user=user,
                    client_id=client_id,
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

    def _forget_stale_transactions(self) -> None:
        cutoff = self.clock.now() - SIGN_IN_LIFETIME
        for txn_id in [t.id for t in self.transactions.values() if t.created_at < cutoff]:
            del self.transactions[txn_id]

    # -- the token endpoint -------------------------------------------------------------

    def exchange_code(
        self, app: SandboxApp, code_value: str, redirect_uri: str, verifier: str
    ) -> dict[str, object]:
        """The `authorization_code` grant; returns the token response body."""
        if not _VERIFIER_PATTERN.match(verifier):
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
                self.revoke_grant(code.grant_id, remove_connections=False)
            raise OAuthError("invalid_grant", "The authorization code has already been used")
        # Any exchange attempt burns the code, so a wrong guess can't be retried.
        code.used = True
        if self.clock.now() >= code.issued_at + CODE_LIFETIME:
            raise OAuthError("invalid_grant", "The authorization code has expired")
        if redirect_uri != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorize request")
        if not secrets.compare_digest(s256_challenge(verifier), code.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        grant = Grant(
            grant_id=str(uuid.uuid4()),
            user=code.user,
            client_id=app.client_id,
            scope=code.scope,
            auth_event_id=code.auth_event_id,
            tenant_ids=list(code.tenant_ids),
            created_at=self.clock.now(),
        )
        self.grants[grant.grant_id] = grant
        code.grant_id = grant.grant_id
        return self._issue(grant)

    def refresh(self, app: SandboxApp, refresh_value: str) -> dict[str, object]:
        """The `refresh_token` grant: rotate, honouring the previous token's grace period."""
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
            raise OAuthError("invalid_grant", "The refresh token has expired")
        # Within the grace a lost response can be recovered: a fresh pair replaces whatever
        # the grant currently holds. The grace clock starts at the first rotation only.
        for value in (refresh_value, grant.refresh_token):
            previous = self.tokens.get(value) if value else None
            if previous is not None and previous.rotated_at is None:
                previous.rotated_at = now
        return self._issue(grant)

    def _issue(self, grant: Grant) -> dict[str, object]:
        now = self.clock.now()
        access = IssuedToken(
            value=_access_token_jwt(grant, now),
            kind="access",
            grant_id=grant.grant_id,
            issued_at=now,
            expires_at=now + ACCESS_TOKEN_LIFETIME,
        )
        self.tokens[access.value] = access
        body: dict[str, object] = {
            "access_token": access.value,
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "token_type": "Bearer",
        }
        if OFFLINE_ACCESS in grant.scope.split():
            refresh = IssuedToken(
                value=_new_secret(),
                kind="refresh",
                grant_id=grant.grant_id,
                issued_at=now,
                expires_at=now + REFRESH_TOKEN_IDLE_LIFETIME,
            )
            self.tokens[refresh.value] = refresh
            grant.refresh_token = refresh.value
            body["refresh_token"] = refresh.value
        body["scope"] = grant.scope
        return body

    # -- revocation -------------------------------------------------------------------

    def revoke_token(self, app: SandboxApp, value: str) -> None:
        """RFC 7009 revocation; unknown tokens and other clients' tokens are ignored."""
        token = self.tokens.get(value)
        if token is None:
            return
        grant = self.grants[token.grant_id]
        if grant.client_id != app.client_id:
            return
        if token.kind == "refresh":
            # Xero: revoking the refresh token ends the grant and removes the connections.
            self.revoke_grant(grant.grant_id, remove_connections=True)
        else:
            token.revoked = True

    def revoke_grant(self, grant_id: str, *, remove_connections: bool) -> Grant:
        """Kill every token of a grant; optionally remove the user's connections for the app."""
        grant = self.grants[grant_id]
        grant.revoked = True
        for token in self.tokens.values():
            if token.grant_id == grant_id:
                token.revoked = True
        if remove_connections:
            self.remove_connections(user=grant.user, client_id=grant.client_id)
        return grant

    def expire_refresh(self, grant_id: str) -> Grant:
        """Make the grant's current refresh token (and any in grace) expired as of now."""
        grant = self.grants[grant_id]
        now = self.clock.now()
        for token in self.tokens.values():
            if token.grant_id == grant_id and token.kind == "refresh":
                token.expires_at = min(token.expires_at, now)
        return grant

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

    # -- the API -----------------------------------------------------------------------

    def authenticate_bearer(self, authorization: str | None) -> Grant:
        """Resolve an `Authorization: Bearer` header to its live grant or raise ApiAuthError."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.kind != "access" or token.revoked:
            raise ApiAuthError(401, "Unauthorized", "AuthenticationUnsuccessful")
        if self.clock.now() >= token.expires_at:
            expired_at = token.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            raise ApiAuthError(401, "Unauthorized", f"TokenExpired: token expired at {expired_at}")
        return self.grants[token.grant_id]

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

    # -- admin views -------------------------------------------------------------------

    def grant_json(self, grant: Grant) -> dict[str, object]:
        """A grant as the admin API lists it."""
        refresh = self.tokens.get(grant.refresh_token) if grant.refresh_token else None
        return {
            "grant_id": grant.grant_id,
            "user": grant.user,
            "client_id": grant.client_id,
            "auth_event_id": grant.auth_event_id,
            "tenant_ids": list(grant.tenant_ids),
            "scope": grant.scope,
            "revoked": grant.revoked,
            "created_at": grant.created_at.isoformat(),
            "refresh_expires_at": refresh.expires_at.isoformat() if refresh else None,
        }

    def token_json(self, token: IssuedToken) -> dict[str, object]:
        """A token as the admin API lists it (the value included: it is a rehearsal)."""
        return {
            "token": token.value,
            "kind": token.kind,
            "grant_id": token.grant_id,
            "issued_at": token.issued_at.isoformat(),
            "expires_at": token.expires_at.isoformat(),
            "state": token.state(self.clock.now()),
        }
