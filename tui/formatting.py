"""How the TUI writes ABNs, expiry times and other values a person reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from clientlink.common.client import DaemonClient, RpcError
from clientlink.common.safe_text import visible


def wall_clock() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


clock: Callable[[], datetime] = wall_clock
"""Where the TUI reads the time for what it shows relative to now (snapshot tests fix it)."""


def current_time() -> datetime:
    """Now, in UTC, by :data:`clock`."""
    return clock()


def format_abn(abn: str | None) -> str:
    """An 11-digit ABN grouped as ``12 345 678 901``; anything else as given, or a dash."""
    if not abn:
        return "—"
    digits = "".join(ch for ch in abn if ch.isdigit())
    if len(digits) != 11:
        return abn
    return f"{digits[:2]} {digits[2:5]} {digits[5:8]} {digits[8:]}"


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from the daemon as an aware datetime (UTC when no zone is given)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _span(seconds: float) -> str:
    """A positive duration in its largest sensible unit: ``41s``, ``24m``, ``5h``, ``3d``."""
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def relative_expiry(value: str | None, now: datetime | None = None) -> str:
    """When something ends, relative to now: ``in 24m``, ``in 3d``, ``expired`` or a dash."""
    when = parse_time(value)
    if when is None:
        return "—"
    seconds = (when - (now or current_time())).total_seconds()
    return f"in {_span(seconds)}" if seconds > 0 else "expired"


def relative_time(value: str | None, now: datetime | None = None) -> str:
    """A time relative to now, either way: ``3d ago``, ``just now``, ``in 24m`` or a dash."""
    when = parse_time(value)
    if when is None:
        return "—"
    seconds = (when - (now or current_time())).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    return f"in {_span(seconds)}" if seconds > 0 else f"{_span(-seconds)} ago"


def format_when(value: str | None, now: datetime | None = None) -> str:
    """A time in the person's own zone, and how far off it is: ``22 Nov 2026 23:14 (3d ago)``."""
    when = parse_time(value)
    if when is None:
        return "—"
    return f"{when.astimezone():%d %b %Y %H:%M} ({relative_time(value, now)})"


def countdown(seconds: float) -> str:
    """Seconds left as ``m:ss`` (``9:41``)."""
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def duration(seconds: float | None) -> str:
    """A duration a person reads at a glance: ``41s``, ``3m 20s``, ``2h 05m``, or a dash."""
    if seconds is None or seconds < 0:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def shown(value: Any, *, keep_newlines: bool = False) -> Any:
    """``value`` (an RPC result or event) with every string made safe for the terminal.

    The TUI shows what the daemon says, and much of it comes from outside: client names
    from the client's own accounting file, providers' error descriptions. Control, C1 and
    bidi characters are made visible (``common/safe_text.py``) once, as the data arrives.
    """
    if isinstance(value, str):
        return visible(value, keep_newlines=keep_newlines)
    if isinstance(value, dict):
        return {key: shown(item, keep_newlines=keep_newlines) for key, item in value.items()}
    if isinstance(value, list):
        return [shown(item, keep_newlines=keep_newlines) for item in value]
    return value


class ShownDaemonClient(DaemonClient):
    """The TUI's connection: results, errors and events arrive safe to show.

    The raw answer is made safe before its result model reads it, so typed results
    (``call(p.CLIENTS_LIST)``) and events (``updates()``) are as safe as raw ones.
    Templates are the practice's own multi-line text, and a previewed invitation is that
    text rendered: their newlines are kept.
    """

    async def _request(self, method: str, params: dict[str, Any] | None) -> Any:
        try:
            return await super()._request(method, params)
        except RpcError as exc:
            raise RpcError(exc.code, visible(exc.message), exc.data, exc.method) from None

    def _clean(self, method: str, value: Any) -> Any:
        multi_line = method.startswith("templates.") or method == "invites.preview"
        return shown(value, keep_newlines=multi_line)
