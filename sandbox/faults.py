"""Fault injection: make chosen endpoints fail or stall so clients' retry paths get exercised."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

FAULT_KINDS = ("429", "500", "502", "503", "delay")
FAULT_TARGETS = ("token", "api", "connections", "revocation", "any")
RATE_LIMIT_PROBLEMS = ("minute", "day", "concurrent", "appminute")


@dataclass
class FaultRule:
    """One rule. `count` limits how often it fires; `fraction` makes it fire at random.

    With neither, it fires on every matching call until the faults are cleared.
    """

    id: int
    kind: str
    target: str = "any"
    count: int | None = None
    fraction: float | None = None
    retry_after: int | None = None
    problem: str = "minute"
    delay_seconds: float = 0.0
    fired: int = 0

    @classmethod
    def from_json(cls, rule_id: int, data: dict[str, Any]) -> FaultRule:
        """Validate an admin-API rule body; raise ValueError with a readable reason."""
        unknown = set(data) - {
            "kind",
            "target",
            "count",
            "fraction",
            "retry_after",
            "problem",
            "delay_seconds",
        }
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        kind = str(data.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        target = str(data.get("target") or "any")
        if target not in FAULT_TARGETS:
            raise ValueError(f"target must be one of {', '.join(FAULT_TARGETS)}")
        count = data.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be a positive integer")
        fraction = data.get("fraction")
        if fraction is not None and not (isinstance(fraction, int | float) and 0 <= fraction <= 1):
            raise ValueError("fraction must be a number between 0 and 1")
        retry_after = data.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
            raise ValueError("retry_after must be a non-negative integer (seconds)")
        problem = str(data.get("problem") or "minute")
        if problem not in RATE_LIMIT_PROBLEMS:
            raise ValueError(f"problem must be one of {', '.join(RATE_LIMIT_PROBLEMS)}")
        delay = data.get("delay_seconds", 0.0)
        if not isinstance(delay, int | float) or delay < 0:
            raise ValueError("delay_seconds must be a non-negative number")
        if kind == "delay" and delay == 0:
            raise ValueError("a delay fault needs delay_seconds > 0")
        return cls(
            id=rule_id,
            kind=kind,
            target=target,
            count=count,
            fraction=None if fraction is None else float(fraction),
            retry_after=retry_after,
            problem=problem,
            delay_seconds=float(delay),
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as the admin API shows it, with how often it has fired."""
        return asdict(self)


class FaultInjector:
    """Holds the active rules and decides, per call, which one (if any) fires."""

    def __init__(self, seed: int = 0) -> None:
        # Seeded so a `fraction` rule fails the same calls on every run of a test.
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self.rules: list[FaultRule] = []

    def add(self, data: dict[str, Any]) -> FaultRule:
        """Add a rule from its JSON body."""
        rule = FaultRule.from_json(next(self._ids), data)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def pick(self, target: str) -> FaultRule | None:
        """Return the first rule that fires for a call to `target`, consuming its count."""
        for rule in self.rules:
            if rule.target not in ("any", target):
                continue
            if rule.fraction is not None and self._rng.random() >= rule.fraction:
                continue
            rule.fired += 1
            if rule.count is not None and rule.fired >= rule.count:
                self.rules.remove(rule)
            return rule
        return None


async def apply_fault(injector: FaultInjector, target: str) -> Response | None:
    """Fire a fault for a call to `target`: sleep for a delay, or return the error response.

    Called before any normal processing, so a faulted call consumes no code or token.
    """
    rule = injector.pick(target)
    if rule is None:
        return None
    if rule.kind == "delay":
        await asyncio.sleep(rule.delay_seconds)
        return None
    status = int(rule.kind)
    headers: dict[str, str] = {}
    if status == 429:
        headers["X-Rate-Limit-Problem"] = rule.problem
        if rule.problem in ("minute", "day", "appminute"):
            headers["Retry-After"] = str(rule.retry_after if rule.retry_after is not None else 60)
    elif rule.retry_after is not None:
        headers["Retry-After"] = str(rule.retry_after)
    body = {
        "Title": _FAULT_TITLES[status],
        "Status": status,
        "Detail": f"Sandbox fault injected (rule {rule.id})",
    }
    return JSONResponse(body, status_code=status, headers=headers)


_FAULT_TITLES = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
