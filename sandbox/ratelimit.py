"""The providers' API rate limits: fixed windows on the sandbox clock, one on/off switch.

Xero: per (app, tenant) 5 concurrent, 60/min, 5,000/day, and 10,000/min per app.
QuickBooks Online: 500/min per realm (whatever the app) and 10 concurrent per (app, realm).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clientlink.sandbox.clock import SandboxClock

TENANT_CONCURRENT_LIMIT = 5
TENANT_MINUTE_LIMIT = 60
TENANT_DAY_LIMIT = 5_000
APP_MINUTE_LIMIT = 10_000
QUICKBOOKS_REALM_MINUTE_LIMIT = 500
QUICKBOOKS_CONCURRENT_LIMIT = 10
# MYOB publishes none; these are the figures often quoted (per API key), not published ones.
MYOB_SECOND_LIMIT = 8
MYOB_DAY_LIMIT = 1_000_000


@dataclass
class LimitDecision:
    """The outcome of admitting one API call: headers always, a problem when refused."""

    headers: dict[str, str]
    problem: str | None = None
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        """True when the call may proceed."""
        return self.problem is None


@dataclass
class _Window:
    key: object = None
    count: int = 0

    def current(self, key: object) -> int:
        # Fixed windows: a new window key starts the count again from zero.
        if key != self.key:
            self.key, self.count = key, 0
        return self.count


@dataclass
class RateLimiter:
    """Counts calls per (app, tenant), per app and per realm; refuses them when `enforce` is on.

    Refused calls are not counted, as Xero does not count them against the budget. With
    enforcement off the counters and headers still move, so a client's pacing can be watched.
    Realm ids (digits) and tenant ids (UUIDs) never collide, so concurrency is kept together.
    """

    clock: SandboxClock
    enforce: bool = True
    _minute: dict[tuple[str, str], _Window] = field(default_factory=lambda: defaultdict(_Window))
    _day: dict[tuple[str, str], _Window] = field(default_factory=lambda: defaultdict(_Window))
    _app_minute: dict[str, _Window] = field(default_factory=lambda: defaultdict(_Window))
    _realm_minute: dict[str, _Window] = field(default_factory=lambda: defaultdict(_Window))
    _in_flight: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _key_second: dict[str, _Window] = field(default_factory=lambda: defaultdict(_Window))
    _key_day: dict[str, _Window] = field(default_factory=lambda: defaultdict(_Window))
    max_concurrency: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def admit(
        self, client_id: str, tenant_id: str | None, day_limit: int = TENANT_DAY_LIMIT
    ) -> LimitDecision:
        """Admit one call; a call without a tenant (GET /connections) counts app-wide only.

        An admitted call with a tenant holds a concurrency slot until `release`.
        `day_limit` is the app's daily limit per organisation (1,000 on Xero's Starter).
        """
        now = self.clock.now()
        minute_key = math.floor(now.timestamp() // 60)
        day_key = now.date()
        app_used = self._app_minute[client_id].current(minute_key)
        minute_used = day_used = in_flight = 0
        if tenant_id is not None:
            pair = (client_id, tenant_id)
            minute_used = self._minute[pair].current(minute_key)
            day_used = self._day[pair].current(day_key)
            in_flight = self._in_flight[pair]

        problem, retry_after = self._problem(
            now, in_flight, minute_used, day_used, app_used, day_limit
        )
        if problem is not None and self.enforce:
            return LimitDecision(
                self._headers(minute_used, day_used, app_used, day_limit), problem, retry_after
            )

        self._app_minute[client_id].count += 1
        if tenant_id is not None:
            pair = (client_id, tenant_id)
            self._minute[pair].count += 1
            self._day[pair].count += 1
            self._hold_slot(pair)
            minute_used, day_used = minute_used + 1, day_used + 1
        return LimitDecision(self._headers(minute_used, day_used, app_used + 1, day_limit))

    def admit_quickbooks(self, client_id: str, realm_id: str) -> LimitDecision:
        """Admit one QuickBooks call; it holds a concurrency slot until `release`.

        QuickBooks sends no limit headers and no Retry-After, so the decision carries none.
        """
        minute_key = math.floor(self.clock.now().timestamp() // 60)
        minute = self._realm_minute[realm_id]
        minute_used = minute.current(minute_key)
        pair = (client_id, realm_id)
        problem = None
        if self._in_flight[pair] >= QUICKBOOKS_CONCURRENT_LIMIT:
            problem = "concurrent"
        elif minute_used >= QUICKBOOKS_REALM_MINUTE_LIMIT:
            problem = "minute"
        if problem is not None and self.enforce:
            return LimitDecision({}, problem)
        minute.count += 1
        self._hold_slot(pair)
        return LimitDecision({})

    def admit_myob(self, client_id: str) -> LimitDecision:
        """Admit one MYOB call against its API key's quoted 8 a second and 1,000,000 a day."""
        now = self.clock.now()
        second = self._key_second[client_id]
        day = self._key_day[client_id]
        second_used = second.current(math.floor(now.timestamp()))
        day_used = day.current(now.date())
        problem = None
        if day_used >= MYOB_DAY_LIMIT:
            problem = "day"
        elif second_used >= MYOB_SECOND_LIMIT:
            problem = "second"
        if problem is not None and self.enforce:
            return LimitDecision({}, problem)
        second.count += 1
        day.count += 1
        return LimitDecision({})

    def _hold_slot(self, pair: tuple[str, str]) -> None:
        self._in_flight[pair] += 1
        _client_id, company = pair
        self.max_concurrency[company] = max(self.max_concurrency[company], self._in_flight[pair])

    def release(self, client_id: str, company_id: str) -> None:
        """Give back the concurrency slot an admitted tenant (or realm) call held."""
        self._in_flight[(client_id, company_id)] -= 1

    def reset(self) -> None:
        """Forget every counter (the admin API's reset)."""
        self._minute.clear()
        self._day.clear()
        self._app_minute.clear()
        self._realm_minute.clear()
        self._key_second.clear()
        self._key_day.clear()
        self._in_flight.clear()
        self.max_concurrency.clear()

    @staticmethod
    def _problem(
        now: datetime,
        in_flight: int,
        minute_used: int,
        day_used: int,
        app_used: int,
        day_limit: int,
    ) -> tuple[str | None, int | None]:
        seconds_into_minute = now.timestamp() % 60
        to_next_minute = max(1, math.ceil(60 - seconds_into_minute))
        if in_flight >= TENANT_CONCURRENT_LIMIT:
            return "concurrent", None
        if day_used >= day_limit:
            midnight = datetime.combine(
                now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo
            )
            return "day", max(1, math.ceil((midnight - now).total_seconds()))
        if minute_used >= TENANT_MINUTE_LIMIT:
            return "minute", to_next_minute
        if app_used >= APP_MINUTE_LIMIT:
            return "appminute", to_next_minute
        return None, None

    @staticmethod
    def _headers(minute_used: int, day_used: int, app_used: int, day_limit: int) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(max(0, day_limit - day_used)),
            "X-MinLimit-Remaining": str(max(0, TENANT_MINUTE_LIMIT - minute_used)),
            "X-AppMinLimit-Remaining": str(max(0, APP_MINUTE_LIMIT - app_used)),
        }
