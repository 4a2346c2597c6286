"""Small pieces of English that the CLI and the app say the same way."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 client``, ``2 clients``; ``plural_noun`` for irregular words."""
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count} {word}"


def import_sentence(counts: dict[str, int]) -> str:
    """What confirming a spreadsheet import does: ``Import 118 clients (skip 3 refused rows)``
    (``counts`` by verdict: add, match, refuse)."""
    text = f"Import {plural(counts['add'] + counts['match'], 'client')}"
    if counts["refuse"]:
        text += f" (skip {plural(counts['refuse'], 'refused row')})"
    return text
