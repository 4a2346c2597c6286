"""Providers' published rate limits, kept on our side so the provider never has to say 429.

Each API call takes a slot for its tenant (concurrency and calls per minute/day) and one
for the app as a whole. Windows slide over the last minute (or day): never exceeding N in
any sliding window also keeps every fixed window the provider counts under N. When a
provider says how much is left (Xero's ``X-MinLimit-Remaining`` and friends) or answers
429 with ``Retry-After``, the window is tightened to match.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from clientlink.daemon.clock import Clock


@dataclass(frozen=True)
class LimitSpec:
    """One scope's limits (None: no limit of that kind)."""

    concurrent: int | None = None
    per_minute: int | None = None
    per_day: int | None = None
    per_second: int | None = None


@dataclass(frozen=True)
class ProviderLimits:
    """A provider's limits per tenant and for the whole app."""

    tenant: LimitSpec = LimitSpec()
    app: LimitSpec = LimitSpec()


XERO_LIMITS = ProviderLimits(
    tenant=LimitSpec(concurrent=5, per_minute=60, per_day=5000),
    app=LimitSpec(per_minute=10_000),
)
QUICKBOOKS_LIMITS = ProviderLimits(tenant=LimitSpec(concurrent=10, per_minute=500))
# MYOB publishes no limits; 8 a second and 1,000,000 a day per API key are the figures often
# quoted. Six a second leaves room for the provider counting the same calls a moment later.
MYOB_LIMITS = ProviderLimits(app=LimitSpec(per_second=6, per_day=1_000_000))

SECOND = 1.0
MINUTE = 60.0
DAY = 86_400.0


@dataclass
class _Window:
    length: float
    limit: int
    calls: deque[float] = field(default_factory=deque)

    def wait_needed(self, now: float) -> float:
        while self.calls and self.calls[0] <= now - self.length:
            self.calls.popleft()
        if len(self.calls) < self.limit:
            return 0.0
        return self.calls[0] + self.length - now

    def fill_to(self, used: int, now: float) -> None:
        """The provider says ``used`` calls of this window are gone: count as many."""
        while len(self.calls) < min(used, self.limit):
            self.calls.append(now)


class _Scope:
    def __init__(self, spec: LimitSpec) -> None:
        self.semaphore = asyncio.Semaphore(spec.concurrent) if spec.concurrent else None
        self.windows = [
            _Window(length, limit)
            for length, limit in (
                (SECOND, spec.per_second),
                (MINUTE, spec.per_minute),
                (DAY, spec.per_day),
            )
            if limit
        ]
        self.blocked_until = 0.0


class RateLimiter:
    """Slots for one provider's API calls."""

    def __init__(self, limits: ProviderLimits, clock: Clock | None = None) -> None:
        self._limits = limits
        self._clock = clock or Clock()
        self._app = _Scope(limits.app)
        self._tenants: dict[str, _Scope] = {}
        self._lock = asyncio.Lock()

    def _scope(self, tenant: str | None) -> list[_Scope]:
        scopes = [self._app]
        if tenant is not None:
            scope = self._tenants.get(tenant)
            if scope is None:
                scope = self._tenants[tenant] = _Scope(self._limits.tenant)
            scopes.insert(0, scope)
        return scopes

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str | None) -> AsyncIterator[None]:
        """Hold one call's slot for ``tenant`` (None: an app-level call)."""
        scopes = self._scope(tenant)
        async with contextlib.AsyncExitStack() as stack:
            for scope in scopes:
                if scope.semaphore is not None:
                    await stack.enter_async_context(scope.semaphore)
            await self._take(scopes)
            yield

    async def _take(self, scopes: list[_Scope]) -> None:
        while True:
            async with self._lock:
                now = self._clock.monotonic()
                wait = max(
                    [scope.blocked_until - now for scope in scopes]
                    + [window.wait_needed(now) for scope in scopes for window in scope.windows]
                )
                if wait <= 0:
                    for scope in scopes:
                        for window in scope.windows:
                            window.calls.append(now)
                    return
            await self._clock.sleep(wait)

    def block(self, tenant: str | None, seconds: float) -> None:
        """Hold every call for ``tenant`` (or the app) back for ``seconds`` (Retry-After)."""
        scope = self._scope(tenant)[0]
        scope.blocked_until = max(scope.blocked_until, self._clock.monotonic() + seconds)

    def observe(self, tenant: str | None, headers: Mapping[str, str]) -> None:
        """Tighten the windows to what the provider says is left."""
        now = self._clock.monotonic()
        for header, scope, length in (
            ("x-minlimit-remaining", self._scope(tenant)[0] if tenant else None, MINUTE),
            ("x-daylimit-remaining", self._scope(tenant)[0] if tenant else None, DAY),
            ("x-appminlimit-remaining", self._app, MINUTE),
        ):
            value = headers.get(header)
            if scope is None or value is None or not value.isdigit():
                continue
            for window in scope.windows:
                if window.length == length:
                    window.fill_to(window.limit - int(value), now)
