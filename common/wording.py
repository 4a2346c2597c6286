"""Small pieces of English that the CLI and the app say the same way."""

from __future__ import annotations


def plural(
    count: int, noun: str, plural_noun: str | None = None, *, thousands: bool = False
) -> str:
    """``1 client``, ``2 clients``; ``plural_noun`` for irregular words; ``thousands``
    groups the digits (``1,200 rows``)."""
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count:,} {word}" if thousands else f"{count} {word}"


def agree(count: int, one: str, many: str) -> str:
    """The verb that goes with ``count`` things: ``agree(1, "needs", "need")``."""
    return one if count == 1 else many


def sign_in_count(funds: int, businesses: int, software: str) -> str:
    """``These 240 funds are in 3 Class Super businesses: you will sign in 3 times`` —
    said before a re-authorisation that needs one sign-in per business."""
    are = "is" if funds == 1 else "are"
    these = "This" if funds == 1 else "These"
    times = "once" if businesses == 1 else f"{businesses} times"
    return (
        f"{these} {plural(funds, 'fund')} {are} in "
        f"{plural(businesses, f'{software} business', f'{software} businesses')}: "
        f"you will sign in {times}"
    )


def sign_in_step(index: int, of: int, business: str, funds: int) -> str:
    """``Sign-in 2 of 3: business ACME02 — 80 funds``."""
    return f"Sign-in {index} of {of}: business {business} — {plural(funds, 'fund')}"


def waiting_for_sign_in(business: str) -> str:
    """What a job waiting for the person's next sign-in says (``waiting for you to sign in
    to ACME03``)."""
    return f"waiting for you to sign in to {business}"


def import_sentence(counts: dict[str, int]) -> str:
    """What confirming a spreadsheet import does: ``Import 118 clients (skip 3 refused rows)``
    (``counts`` by verdict: add, match, refuse)."""
    text = f"Import {plural(counts['add'] + counts['match'], 'client')}"
    if counts["refuse"]:
        text += f" (skip {plural(counts['refuse'], 'refused row')})"
    return text


def owner_label(
    staff_name: str | None, provider_user: dict[str, str | None] | None, software: str
) -> str | None:
    """Who a connection rests on, in words: ``Sam Lee, as sam@practice.example in Xero``
    (the staff member, then who signed in at the software, when it said), or None when
    nobody has authorised it."""
    if not staff_name:
        return None
    user = provider_user or {}
    signed_in_as = user.get("email") or user.get("name")
    if not signed_in_as:
        return f"{staff_name}, in {software}"
    return f"{staff_name}, as {signed_in_as} in {software}"


def _names(names: list[str], shown: int = 3) -> str:
    listed = names[:shown]
    rest = len(names) - len(listed)
    return ", ".join(listed) + (f" and {rest} more" if rest else "")


def status_notice(
    status: str, clients: list[tuple[str, str | None]], *, digest: bool
) -> tuple[str, str]:
    """A notification's title and body for clients (name, reason) that moved to ``status``
    (``needs_reauth``, ``expiring`` or ``error``): one client's own, or a digest of many.
    Said the same way by the daemon's notifier (also when a digest shrinks as its clients
    recover) and by each staff member's agent."""
    if digest:
        count = len(clients)
        one = count == 1
        if status == "needs_reauth":
            title = f"{plural(count, 'client')} {'needs' if one else 'need'} re-authorisation"
        elif status == "expiring":
            title = f"{plural(count, 'client authorisation')} {'ends' if one else 'end'} soon"
        else:
            title = f"{plural(count, 'client')} {'has' if one else 'have'} connection errors"
        them = "it" if one else "them"
        return title, f"{_names([name for name, _ in clients])}. Open clientlink to see {them}."
    name, reason = clients[0]
    reason = reason or ""
    if status == "needs_reauth":
        return f"Re-authorise {name}", f"{reason}. Open clientlink to re-authorise."
    if status == "expiring":
        return f"{name}: authorisation ends soon", reason
    return f"{name}: connection error", reason
