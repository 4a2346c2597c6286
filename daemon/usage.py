"""What the daemon costs a practice at Xero since March 2026: connections and API egress.

Xero prices an app by its connections and its monthly API egress (provider-facts §8). The
daemon counts the bytes of every API answer it receives, per calendar month (UTC), and
keeps the running total in the store's meta table so a restart does not lose the month.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from clientlink.common.wording import plural
from clientlink.common.xero_tiers import XERO_TIERS

if TYPE_CHECKING:
    from clientlink.daemon.clock import Clock
    from clientlink.daemon.store import Store

log = logging.getLogger(__name__)

USAGE_SAVE_SECONDS = 300


def month_of(moment: datetime) -> str:
    """`YYYY-MM` of a UTC moment."""
    return moment.strftime("%Y-%m")


class EgressMeter:
    """Bytes received from one provider's API, by month."""

    def __init__(self) -> None:
        self._bytes: dict[str, int] = {}
        self._saved: dict[str, int] = {}

    def add(self, count: int, moment: datetime) -> None:
        month = month_of(moment)
        self._bytes[month] = self._bytes.get(month, 0) + count

    def total(self, moment: datetime) -> int:
        """Bytes received in `moment`'s month."""
        return self._bytes.get(month_of(moment), 0)

    def unsaved(self) -> dict[str, int]:
        """The months whose count changed since it was last saved (or restored)."""
        return {m: n for m, n in self._bytes.items() if self._saved.get(m) != n}

    def saved(self, months: dict[str, int]) -> None:
        """Those counts are in the database now."""
        self._saved.update(months)

    def restore(self, month: str, count: int) -> None:
        """Start a month from what an earlier run recorded."""
        self._bytes[month] = self._bytes.get(month, 0) + count
        self._saved[month] = self._bytes[month]


def meta_key(provider: str, month: str) -> str:
    return f"egress:{provider}:{month}"


def usage_json(
    provider: str, tier: str | None, connections: int, egress_bytes: int, month: str
) -> dict[str, Any]:
    """One provider's usage against its tier, as daemon.status reports it."""
    known = XERO_TIERS.get(tier or "")
    cap = known.connection_cap if known else None
    return {
        "provider": provider,
        "tier": tier,
        "connections": connections,
        "connection_cap": cap,
        "day_limit_per_organisation": known.day_limit_per_organisation if known else None,
        "egress_bytes_month": egress_bytes,
        "month": month,
    }


def would_exceed(usage: dict[str, Any], more: int) -> str | None:
    """A warning when `more` new connections would pass the tier's cap, else None."""
    cap = usage["connection_cap"]
    if cap is None or usage["connections"] + more <= cap:
        return None
    return (
        f"the {usage['tier']} tier allows {plural(cap, 'connection')} and clientlink holds "
        f"{usage['connections']}: connecting {more} more would pass the cap, so Xero will "
        "refuse some of them"
    )


class Usage:
    """Each provider's egress meter, kept in the store's meta table."""

    def __init__(self, store: Store, clock: Clock, meters: dict[str, EgressMeter]) -> None:
        self._store = store
        self._clock = clock
        # Bytes received from each provider's API, by month; outlives adapter rebuilds.
        self.meters = meters

    def meter(self, name: str) -> EgressMeter:
        return self.meters.setdefault(name, EgressMeter())

    async def load(self, names: list[str]) -> None:
        """This month's stored counts, for meters that have counted nothing yet."""
        month = month_of(self._clock.now())
        for name in names:
            stored = await self._store.get_meta(meta_key(name, month))
            meter = self.meter(name)
            if stored and stored.isdigit() and not meter.total(self._clock.now()):
                meter.restore(month, int(stored))

    async def report(self, name: str, tier: str | None) -> dict[str, Any]:
        """Connections and this month's API egress against the provider's tier."""
        now = self._clock.now()
        return usage_json(
            name,
            tier,
            await self._store.count_connected_tenants(name),
            self.meter(name).total(now),
            month_of(now),
        )

    async def save(self) -> None:
        """Write the egress counts that changed since they were last written.

        Counted in memory per API answer and written every few minutes and at stop, so a
        status call stays a read and a job item pays no extra write; a killed daemon loses
        at most those minutes of the count (a figure for the practice, not a limit)."""
        for name, meter in self.meters.items():
            changed = meter.unsaved()
            for month, count in changed.items():
                await self._store.set_meta(meta_key(name, month), str(count))
            meter.saved(changed)

    async def save_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(USAGE_SAVE_SECONDS)
            try:
                await self.save()
            except Exception as exc:  # a full disk or a lost database: said elsewhere
                log.warning("could not save the API egress count: %s", exc)
