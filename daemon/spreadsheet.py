"""Spreadsheets of clients, read as a stream of rows whatever their size or intent.

A practice keeps its client list in a spreadsheet: a CSV file (comma, semicolon or tab
between cells, UTF-8 with or without the byte-order mark Excel writes) or an XLSX workbook
(its first sheet). :func:`open_spreadsheet` takes a private copy of the file (so what is
checked is exactly what is imported, and its SHA-256 digest names that content), reads the
heading row, and then :meth:`Spreadsheet.rows` yields one :class:`SheetRow` at a time.

Everything is bounded, and a file beyond a bound is refused with a sentence, never read
into memory whole: its size (:data:`MAX_FILE_BYTES`), its rows (:data:`MAX_ROWS`), one row's
text (:data:`MAX_RECORD_CHARS`), an XLSX's parts once decompressed
(:data:`MAX_XLSX_EXPANDED_BYTES`, :data:`MAX_XLSX_PARTS`, and the parts openpyxl reads whole,
such as the shared strings: :data:`MAX_XLSX_WHOLE_PART_BYTES`). A cell longer than
:data:`MAX_CELL_CHARS` makes its row unreadable (the row says so) rather than the file.

Cells are data: a cell holding ``=cmd|' /C calc'!A0`` or an escape sequence is kept as the
text it is (an XLSX is opened with ``data_only``: a formula gives its last computed value,
never runs). Whatever shows a cell on a terminal passes it through the safe-text paths.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import hashlib
import io
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clientlink.common.protocol import ErrorCode
from clientlink.common.wording import plural
from clientlink.daemon.rpc_errors import RpcFailure

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 100_000
MAX_CELL_CHARS = 1000
MAX_RECORD_CHARS = 64 * 1024
MAX_COLUMNS = 64
MAX_XLSX_EXPANDED_BYTES = 256 * 1024 * 1024
MAX_XLSX_PARTS = 10_000
MAX_XLSX_WHOLE_PART_BYTES = 32 * 1024 * 1024
"""openpyxl streams a worksheet, but reads its other parts (the shared strings, styles) whole:
none of them may expand beyond this."""
COPY_CHUNK = 1024 * 1024

FIELDS = ("name", "abn", "software", "software_id", "email", "mobile")
REQUIRED = ("name", "software")
FIELD_LABELS = {
    "name": "Name",
    "abn": "ABN",
    "software": "Software",
    "software_id": "Software ID",
    "email": "Email",
    "mobile": "Mobile",
}
"""Each column as the preview and the error messages name it."""

_HEADINGS = {
    "name": ("name", "client name", "client", "fund name", "fund", "business name", "entity"),
    "abn": ("abn", "australian business number"),
    "software": ("software", "accounting software", "provider"),
    "software_id": (
        "software id",
        "software's id",
        "fund id",
        "tenant id",
        "tenant",
        "company id",
        "business id",
    ),
    "email": ("email", "e-mail", "email address"),
    "mobile": ("mobile", "phone", "mobile number", "mobile phone", "phone number"),
}


def heading_key(text: str) -> str:
    """A heading as compared: letters and digits only, case-folded (``Software's ID`` and
    ``software_id`` are the same)."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


HEADING_FIELDS = {heading_key(word): field for field, words in _HEADINGS.items() for word in words}


def _refuse(message: str) -> RpcFailure:
    return RpcFailure(ErrorCode.INVALID_PARAMS, message)


@dataclass(frozen=True)
class SheetRow:
    """One row under the heading: its number as the spreadsheet shows it (the heading row
    is usually 1), each column's text ('' when empty), and why the row cannot be read."""

    number: int
    values: dict[str, str]
    problem: str | None = None


class Spreadsheet:
    """An opened spreadsheet: its digest, its kind, its columns, then its rows (once)."""

    def __init__(
        self,
        digest: str,
        kind: str,
        copy: IO[bytes],
        records: Iterator[tuple[int, list[Any]]],
        closers: list[Any],
    ) -> None:
        self.digest = digest
        self.kind = kind
        self._copy = copy
        self._records = records
        self._closers = closers
        self.columns: dict[str, str] = {}
        self._positions: list[str | None] = []
        self._read_heading()

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer.close()
        self._copy.close()

    def __enter__(self) -> Spreadsheet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read_heading(self) -> None:
        for _, cells in self._records:
            texts = [cell_text(cell) for cell in cells]
            if any(texts):
                self._set_heading(texts)
                return
        raise _refuse("the file is empty: give a heading row (Name, ABN, Software, ...) and rows")

    def _set_heading(self, texts: list[str]) -> None:
        while texts and not texts[-1]:
            texts.pop()
        if len(texts) > MAX_COLUMNS:
            raise _refuse(
                f"the heading row has {plural(len(texts), 'column')}; a client list has at most "
                f"{MAX_COLUMNS} (expected: {_expected()})"
            )
        found = ", ".join(repr(text) for text in texts)
        positions: list[str | None] = []
        unknown, repeated = [], []
        for number, text in enumerate(texts, start=1):
            field = HEADING_FIELDS.get(heading_key(text))
            if not text:
                raise _refuse(
                    f"column {column_letter(number)} of the heading row is blank; name every "
                    f"column (found: {found}; expected: {_expected()})"
                )
            if field is None:
                unknown.append(repr(text))
            elif field in self.columns:
                repeated.append(f"{text!r} (also {self.columns[field]!r})")
            else:
                self.columns[field] = text
            positions.append(field)
        problems = []
        if unknown:
            problems.append(f"unknown columns {', '.join(unknown)}")
        if repeated:
            problems.append(f"columns given twice: {', '.join(repeated)}")
        missing = [FIELD_LABELS[f] for f in REQUIRED if f not in self.columns]
        if missing:
            problems.append(f"missing the {' and '.join(missing)} column")
        if problems:
            raise _refuse(
                f"the heading row is not a client list: {'; '.join(problems)}. Found: {found}. "
                f"Expected: {_expected()}"
            )
        self._positions = positions

    def rows(self) -> Iterator[SheetRow]:
        """The rows under the heading, blank rows left out; at most :data:`MAX_ROWS`."""
        count = 0
        width = len(self._positions)
        for number, cells in self._records:
            texts = [cell_text(cell) for cell in cells]
            if not any(texts):
                continue
            count += 1
            if count > MAX_ROWS:
                raise _refuse(
                    f"the file has more than {MAX_ROWS:,} rows of clients; split it into "
                    "smaller files and import each"
                )
            values = {field: "" for field in FIELDS}
            problem = None
            for position, text in enumerate(texts):
                if position >= width:
                    if text:
                        problem = (
                            f"column {column_letter(position + 1)} holds a value but has no heading"
                        )
                    continue
                field = self._positions[position]
                assert field is not None
                if len(text) > MAX_CELL_CHARS:
                    problem = (
                        f"the {FIELD_LABELS[field]} cell is "
                        f"{plural(len(text), 'character', thousands=True)} long "
                        f"(at most {MAX_CELL_CHARS:,})"
                    )
                    text = text[:MAX_CELL_CHARS]
                values[field] = text
            yield SheetRow(number=number, values=values, problem=problem)


def _expected() -> str:
    return (
        "Name (or Client name, Fund name), ABN, Software, Software ID (or Fund ID, Tenant ID), "
        "Email, Mobile (or Phone); Name and Software are required"
    )


def column_letter(number: int) -> str:
    """The spreadsheet's name of column ``number`` (1 is A, 27 is AA)."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def cell_text(value: Any) -> str:
    """A cell as text: a whole number without ``.0`` (an ABN or phone typed as a number),
    a date as ISO 8601, surrounding spaces removed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


# --------------------------------------------------------------------------- opening


def open_spreadsheet(path: Path, scratch_dir: Path, may_read: Any = None) -> Spreadsheet:
    """Copy ``path`` privately (into an unnamed file in ``scratch_dir``) and open the copy.

    ``path`` is absolute with the folders above it already resolved; its last component is
    never followed. ``may_read(info, path)`` (an ``os.stat_result``) raises when the caller may
    not read the file. Blocking: run it in a thread.
    """
    copy, digest, head = _private_copy(path, scratch_dir, may_read)
    try:
        if head.startswith(b"PK\x03\x04"):
            return _open_xlsx(copy, digest)
        if head.startswith(b"\xd0\xcf\x11\xe0"):
            raise _refuse(
                f"{path} is an old-style .xls workbook (or a password-protected one); save "
                "it as .xlsx or as CSV UTF-8 and import that"
            )
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _refuse(
                f"{path} is UTF-16 text; save it as CSV UTF-8 (Comma delimited) and import that"
            )
        return _open_csv(copy, digest)
    except BaseException:
        copy.close()
        raise


def _private_copy(path: Path, scratch_dir: Path, may_read: Any) -> tuple[IO[bytes], str, bytes]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise _refuse(f"{path} does not exist; give the path of a CSV or XLSX file") from None
    except OSError as exc:
        raise _refuse(f"cannot read {path}: {exc.strerror}") from exc
    _check_kind(path, info)
    if may_read is not None:
        may_read(info, path)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # it became a symlink after the check
            raise _refuse(f"{path} is a symbolic link; give the file itself") from exc
        raise _refuse(f"cannot read {path}: {exc.strerror}") from exc
    with os.fdopen(descriptor, "rb") as source:
        info = os.fstat(source.fileno())
        _check_kind(path, info)
        if may_read is not None:
            may_read(info, path)
        if info.st_size > MAX_FILE_BYTES:
            raise _refuse(_too_big(path, info.st_size))
        try:
            copy = tempfile.TemporaryFile(dir=scratch_dir)
        except OSError as exc:
            raise _refuse(f"cannot make room to read {path}: {exc.strerror}") from exc
        try:
            digest = hashlib.sha256()
            size = 0
            head = b""
            while chunk := source.read(COPY_CHUNK):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise _refuse(_too_big(path, size))
                if not head:
                    head = chunk[:8]
                digest.update(chunk)
                copy.write(chunk)
            copy.seek(0)
        except OSError as exc:
            copy.close()
            raise _refuse(f"cannot read {path}: {exc.strerror}") from exc
        except BaseException:
            copy.close()
            raise
    return copy, digest.hexdigest(), head


def _too_big(path: Path, size: int) -> str:
    return (
        f"{path} is {size / 1024 / 1024:.0f} MiB; a client list is at most "
        f"{MAX_FILE_BYTES // 1024 // 1024} MiB: split it into smaller files"
    )


def _check_kind(path: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(f"{path} is a symbolic link; give the file itself")
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(f"{path} is a folder; give the path of a CSV or XLSX file in it")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(
            f"{path} is not a regular file (a pipe, socket or device); give a CSV or XLSX file"
        )


# --------------------------------------------------------------------------- CSV


class _BoundedLines:
    """The text's lines, refusing one row (one record, whatever lines it spans) longer than
    :data:`MAX_RECORD_CHARS`: a file that is one endless line never becomes one list."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self.record_chars = 0
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            line = self._text.readline(MAX_RECORD_CHARS + 1)
        except UnicodeDecodeError as exc:
            raise _refuse(
                f"the file is not UTF-8 text (line {self.line + 1} has bytes that are not "
                "UTF-8); save it from your spreadsheet as CSV UTF-8 (Comma delimited)"
            ) from exc
        if not line:
            raise StopIteration
        self.line += 1
        self.record_chars += len(line)
        if self.record_chars > MAX_RECORD_CHARS:
            raise _refuse(
                f"line {self.line} of the file is part of a row longer than "
                f"{MAX_RECORD_CHARS // 1024} KiB of text; this is not a client list"
            )
        return line


def _open_csv(copy: IO[bytes], digest: str) -> Spreadsheet:
    text = io.TextIOWrapper(copy, encoding="utf-8-sig", errors="strict", newline="")
    lines = _BoundedLines(text)
    first = ""
    for line in lines:
        if line.strip():
            first = line
            break
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    records = _csv_records(_chain_first(first, lines), lines, delimiter, heading_line=lines.line)
    return Spreadsheet(digest, "csv", copy, records, [text])


def _chain_first(first: str, lines: _BoundedLines) -> Iterator[str]:
    if first:
        lines.record_chars = len(first)
        yield first
    yield from lines


def _csv_records(
    source: Iterable[str], lines: _BoundedLines, delimiter: str, heading_line: int
) -> Iterator[tuple[int, list[Any]]]:
    reader = csv.reader(source, delimiter=delimiter, strict=False)
    number = heading_line - 1  # the heading is the row number it has in a spreadsheet
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _refuse(f"line {lines.line} of the file is not valid CSV: {exc}") from exc
        number += 1
        lines.record_chars = 0
        yield number, record


# --------------------------------------------------------------------------- XLSX


def _open_xlsx(copy: IO[bytes], digest: str) -> Spreadsheet:
    import openpyxl  # a few hundred milliseconds to import: only when a workbook comes

    try:
        with zipfile.ZipFile(copy) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse(f"the file looks like a workbook but is not a readable XLSX: {exc}") from exc
    if len(parts) > MAX_XLSX_PARTS:
        raise _refuse(
            f"the workbook has {plural(len(parts), 'part', thousands=True)}; "
            "this is not a client list"
        )
    expanded = sum(part.file_size for part in parts)
    for part in parts:
        if part.file_size > MAX_XLSX_WHOLE_PART_BYTES and not part.filename.startswith(
            "xl/worksheets/"
        ):
            raise _refuse(
                f"the workbook's {part.filename} expands to {part.file_size / 1024 / 1024:,.0f} "
                f"MiB (at most {MAX_XLSX_WHOLE_PART_BYTES // 1024 // 1024} MiB); save the client "
                "list on its own, or as CSV UTF-8"
            )
    if expanded > MAX_XLSX_EXPANDED_BYTES:
        raise _refuse(
            f"the workbook expands to {expanded / 1024 / 1024:,.0f} MiB when opened (at most "
            f"{MAX_XLSX_EXPANDED_BYTES // 1024 // 1024} MiB); save the client list on its own"
        )
    copy.seek(0)
    try:
        workbook = openpyxl.load_workbook(copy, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
    except Exception as exc:  # a hostile workbook can fail anywhere inside the parser
        raise _refuse(f"the file is not a readable XLSX workbook ({type(exc).__name__})") from exc
    return Spreadsheet(digest, "xlsx", copy, _xlsx_records(rows), [workbook])


def _xlsx_records(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[int, list[Any]]]:
    number = 0
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # a damaged sheet part
            raise _refuse(
                f"row {number + 1} of the workbook cannot be read ({type(exc).__name__}); "
                "save it again from your spreadsheet"
            ) from exc
        number += 1
        cells = list(values)
        while cells and cells[-1] is None:
            cells.pop()
        yield number, cells
