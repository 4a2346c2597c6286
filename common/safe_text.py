"""Text from outside (client names, provider error descriptions) made safe for a terminal.

A business names itself in its own accounting file and a provider writes its own error
descriptions, so both may hold escape sequences: OSC 52 (sets the clipboard), OSC 0 (the
window title), clear-screen, 8-bit CSI (0x9b), or bidirectional overrides that make a name
read differently from what it is. The daemon stores such text as received; whatever shows it
on a terminal (CLI tables, the TUI, the daemon's log) passes it through :func:`visible` first,
and JSON written to a terminal goes through :func:`terminal_json`.

Each unsafe character is *made visible*, not stripped, so a person sees that something odd is
there, and one character always becomes exactly one character of width one (table columns
and truncation stay right):

- C0 controls 0x00-0x1F become their Unicode control pictures (ESC is ``␛``, LF ``␊``,
  BEL ``␇``), and DEL 0x7F becomes ``␡``: the picture says which control it was.
- C1 controls 0x80-0x9F (0x9b is CSI), bidirectional marks, overrides and isolates
  (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069), the line and paragraph separators
  (U+2028/9) and lone surrogates become U+FFFD, the replacement character: they have no
  picture of their own.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# What json.dumps leaves raw (it escapes C0 and the quote and backslash itself).
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_DEL_PICTURE = "\u2421"
_REPLACEMENT = "\ufffd"


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return _DEL_PICTURE
    return _REPLACEMENT


def _picture_keeping_lines(match: re.Match[str]) -> str:
    return match.group() if match.group() == "\n" else _picture(match)


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, bidi or separator character made visible (see above).

    ``keep_newlines`` keeps LF as it is, for multi-line text shown as such (a message body,
    a traceback); in a table cell or a log line a newline is itself suspicious.
    """
    if not text or _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_picture_keeping_lines if keep_newlines else _picture, text)


def terminal_json(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON that is safe to print: every unsafe character is a ``\\uXXXX`` escape.

    Non-ASCII letters stay readable (``Café``); the JSON parses to exactly the stored values.
    """
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class SafeLogFormatter(logging.Formatter):
    """A log formatter that makes every message and traceback safe for a terminal.

    The one place for the log: a message's arguments (a client's name, a provider's error
    description) are escaped after they are put into the message, and a message stays one
    line (a newline in it is shown as ``␊``, so no one can forge a log line).
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return visible(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:
        return visible(super().formatStack(stack_info), keep_newlines=True)
