"""Grants: stored token sets, opened through the vault, refreshed one at a time.

Refresh tokens rotate, so a refresh and the write of its result happen under one
per-grant lock, the lock holder re-reads the grant first (someone may have just
refreshed it), and the new tokens are committed before anything uses them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from clientlink.common.protocol import ConnectionStatus
from clientlink.common.timeutil import from_iso
from clientlink.daemon.clock import Clock
from clientlink.daemon.datafiles import DiskFull
from clientlink.daemon.providers import (
    AccessTokenRejected,
    ProviderAdapter,
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
    TenantForbidden,
    TokenSet,
)
from clientlink.daemon.store import GrantRow, Store, TenantRow
from clientlink.daemon.vault import Vault

log = logging.getLogger(__name__)

T = TypeVar("T")

ACCESS_MARGIN = timedelta(seconds=60)
"""An access token this close to its end is refreshed before use."""


class GrantRevoked(Exception):
    """The provider no longer honours this grant: its clients need re-authorising."""

    def __init__(self, grant_id: int, reason: str) -> None:
        super().__init__(reason)
        self.grant_id = grant_id
        self.reason = reason


class FailureKind(StrEnum):
    """What a provider failure means: the one vocabulary every caller decides by."""

    GRANT_REFUSED = "grant_refused"  # the grant is gone: its clients need re-authorising
    TENANT_GONE = "tenant_gone"  # one business was disconnected from the app
    APP_CREDENTIALS = "app_credentials"  # the app's client id or secret is wrong
    RATE_LIMITED = "rate_limited"  # wait as the provider says; nothing else changes
    OUTAGE = "outage"  # network, timeout, 5xx: try again later
    REQUEST_REFUSED = "request_refused"  # a request (not the grant) was refused


GRANT_ERRORS = frozenset({"invalid_grant", "invalid_scope"})
"""Token-endpoint errors that end a grant (RFC 6749 5.2)."""
APP_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
"""Token-endpoint errors about the app's registration or credentials, not the grant."""


@dataclass(frozen=True)
class ProviderFailure:
    """A classified failure: its kind, the sentence to show, and how long to wait."""

    kind: FailureKind
    reason: str
    retry_after: float | None = None

    @property
    def status(self) -> ConnectionStatus:
        """The connection status this failure shows (transient ones only past a threshold)."""
        if self.kind in (FailureKind.GRANT_REFUSED, FailureKind.TENANT_GONE):
            return ConnectionStatus.NEEDS_REAUTH
        return ConnectionStatus.ERROR

    @property
    def transient(self) -> bool:
        """Not a verdict on the connection: retry, and change no status yet."""
        return self.kind in (FailureKind.OUTAGE, FailureKind.RATE_LIMITED)


def classify_failure(exc: BaseException) -> ProviderFailure | None:
    """What a provider failure means; None for an exception that is not one.

    The one place that decides: the watcher, client checks, sign-ins and jobs all ask it.
    A wrong app secret is the app's problem (``error``, fix the credentials), never
    ``needs_reauth`` for every client.
    """
    if isinstance(exc, GrantRevoked):
        return ProviderFailure(FailureKind.GRANT_REFUSED, exc.reason)
    if isinstance(exc, RateLimited):
        return ProviderFailure(FailureKind.RATE_LIMITED, str(exc), exc.retry_after)
    if isinstance(exc, ProviderUnavailable):
        return ProviderFailure(FailureKind.OUTAGE, str(exc))
    if isinstance(exc, TenantForbidden):
        return ProviderFailure(FailureKind.TENANT_GONE, str(exc))
    if isinstance(exc, AccessTokenRejected):
        # Refused again right after a refresh: the grant no longer works.
        return ProviderFailure(FailureKind.GRANT_REFUSED, str(exc))
    if isinstance(exc, ProviderRefused):
        if exc.error in GRANT_ERRORS:
            return ProviderFailure(FailureKind.GRANT_REFUSED, str(exc))
        if exc.error in APP_ERRORS:
            return ProviderFailure(FailureKind.APP_CREDENTIALS, str(exc))
        return ProviderFailure(FailureKind.REQUEST_REFUSED, str(exc))
    if isinstance(exc, ProviderError):
        return ProviderFailure(FailureKind.REQUEST_REFUSED, str(exc))
    return None


class Grants:
    """Creates, opens and refreshes grants."""

    def __init__(
        self, store: Store, vault: Vault, adapters: dict[str, ProviderAdapter], clock: Clock
    ) -> None:
        self._store = store
        self._vault = vault
        self._adapters = adapters
        self._clock = clock
        self._locks: dict[int, asyncio.Lock] = {}
        # Opened token sets, keyed by grant and the ciphertext they came from: a bulk job
        # makes hundreds of calls on one grant, and each would otherwise decrypt it again.
        self._opened: dict[int, tuple[bytes, TokenSet]] = {}

    def _lock(self, grant_id: int) -> asyncio.Lock:
        return self._locks.setdefault(grant_id, asyncio.Lock())

    async def create(
        self,
        provider: str,
        tokens: TokenSet,
        tenants: list[TenantRow],
        auth_event_id: str | None,
        actor: str,
        business: str | None = None,
        provider_user: dict[str, str | None] | None = None,
    ) -> int:
        """Store a new grant (tokens sealed by the vault), the tenants it reaches and who
        signed in at the provider."""
        uid = secrets.token_hex(16)
        return await self._store.insert_grant(
            uid=uid,
            provider=provider,
            auth_event_id=auth_event_id,
            token_ciphertext=self._vault.encrypt(tokens.secret_json(), _context(uid)),
            access_expires_at=tokens.access_expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
            hard_expires_at=tokens.hard_expires_at,
            authorised_by=actor,
            now=self._clock.now(),
            tenants=tenants,
            business=business,
            provider_user=provider_user,
        )

    async def tokens(self, grant_id: int) -> tuple[GrantRow, TokenSet]:
        """The grant and its opened tokens."""
        grant = await self._store.grant_for_tokens(grant_id)
        if grant is None:
            raise GrantRevoked(grant_id, "the authorisation is no longer stored")
        return grant, self._open(grant)

    def _open(self, grant: GrantRow) -> TokenSet:
        cached = self._opened.get(grant.id)
        if cached is not None and cached[0] == grant.token_ciphertext:
            return cached[1]
        plaintext = self._vault.decrypt(grant.token_ciphertext, _context(grant.uid))
        access_expires_at = from_iso(grant.access_expires_at)
        assert access_expires_at is not None
        tokens = TokenSet.from_secret_json(
            plaintext,
            access_expires_at=access_expires_at,
            refresh_expires_at=from_iso(grant.refresh_expires_at),
            hard_expires_at=from_iso(grant.hard_expires_at),
        )
        self._opened[grant.id] = (grant.token_ciphertext, tokens)
        return tokens

    async def fresh_tokens(self, grant_id: int) -> TokenSet:
        """Tokens whose access token is good for at least a minute, refreshing if needed."""
        grant, tokens = await self.tokens(grant_id)
        if grant.state == "revoked":
            raise GrantRevoked(grant_id, grant.state_reason or "the authorisation was revoked")
        if tokens.access_expires_at - self._clock.now() > ACCESS_MARGIN:
            return tokens
        return await self.refresh(grant_id)

    async def refresh(
        self, grant_id: int, *, force: bool = False, min_valid: timedelta = ACCESS_MARGIN
    ) -> TokenSet:
        """Refresh under the grant's lock, unless (re-read under the lock) the access token
        is still good for ``min_valid``: then someone else just refreshed it. After a token
        call whose answer never arrived, the call is always repeated (the provider may have
        rotated the refresh token; the old one works only during its grace)."""
        async with self._lock(grant_id):
            grant, tokens = await self.tokens(grant_id)
            if grant.state == "revoked":
                raise GrantRevoked(grant_id, grant.state_reason or "the authorisation was revoked")
            in_doubt = grant.refresh_pending_since is not None  # an answer was lost
            if (
                not force
                and not in_doubt
                and tokens.access_expires_at - self._clock.now() > min_valid
            ):
                return tokens
            if not tokens.refresh_token:
                reason = "the provider gave no refresh token (offline access was not granted)"
                await self._store.mark_grant_revoked(grant_id, reason)
                raise GrantRevoked(grant_id, reason)
            adapter = self._adapters[grant.provider]
            # The marker is committed before the token call: a call whose result could not
            # be stored (a full disk) must not start, since the provider rotates the token.
            # The reserve (released on a full disk) lets the rotated token be committed.
            try:
                await self._store.ensure_writable_reserve()
                pending_since = await self._store.begin_refresh(grant_id, self._clock.now())
            except DiskFull as exc:
                log.warning("grant %s: refresh skipped, the database's disk is full", grant_id)
                raise DiskFull(
                    exc.folder,
                    "so the refresh was skipped: a new token could not have been stored. "
                    "No token was used and nothing was lost",
                ) from exc
            try:
                fresh = await adapter.refresh(tokens.refresh_token)
            except RateLimited:
                if pending_since is None:  # a 429 was not processed: nothing is in doubt
                    await self._store.end_refresh(grant_id)
                raise
            except ProviderRefused as exc:
                failure = classify_failure(exc)
                if failure is not None and failure.kind == FailureKind.GRANT_REFUSED:
                    reason = lost_answers_reason(
                        adapter, pending_since
                    ) or adapter.refresh_refused_reason(exc, tokens.refresh_expires_at)
                    await self._store.mark_grant_revoked(grant_id, reason)
                    raise GrantRevoked(grant_id, reason) from exc
                if pending_since is None:
                    await self._store.end_refresh(grant_id)
                raise
            await self._store.update_grant_tokens(
                grant_id,
                token_ciphertext=self._vault.encrypt(fresh.secret_json(), _context(grant.uid)),
                access_expires_at=fresh.access_expires_at,
                refresh_expires_at=fresh.refresh_expires_at,
                hard_expires_at=fresh.hard_expires_at,
                now=self._clock.now(),
            )
            log.info("refreshed grant %s (%s)", grant_id, grant.provider)
            return fresh

    async def call(self, grant_id: int, operation: Callable[[TokenSet], Awaitable[T]]) -> T:
        """Run an API ``operation`` with fresh tokens; on a refused token refresh once more."""
        tokens = await self.fresh_tokens(grant_id)
        try:
            return await operation(tokens)
        except AccessTokenRejected:
            tokens = await self.refresh(grant_id, force=True)
            return await operation(tokens)


def lost_answers_reason(adapter: ProviderAdapter, pending_since: str | None) -> str | None:
    """Why a grant was lost after refreshes whose answers never arrived (None if none did)."""
    since = from_iso(pending_since)
    if since is None:
        return None
    definition = adapter.definition
    text = (
        f"{definition.display_name}'s answers to clientlink's token refreshes never arrived "
        f"(since {since:%d %b %Y %H:%M} UTC)"
    )
    if definition.refresh_grace_seconds:
        text += (
            f" and the previous refresh token's {_duration(definition.refresh_grace_seconds)} "
            "grace ran out"
        )
    return text + ": access was not revoked, but this authorisation is lost; re-authorise"


def refresh_deadline(adapter: ProviderAdapter, pending_since: str | None) -> datetime | None:
    """Until when a refresh whose answer was lost can still be repeated with the old token."""
    since = from_iso(pending_since)
    grace = adapter.definition.refresh_grace_seconds
    if since is None or not grace:
        return None
    return since + timedelta(seconds=grace)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours}-hour" if hours != 1 else "1-hour"
    return f"{seconds // 60}-minute"


def _context(uid: str) -> str:
    return f"grant-tokens:{uid}"
