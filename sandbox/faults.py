"""Fault injection: make chosen endpoints fail or stall so clients' retry paths get exercised.

Kinds: an HTTP error instead of processing (`429`, `500`, `502`, `503`), a `delay` before
processing, or `hang_after`: process normally, then hold the answer, which lets a test kill a
client after the provider rotated a token but before the client could store it.

The SMTP server has its own kinds, which never fire on HTTP (and HTTP kinds never fire on
SMTP): `smtp_4xx` and `smtp_5xx` refuse a message at the end of DATA (451 and 550 unless
`smtp_code` says otherwise; 421 also closes the connection), and `smtp_drop_after_data` keeps
the message but drops the connection before the 250, so the sender cannot know it was sent.
"""

from __future__ import annotations

import itertools
import random
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

SMTP_FAULT_KINDS = ("smtp_4xx", "smtp_5xx", "smtp_drop_after_data")
FAULT_KINDS = ("429", "500", "502", "503", "delay", "hang_after", *SMTP_FAULT_KINDS)
# `connections` exists only in Xero; `token`, `api` and `revocation` cover both accounting
# providers' matching endpoints; `sms` is the Twilio-like gateway, `banks` the Basiq-like API.
FAULT_TARGETS = ("token", "api", "connections", "revocation", "sms", "banks", "smtp", "any")
FAULT_PROVIDERS = ("xero", "quickbooks", "twilio", "basiq", "class")
RATE_LIMIT_PROBLEMS = ("minute", "day", "concurrent", "appminute")
# The replies an SMTP fault may choose; the first of each is its default.
SMTP_FAULT_CODES = {"smtp_4xx": (451, 421, 450, 452), "smtp_5xx": (550, 552, 553, 554)}


@dataclass
class FaultRule:
    """One rule. `count` limits how often it fires; `fraction` makes it fire at random.

    With neither, it fires on every matching call until the faults are cleared. `provider`
    (None for both) restricts it to one provider's endpoints.
    """

    id: int
    kind: str
    target: str = "any"
    provider: str | None = None
    count: int | None = None
    fraction: float | None = None
    retry_after: int | None = None
    problem: str = "minute"
    delay_seconds: float = 0.0
    smtp_code: int | None = None
    fired: int = 0

    @classmethod
    def from_json(cls, rule_id: int, data: dict[str, Any]) -> FaultRule:
        """Validate an admin-API rule body; raise ValueError with a readable reason."""
        unknown = set(data) - {
            "kind",
            "target",
            "provider",
            "count",
            "fraction",
            "retry_after",
            "problem",
            "delay_seconds",
            "smtp_code",
        }
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        kind = str(data.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        smtp = kind in SMTP_FAULT_KINDS
        target = str(data.get("target") or ("smtp" if smtp else "any"))
        if smtp != (target == "smtp"):
            raise ValueError("smtp_* kinds go with target smtp, and only they do")
        if target not in FAULT_TARGETS:
            raise ValueError(f"target must be one of {', '.join(FAULT_TARGETS)}")
        provider = data.get("provider")
        if provider is not None and provider not in FAULT_PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(FAULT_PROVIDERS)} (or absent)")
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
        if kind in ("delay", "hang_after") and delay == 0:
            raise ValueError(f"a {kind} fault needs delay_seconds > 0")
        smtp_code = data.get("smtp_code")
        allowed_codes = SMTP_FAULT_CODES.get(kind, ())
        if smtp_code is not None and smtp_code not in allowed_codes:
            raise ValueError(f"smtp_code must be one of {allowed_codes} for {kind}")
        if smtp_code is None and allowed_codes:
            smtp_code = allowed_codes[0]
        return cls(
            id=rule_id,
            kind=kind,
            target=target,
            provider=provider,
            count=count,
            fraction=None if fraction is None else float(fraction),
            retry_after=retry_after,
            problem=problem,
            delay_seconds=float(delay),
            smtp_code=smtp_code,
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

    def pick(self, target: str, provider: str) -> FaultRule | None:
        """Return the first rule that fires for `provider`'s `target`, consuming its count."""
        for rule in self.rules:
            if rule.target not in ("any", target) or rule.provider not in (None, provider):
                continue
            if (rule.kind in SMTP_FAULT_KINDS) != (target == "smtp"):
                continue
            if rule.fraction is not None and self._rng.random() >= rule.fraction:
                continue
            rule.fired += 1
            if rule.count is not None and rule.fired >= rule.count:
                self.rules.remove(rule)
            return rule
        return None


def error_response(rule: FaultRule, provider: str) -> Response:
    """The HTTP error an error-kind rule answers with, shaped like `provider`'s errors."""
    status = int(rule.kind)
    headers: dict[str, str] = {}
    if provider in ("twilio", "basiq"):
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        body = (twilio_error if provider == "twilio" else basiq_error)(
            status, _FAULT_CODES[provider][status], f"Sandbox fault injected (rule {rule.id})"
        )
        return JSONResponse(body, status_code=status, headers=headers)
    if provider == "quickbooks":
        # Intuit documents no Retry-After and no limit headers: only what the rule asks for.
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        return JSONResponse(_quickbooks_fault(rule, status), status_code=status, headers=headers)
    if provider == "class":
        # Class documents no limit headers: RFC 7807 problem details (assumed), and only
        # the Retry-After the rule asks for.
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        detail = {"type": "about:blank", "title": _FAULT_TITLES[status], "status": status}
        detail["detail"] = f"Sandbox fault injected (rule {rule.id})"
        return JSONResponse(detail, status_code=status, headers=headers)
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


def quickbooks_throttle_fault() -> dict[str, object]:
    """QuickBooks Online's 429 body (error 003001), as its API throttling sends it."""
    message = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    return {"Fault": {"Error": [{"Message": message, "code": "003001"}], "type": "SERVICE"}}


def _quickbooks_fault(rule: FaultRule, status: int) -> dict[str, object]:
    if status == 429:
        return quickbooks_throttle_fault()
    message = f"message={_FAULT_TITLES[status]}; statusCode={status}"
    error = {"Message": message, "Detail": f"Sandbox fault injected (rule {rule.id})"}
    return {"Fault": {"Error": [error | {"code": str(status)}], "type": "SERVICE"}}


def twilio_error(status: int, code: int | str, message: str) -> dict[str, object]:
    """Twilio's REST error body: `{code, message, more_info, status}`."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def basiq_error(status: int, code: int | str, detail: str) -> dict[str, object]:
    """Basiq's error body: a list of error objects with a correlation id."""
    title = code.replace("-", " ").capitalize() if isinstance(code, str) else str(code)
    return {
        "type": "list",
        "correlationId": secrets.token_hex(16),
        "data": [{"type": "error", "code": code, "title": title, "detail": detail}],
    }


# Twilio's numeric codes and Basiq's slugs for the statuses an error rule can answer with.
_FAULT_CODES: dict[str, dict[int, int | str]] = {
    "twilio": {429: 20429, 500: 20500, 502: 20500, 503: 20503},
    "basiq": {
        429: "too-many-requests",
        500: "internal-server-error",
        502: "internal-server-error",
        503: "service-unavailable",
    },
}

_FAULT_TITLES = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
