"""The whole emulated world in one object, shared by the routes, the admin API and tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from starlette.responses import Response

from clientlink.sandbox.accounts import SandboxApp, StaffUser, default_apps, default_users
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.faults import FaultInjector, apply_fault
from clientlink.sandbox.ratelimit import RateLimiter
from clientlink.sandbox.seed import DEFAULT_ORG_COUNT, DEFAULT_SEED, generate_orgs
from clientlink.sandbox.xero import XeroProvider

# Endpoint kinds counted by GET /_sandbox/stats.
STAT_KINDS = (
    "authorize",
    "token.authorization_code",
    "token.refresh_token",
    "revocation",
    "connections",
    "organisation",
)


class SandboxState:
    """Clock, seed data, the Xero-like provider, faults, limits and call statistics."""

    def __init__(
        self,
        *,
        org_count: int = DEFAULT_ORG_COUNT,
        seed: int = DEFAULT_SEED,
        clock: SandboxClock | None = None,
        enforce_limits: bool = True,
        apps: Iterable[SandboxApp] = (),
        users: Iterable[StaffUser] | None = None,
    ) -> None:
        self.org_count = org_count
        self.seed = seed
        self.clock = clock or SandboxClock()
        self._extra_apps = list(apps)
        self._users = list(users) if users is not None else None
        self.faults = FaultInjector(seed)
        self.limits = RateLimiter(self.clock, enforce=enforce_limits)
        # Extra seconds every admitted API call takes while holding its concurrency slot,
        # so the per-tenant concurrency limit can be reached on a fast machine.
        self.api_latency_seconds = 0.0
        self.calls: Counter[str] = Counter()
        self.rate_limited = 0
        self.orgs = generate_orgs(org_count, seed)
        self.xero = self._new_provider()

    def _new_provider(self) -> XeroProvider:
        # Constructor apps override defaults with the same client_id.
        apps = {app.client_id: app for app in [*default_apps(), *self._extra_apps]}
        users = self._users if self._users is not None else default_users()
        return XeroProvider(self.clock, self.orgs, list(apps.values()), users)

    def reset(self) -> None:
        """Forget every grant, token, connection, fault, counter, and go back to real time."""
        self.clock.reset()
        self.faults.clear()
        self.limits.reset()
        self.api_latency_seconds = 0.0
        self.calls.clear()
        self.rate_limited = 0
        self.xero = self._new_provider()

    def stats_json(self) -> dict[str, object]:
        """Call counts by endpoint kind, 429s served and peak concurrency per tenant."""
        return {
            "calls": {kind: self.calls.get(kind, 0) for kind in STAT_KINDS}
            | {k: v for k, v in self.calls.items() if k not in STAT_KINDS},
            "rate_limited": self.rate_limited,
            "max_concurrency": dict(self.limits.max_concurrency),
        }

    async def fault(self, target: str) -> Response | None:
        """Apply fault injection for a call to `target`; count a 429 if one is served."""
        response = await apply_fault(self.faults, target)
        if response is not None and response.status_code == 429:
            self.rate_limited += 1
        return response
