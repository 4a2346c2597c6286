"""JSON-RPC frames on the daemon's socket: decoding within limits, and encoding answers.

One JSON object per line, at most 1 MiB, nested at most ``MAX_JSON_DEPTH`` deep, with
integer literals of at most ``MAX_INT_DIGITS`` digits: all checked before or while decoding,
so no frame can make the decoder throw (:class:`FrameRefused` carries the sentence). Ids
and requests are checked here too, before anything is dispatched.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from clientlink.common.protocol import MAX_INT_DIGITS, MAX_JSON_DEPTH, ErrorCode, value_problem
from clientlink.common.wording import plural

MAX_ID_CHARS = 200


class FrameRefused(Exception):
    """A frame that is not JSON clientlink can decode; the message says why."""


# A JSON string: quotes around anything but quotes and backslashes, or escapes.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _byte in b"[{":
    _DEPTH_STEP[_byte] = 1
for _byte in b"]}":
    _DEPTH_STEP[_byte] = -1


def _too_deep(line: bytes) -> bool:
    """Whether arrays and objects nest deeper than ``MAX_JSON_DEPTH`` (outside strings)."""
    if line.count(b"[") + line.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_JSON_DEPTH:
        return False
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > MAX_JSON_DEPTH


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise FrameRefused(
            f"an integer of {plural(len(literal.lstrip('-')), 'digit')}; integers in "
            f"clientlink have at most 19 digits (SQLite's 64-bit range)"
        )
    return int(literal)


def _refuse_constant(name: str) -> Any:
    raise FrameRefused(f"{name} is not a JSON number; send a finite number")


def decode_frame(line: bytes) -> Any:
    """Decode one frame; raises :class:`FrameRefused` with a sentence, and nothing else."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameRefused(
            f"a frame must be UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    if _too_deep(line):
        raise FrameRefused(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except FrameRefused:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise FrameRefused(f"not valid JSON: {exc}") from None


def id_problem(message: Any) -> str | None:
    """What is wrong with a request's id (``None`` when it can be echoed in the answer)."""
    if not isinstance(message, dict) or "id" not in message or message["id"] is None:
        return None
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return '"id" must be a string or an integer'
    if isinstance(request_id, str) and len(request_id) > MAX_ID_CHARS:
        return f'"id" must be at most {MAX_ID_CHARS} characters'
    problem = value_problem(request_id)
    return f'"id" {problem}' if problem else None


def request_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "a request must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return 'a request must carry "jsonrpc": "2.0"'
    if not isinstance(message.get("method"), str):
        return 'a request must name its "method" as a string'
    method_problem = value_problem(message["method"])
    if method_problem:
        return f'"method" {method_problem}'
    return id_problem(message)


def encode_frame(message: dict[str, Any]) -> bytes:
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # Stored text holding a lone surrogate: escaped, the frame is still valid UTF-8.
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def error_frame(
    request_id: Any,
    code: ErrorCode | int,
    message: str,
    data: Any = None,
    method: str | None = None,
) -> bytes:
    error: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None or method:
        error["data"] = {**({"method": method} if method else {}), **(data or {})}
    return encode_frame({"jsonrpc": "2.0", "id": request_id, "error": error})
