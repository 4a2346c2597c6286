"""Counts in English: "1 client", never "1 clients", wherever the TUI, CLI or daemon speaks.

The walk reads every f-string under tui/, cli/ and daemon/ and refuses a count put straight
before a plural noun (``f"{len(x)} clients"``): such text says "1 clients" the day the
count is 1. ``common/wording.py: plural()`` (and ``agree()`` for the verb) say it right.
"""

from __future__ import annotations

import ast
import re
from itertools import pairwise
from pathlib import Path

import clientlink.tui
from clientlink.common.wording import agree, plural, status_notice

SOURCE = Path(clientlink.tui.__file__).parent.parent
ROOTS = ("tui", "cli", "daemon")

NOUNS = (
    "clients businesses funds rows attempts characters segments templates messages "
    "invitations notifications sign-ins columns days minutes seconds hours connections "
    "banks jobs items changes entities parts digits levels bytes files users tenants "
    "organisations errors failures times people colleagues members grants accounts links "
    "emails addresses fields values differences cells pages lines words authorisations"
).split()
ADJECTIVES = "new matching marked client active other unread open failed sent refused".split()
COUNT_BEFORE_NOUN = re.compile(
    rf"^ (?:(?:{'|'.join(ADJECTIVES)}) )?({'|'.join(map(re.escape, NOUNS))})\b"
)
NOT_COUNTS = {"display", "provider", "software", "marker", "name", "display_name", "line"}
"""Names of values that are words, not counts (``{display} businesses``: Xero businesses)."""


def _identifiers(node: ast.expr) -> set[str]:
    return {
        each.id if isinstance(each, ast.Name) else each.attr
        for each in ast.walk(node)
        if isinstance(each, ast.Name | ast.Attribute)
    }


def _fixed_number(node: ast.expr) -> bool:
    """A module constant (``MAX_ROWS``): a fixed limit, never 1."""
    return isinstance(node, ast.Name) and node.id.isupper()


def counts_before_plural_nouns(source: str) -> list[tuple[int, str]]:
    """Each ``{count} nouns`` in the f-strings of ``source``: (line, the text)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts = node.values
        for index, (value, text) in enumerate(pairwise(parts)):
            if not isinstance(value, ast.FormattedValue) or not isinstance(text, ast.Constant):
                continue
            if not isinstance(text.value, str) or not COUNT_BEFORE_NOUN.match(text.value):
                continue
            before = parts[index - 1] if index else None
            if isinstance(before, ast.Constant) and str(before.value).endswith(" to "):
                continue  # the top of a range, "1 to 2 segments"
            if _fixed_number(value.value) or _identifiers(value.value) & NOT_COUNTS:
                continue
            found.append((node.lineno, f"{{{ast.unparse(value.value)}}}{text.value[:30]}"))
    return found


def test_the_walk_finds_a_count_before_a_plural_noun_and_passes_words() -> None:
    source = (
        'a = f"{len(items)} clients need re-authorisation"\n'
        'b = f"For the {total} marked clients"\n'
        'c = f"{display} businesses in config.toml"\n'
        "d = f\"{plural(n, 'client')} imported\"\n"
        'e = f"at most {MAX_ROWS} rows"\n'
        'f = f"{low} to {high} segments"\n'
        'g = f"{name} has bytes"\n'
    )
    assert counts_before_plural_nouns(source) == [
        (1, "{len(items)} clients need re-authorisation"),
        (2, "{total} marked clients"),
    ]


def test_no_count_is_put_straight_before_a_plural_noun_in_the_tui_cli_or_daemon() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{line}: {text}"
        for root in ROOTS
        for path in sorted((SOURCE / root).rglob("*.py"))
        for line, text in counts_before_plural_nouns(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "use common/wording.py plural() (and agree()):\n" + "\n".join(found)


def test_plural_and_agree_say_one_and_many() -> None:
    assert plural(1, "client") == "1 client"
    assert plural(2, "client") == "2 clients"
    assert plural(1, "business", "businesses") == "1 business"
    assert plural(1200, "row", thousands=True) == "1,200 rows"
    assert f"{plural(1, 'client')} {agree(1, 'differs', 'differ')}" == "1 client differs"
    assert f"{plural(3, 'client')} {agree(3, 'differs', 'differ')}" == "3 clients differ"


def test_a_digest_of_one_says_client_needs() -> None:
    title, body = status_notice("needs_reauth", [("Acme", None)], digest=True)
    assert title == "1 client needs re-authorisation" and body.endswith("to see it.")
    title, body = status_notice("needs_reauth", [("Acme", None), ("Bay", None)], digest=True)
    assert title == "2 clients need re-authorisation" and body.endswith("to see them.")
    assert status_notice("expiring", [("Acme", None)], digest=True)[0] == (
        "1 client authorisation ends soon"
    )
    assert status_notice("error", [("A", None), ("B", None)], digest=True)[0] == (
        "2 clients have connection errors"
    )
