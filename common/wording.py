"""Small pieces of English that the CLI and the app say the same way."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 client``, ``2 clients``; ``plural_noun`` for irregular words."""
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count} {word}"
