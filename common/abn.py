"""The Australian Business Number: its checksum, the one place clientlink knows the rule.

An ABN is 11 digits. The ATO's check: subtract 1 from the first digit, multiply each digit
by its weight (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19), and the sum must divide by 89. The
sandbox generates its businesses' ABNs with the same weights; the daemon checks imported ones.
"""

from __future__ import annotations

ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def abn_digits(text: str) -> str:
    """``text`` without the spaces people write in an ABN (``51 824 753 556``)."""
    return "".join(text.split())


def abn_checksum_ok(digits: str) -> bool:
    """Whether 11 digits pass the ATO's checksum (anything else fails)."""
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        return False
    values = [int(d) for d in digits]
    values[0] -= 1
    return sum(w * v for w, v in zip(ABN_WEIGHTS, values, strict=True)) % 89 == 0


def abn_problem(text: str) -> str | None:
    """Why ``text`` is not an ABN (a sentence), or ``None`` when it is one."""
    digits = abn_digits(text)
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
        return "an ABN is 11 digits (such as 51 824 753 556)"
    if not abn_checksum_ok(digits):
        return "the ABN fails the ATO's checksum (a mistyped digit?)"
    return None


def abn_is_valid(text: str) -> bool:
    """Whether ``text`` is an ABN (spaces are ignored)."""
    return abn_checksum_ok(abn_digits(text))
