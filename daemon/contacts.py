"""Client contact details, checked before they are stored.

Email addresses are checked by email-validator for syntax only (no network: a practice
may be offline, and deliverability is the mail server's verdict). Phone numbers are parsed
by phonenumbers with Australia as the default region and stored in E.164 form.
"""

from __future__ import annotations

import email_validator
import phonenumbers

from clientlink.common.protocol import ErrorCode
from clientlink.daemon.rpc_errors import RpcFailure

DEFAULT_REGION = "AU"


def normalise_email(text: str) -> str:
    """The address in normal form, or a clear error."""
    try:
        checked = email_validator.validate_email(text.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise RpcFailure(
            ErrorCode.INVALID_PARAMS, f"{text!r} is not a valid email address: {exc}"
        ) from exc
    return checked.normalized


def normalise_phone(text: str, region: str = DEFAULT_REGION) -> str:
    """The number in E.164 form (``+61491570156``), or a clear error."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise RpcFailure(
            ErrorCode.INVALID_PARAMS, f"{text!r} is not a phone number: {exc}"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise RpcFailure(
            ErrorCode.INVALID_PARAMS,
            f"{text!r} is not a valid phone number (an Australian mobile looks like "
            "0491 570 156 or +61 491 570 156)",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    """Whether an E.164 number can receive SMS (a mobile, or fixed-or-mobile)."""
    kind = phonenumbers.number_type(phonenumbers.parse(e164))
    return kind in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
