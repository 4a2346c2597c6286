"""Australian Business Numbers: the ATO's checksum, the one place that decides validity."""

from __future__ import annotations

import re

ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def abn_is_valid(abn: str) -> bool:
    """Check an Australian Business Number with the ATO checksum (spaces are ignored)."""
    digits = re.sub(r"\s+", "", abn)
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    values = [int(d) for d in digits]
    values[0] -= 1
    return sum(w * v for w, v in zip(ABN_WEIGHTS, values, strict=True)) % 89 == 0
