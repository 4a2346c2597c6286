"""Xero's app tiers since 2 March 2026 (provider-facts §8): what each allows.

Tiers are priced by connections (organisations connected to the app) and monthly API
egress; the daily call limit per organisation is 5,000, or 1,000 on Starter. A bespoke
integration a practice builds for itself is exempt from the pricing model. The sandbox
enforces these numbers and the daemon shows its usage against them, so both read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class XeroTier:
    name: str
    # None: no cap on connections.
    connection_cap: int | None
    day_limit_per_organisation: int


XERO_TIERS: dict[str, XeroTier] = {
    tier.name: tier
    for tier in (
        XeroTier("starter", 5, 1_000),
        XeroTier("core", 50, 5_000),
        XeroTier("plus", 1_000, 5_000),
        XeroTier("advanced", 10_000, 5_000),
        XeroTier("enterprise", None, 5_000),
        XeroTier("exempt", None, 5_000),
    )
}
TIER_NAMES = tuple(XERO_TIERS)


def format_bytes(count: int) -> str:
    """A byte count for people: 812 B, 14.2 kB, 3.1 MB, 1.4 GB."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def usage_line(usage: dict[str, Any], display_name: str) -> str:
    """`Xero (starter tier): 3 of 5 connections, 14.2 kB API egress in 2026-12`."""
    tier = f"{usage['tier']} tier" if usage["tier"] else "tier not set"
    cap = usage["connection_cap"]
    connections = f"{usage['connections']} of {cap}" if cap else f"{usage['connections']}"
    egress = format_bytes(usage["egress_bytes_month"])
    return (
        f"{display_name} ({tier}): {connections} connections, {egress} API egress in "
        + (usage["month"])
    )
