"""Invitation templates: what placeholders exist, checking a template, rendering it.

Rendering substitutes known placeholders only — a template is parsed into literal text and
``{name}`` fields, and each field is replaced by its value as plain text. No attribute
access, indexing, conversion or format spec is allowed, so a template can never run code
(``{client_name.__class__}`` is refused when the template is saved). Subjects and values
that end up in a mail header lose line breaks, so nothing can inject a header.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from clientlink.common.protocol import ErrorCode
from clientlink.daemon.rpc_errors import RpcFailure

if TYPE_CHECKING:
    from clientlink.daemon.store import Store, TemplateRow

PLACEHOLDERS: dict[str, str] = {
    "client_name": "the client's name",
    "practice_name": "your practice's name",
    "bank_names": "the banks to connect, e.g. 'ANZ and Westpac'",
    "link": "the client's personal link to connect those banks",
    "link_expires": "when the link stops working, e.g. '29 Nov 2026'",
}

SMS_MAX_CHARACTERS = 1600
"""Twilio refuses longer bodies."""

_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("\f^{}\\[~]|€")


@dataclass(frozen=True)
class Template:
    """An invitation template (built-in or the practice's own)."""

    id: str
    name: str
    channel: str
    subject: str | None
    body: str
    builtin: bool = False

    @classmethod
    def from_row(cls, row: TemplateRow) -> Template:
        """The practice's own template, from its stored row."""
        return cls(
            id=str(row.id), name=row.name, channel=row.channel, subject=row.subject, body=row.body
        )


DEFAULT_EMAIL = Template(
    id="default-email",
    name="Default email invitation",
    channel="email",
    subject="{practice_name}: please connect your bank feeds",
    body=(
        "Dear {client_name},\n\n"
        "To keep your books up to date, {practice_name} needs you to connect the bank feeds "
        "for {bank_names}.\n\n"
        "Use this personal link (it works once, until {link_expires}):\n{link}\n\n"
        "It takes a few minutes: choose each bank, sign in with your internet banking "
        "details, and allow read-only access.\n\n"
        "Thank you,\n{practice_name}"
    ),
    builtin=True,
)

DEFAULT_SMS = Template(
    id="default-sms",
    name="Default SMS invitation",
    channel="sms",
    subject=None,
    body=(
        "{practice_name}: please connect your bank feeds for {bank_names}. "
        "Your link (until {link_expires}): {link}"
    ),
    builtin=True,
)

BUILTIN_TEMPLATES = {DEFAULT_EMAIL.id: DEFAULT_EMAIL, DEFAULT_SMS.id: DEFAULT_SMS}


class TemplateBook:
    """The built-in templates and the practice's own (stored), by id."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, template_id: str) -> Template:
        """The template, or a NOT_FOUND error that names the id."""
        if template_id in BUILTIN_TEMPLATES:
            return BUILTIN_TEMPLATES[template_id]
        row = await self._store.get_template(int(template_id)) if template_id.isdigit() else None
        if row is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no template {template_id!r}")
        return Template.from_row(row)

    async def all(self) -> list[Template]:
        """The built-in templates first, then the practice's own."""
        own = [Template.from_row(row) for row in await self._store.list_templates()]
        return [*BUILTIN_TEMPLATES.values(), *own]


def placeholder_values(
    client_name: str, practice_name: str, bank_names: list[str], link: str, link_expires: datetime
) -> dict[str, str]:
    """What each placeholder stands for in one client's invitation."""
    names = [name for name in bank_names if name]
    joined = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
    return {
        "client_name": client_name,
        "practice_name": practice_name,
        "bank_names": joined or "your bank accounts",
        "link": link,
        "link_expires": link_expires.strftime("%d %b %Y"),
    }


def _fields(text: str, where: str) -> list[tuple[str, str | None]]:
    """The template as (literal, field) pairs, refusing anything but plain placeholders."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise RpcFailure(
            ErrorCode.INVALID_PARAMS,
            f"the {where} has an unmatched brace ({exc}); write a literal brace as {{{{ or }}}}",
        ) from exc
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None:
            if field not in PLACEHOLDERS or spec or conversion:
                shown = (
                    "{"
                    + field
                    + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "")
                    + "}"
                )
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"the {where} uses {shown}, which is not a placeholder; use one of "
                    + ", ".join("{" + name + "}" for name in PLACEHOLDERS),
                )
        pieces.append((literal, field))
    return pieces


def check_template(channel: str, subject: str | None, body: str) -> None:
    """Refuse a template that cannot work: unknown placeholders, no link, a bad subject."""
    if not body.strip():
        raise RpcFailure(ErrorCode.INVALID_PARAMS, "the text is empty")
    body_fields = {field for _, field in _fields(body, "text") if field}
    if "link" not in body_fields:
        raise RpcFailure(
            ErrorCode.INVALID_PARAMS,
            "the text has no {link}: without it the client cannot connect the banks",
        )
    if channel == "email":
        if not subject or not subject.strip():
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "an email template needs a subject")
        if "\r" in subject or "\n" in subject:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "the subject must be one line")
        _fields(subject, "subject")
    elif subject:
        raise RpcFailure(ErrorCode.INVALID_PARAMS, "an SMS template has no subject")


def render_text(text: str, values: dict[str, str], *, one_line: bool = False) -> str:
    """Substitute the placeholders of an already checked text."""
    out = []
    for literal, field in _fields(text, "text"):
        out.append(literal)
        if field:
            value = values.get(field, "")
            if one_line:
                value = " ".join(value.split())
            out.append(value)
    result = "".join(out)
    return " ".join(result.split()) if one_line else result


def sms_segments(text: str) -> tuple[str, int]:
    """(encoding, segments) as carriers count them: the one rule for the editor and the send.

    One segment holds 160 GSM-7 septets (an extension character such as ``€`` or ``{``
    takes two) or 70 UCS-2 units (a character beyond the BMP takes two); a concatenated
    message's segments lose room to their header (153 and 67), and a segment never splits
    an escape pair or a surrogate pair.
    """
    if all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in text):
        units = [2 if ch in _GSM7_EXTENDED else 1 for ch in text]
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi, encoding = 70, 67, "UCS-2"
    if not units:
        return encoding, 0
    if sum(units) <= single:
        return encoding, 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return encoding, segments


DEFAULT_LINK_LENGTH = 80
"""The link length counts assume before the bank-feed service has made any link."""

_EXAMPLE_LINK = "https://example.invalid/your-personal-link/"


def example_link(length: int) -> str:
    """A stand-in for a client's personal link, ``length`` characters long (as real ones)."""
    return (_EXAMPLE_LINK + "x" * max(0, length - len(_EXAMPLE_LINK)))[: max(length, 24)]
