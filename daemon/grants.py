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
from datetime import timedelta
from typing import TypeVar

from clientlink.common.timeutil import from_iso
from clientlink.daemon.clock import Clock
from clientlink.daemon.providers import (
    AccessTokenRejected,
    ProviderAdapter,
    ProviderRefused,
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
    ) -> int:
        """Store a new grant (tokens sealed by the vault) and the tenants it reaches."""
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
        )

    async def tokens(self, grant_id: int) -> tuple[GrantRow, TokenSet]:
        """The grant and its opened tokens."""
        grant = await self._store.get_grant(grant_id)
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
        is still good for ``min_valid``: then someone else just refreshed it."""
        async with self._lock(grant_id):
            grant, tokens = await self.tokens(grant_id)
            if grant.state == "revoked":
                raise GrantRevoked(grant_id, grant.state_reason or "the authorisation was revoked")
            if not force and tokens.access_expires_at - self._clock.now() > min_valid:
                return tokens
            if not tokens.refresh_token:
                reason = "the provider gave no refresh token (offline access was not granted)"
                await self._store.mark_grant_revoked(grant_id, reason)
                raise GrantRevoked(grant_id, reason)
            adapter = self._adapters[grant.provider]
            try:
                fresh = await adapter.refresh(tokens.refresh_token)
            except ProviderRefused as exc:
                if exc.error in ("invalid_grant", "unauthorized_client", "invalid_scope"):
                    await self._store.mark_grant_revoked(grant_id, str(exc))
                    raise GrantRevoked(grant_id, str(exc)) from exc
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


def _context(uid: str) -> str:
    return f"grant-tokens:{uid}"
