"""CSV files for people: client lists and job outcomes, safe to open in a spreadsheet.

A cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) gets a leading apostrophe, so a client named
``=HYPERLINK(...)`` stays text. Files are written whole (a temporary file renamed into
place) and readable only by their owner: they hold client details.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from clientlink.common.protocol import ErrorCode
from clientlink.daemon.rpc_errors import RpcFailure

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    """The cell's text, made inert for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def check_target(path_text: str, overwrite: bool) -> Path:
    """The path to write, or a clear error that changes nothing."""
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        raise RpcFailure(ErrorCode.INVALID_PARAMS, f"give an absolute path, not {path_text!r}")
    if not path.parent.is_dir():
        raise RpcFailure(ErrorCode.INVALID_PARAMS, f"the folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise RpcFailure(
            ErrorCode.CONFLICT, f"{path} already exists; choose another name or overwrite it"
        )
    if path.is_dir():
        raise RpcFailure(ErrorCode.INVALID_PARAMS, f"{path} is a folder")
    return path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write the rows under ``header``; returns how many rows were written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise(value) for value in row])
        count += 1
    descriptor, temporary = tempfile.mkstemp(prefix=".clientlink-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(buffer.getvalue())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
