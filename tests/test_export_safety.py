"""Exports never write over clientlink's own files, nor through links, sockets or devices.

The database must come through every refused export byte for byte (same file, same rows)
and the daemon must keep serving.
"""

from __future__ import annotations

import contextlib
import csv
import os
import pwd
import secrets
import shutil
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.export import neutralise, write_csv
from tests.test_daemon_files import fill


def database_dump(paths) -> str:
    """Every row of the database, read through a second (read-only) connection; the audit
    table is left out (a successful export records itself there)."""
    uri = f"file:{paths.database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return "\n".join(line for line in db.iterdump() if 'INTO "audit"' not in line)


async def refused(
    rpc, path: str, *, overwrite: bool = True, method: p.Method = p.CLIENTS_EXPORT
) -> str:
    params = {"path": path, "overwrite": overwrite}
    if method is p.JOBS_EXPORT:
        params["job_id"] = 1
    with pytest.raises(RpcError) as caught:
        await rpc.call(method, **params)
    assert caught.value.code in (ErrorCode.INVALID_PARAMS, ErrorCode.CONFLICT)
    return caught.value.message


@pytest.fixture
async def seeded(practice):
    rpc = await practice.connect()
    before = database_dump(practice.paths)
    inode = os.stat(practice.paths.database).st_ino
    yield practice, rpc
    # Whatever the test tried, the database is the same file with the same rows,
    # and the daemon still answers.
    assert os.stat(practice.paths.database).st_ino == inode
    assert database_dump(practice.paths) == before
    assert (await rpc.call(p.CLIENTS_LIST, limit=1)).total > 0


async def test_export_over_the_database_is_refused_and_the_database_survives(seeded):
    practice, rpc = seeded
    paths = practice.paths
    for target in (
        paths.database,
        paths.database.with_name("clientlink.db-wal"),
        paths.lock_file,
        paths.socket,
        paths.config_file,
        paths.state_dir / "clientlinkd.log",
        paths.data_dir / "new-file.csv",
        paths.runtime_dir,
    ):
        message = await refused(rpc, str(target))
        assert "clientlink's own folder" in message, message
    assert "clientlink's own folder" in await refused(
        rpc, str(paths.database), method=p.JOBS_EXPORT
    )


async def test_a_symlinked_folder_into_the_data_folder_is_refused(seeded, short_tmp):
    practice, rpc = seeded
    link = short_tmp / "innocent"
    link.symlink_to(practice.paths.data_dir)
    message = await refused(rpc, str(link / "clientlink.db"))
    assert "clientlink's own folder" in message


async def test_only_regular_files_are_written(seeded, short_tmp):
    _, rpc = seeded
    elsewhere = short_tmp / "ordinary.csv"
    elsewhere.write_text("keep me\n")
    link = short_tmp / "link.csv"
    link.symlink_to(elsewhere)
    assert "symbolic link" in await refused(rpc, str(link))
    assert elsewhere.read_text() == "keep me\n" and link.is_symlink()
    dangling = short_tmp / "dangling.csv"
    dangling.symlink_to(short_tmp / "nowhere.csv")
    assert "symbolic link" in await refused(rpc, str(dangling), overwrite=False)
    assert not (short_tmp / "nowhere.csv").exists()

    fifo = short_tmp / "pipe.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in await refused(rpc, str(fifo))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(short_tmp / "sock.csv"))
    try:
        assert "not a regular file" in await refused(rpc, str(short_tmp / "sock.csv"))
    finally:
        listener.close()
    assert "not a regular file" in await refused(rpc, "/dev/null")
    assert "is a folder" in await refused(rpc, str(short_tmp))

    # An ordinary file is still replaced whole when asked.
    result = await rpc.call(p.CLIENTS_EXPORT, path=str(elsewhere), overwrite=True)
    assert result.rows > 0 and elsewhere.read_text().startswith("Name,")


async def test_bad_paths_get_a_sentence(seeded):
    _, rpc = seeded
    assert "NUL" in await refused(rpc, "/tmp/a\x00b.csv")  # refused by the protocol model
    assert "home folder" in await refused(rpc, "~")
    assert "only '~'" in await refused(rpc, "~nobody/x.csv")
    assert "absolute" in await refused(rpc, "clients.csv")
    assert "file name" in await refused(rpc, "/tmp/..")
    missing = f"/tmp/cl-missing-{secrets.token_hex(4)}/x.csv"
    message = await refused(rpc, missing)
    assert "does not exist" in message and "only inside your home" in message
    assert not Path(missing).parent.exists()


async def test_tilde_is_the_callers_home_and_missing_folders_there_are_created(seeded, monkeypatch):
    _, rpc = seeded
    # The caller's home comes from the account database, not the daemon's environment
    # (the fuzzer found '~' failing where HOME was unset).
    monkeypatch.delenv("HOME", raising=False)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    folder = f"clientlink-test-{secrets.token_hex(4)}"
    try:
        result = await rpc.call(p.CLIENTS_EXPORT, path=f"~/{folder}/exports/clients.csv")
        assert result.path == str(home / folder / "exports" / "clients.csv")
        assert result.created_folder == str(home / folder / "exports")
        assert Path(result.path).read_text().startswith("Name,")
        again = await rpc.call(
            p.CLIENTS_EXPORT, path=f"~/{folder}/exports/again.csv", overwrite=True
        )
        assert again.created_folder is None
    finally:
        shutil.rmtree(home / folder, ignore_errors=True)


def test_cells_starting_with_a_line_feed_are_neutralised(short_tmp):
    path = short_tmp / "clients.csv"
    write_csv(path, ["id", "name"], [[1, "\n=1+1"], [2, "\r=2"], [3, "\t=3"], [4, "Smith"]])
    rows = {row[0]: row[1] for row in csv.reader(path.open(newline=""))}
    assert rows == {"id": "name", "1": "'\n=1+1", "2": "'\r=2", "3": "'\t=3", "4": "Smith"}
    for start in ("\n", "\r", "\t", "=", "+", "-", "@"):
        assert neutralise(start + "x") == "'" + start + "x"


def test_only_what_a_spreadsheet_would_evaluate_is_neutralised():
    # Left as they are: phones in E.164, plain numbers with a sign, ordinary text.
    for inert in ("+61491579437", "+14155550123", "-12.5", "+3", "-0.5e3", "Smith & Co", ""):
        assert neutralise(inert) == inert, inert
    # Made text: anything a spreadsheet would run, with or without a sign in front.
    for formula in (
        "=1+1",
        "@SUM(A1)",
        "+1+2",
        "-2+3",
        "+SUM(A1:A9)",
        '-cmd|"/c calc"!A1',
        "+61 491 579 437",  # spaces: not a plain number, so a spreadsheet would evaluate it
        "-",
        "+",
        "\t=1",
        "\r=1",
        "\n=1",
    ):
        assert neutralise(formula) == "'" + formula, formula


async def test_clients_export_reads_as_people_say_it_unless_machine_names_are_asked(
    seeded, short_tmp
):
    _, rpc = seeded
    columns = ["name", "provider", "status", "phone"]
    words = short_tmp / "words.csv"
    await rpc.call(p.CLIENTS_EXPORT, path=str(words), columns=columns)
    rows = list(csv.reader(words.open(newline="", encoding="utf-8")))
    assert rows[0] == ["Name", "Software", "Status", "Phone"]
    statuses = {row[2] for row in rows[1:]}
    assert "Needs re-auth" in statuses and "Connected" in statuses, statuses
    assert statuses <= {s.label for s in p.ConnectionStatus}
    software = {item.display_name for item in (await rpc.call(p.PROVIDERS_LIST)).items}
    assert {row[1] for row in rows[1:]} <= software, rows[1]
    phones = [row[3] for row in rows[1:] if row[3]]
    assert phones and all(phone.startswith("+") for phone in phones), phones[:3]

    machine = short_tmp / "machine.csv"
    await rpc.call(p.CLIENTS_EXPORT, path=str(machine), columns=columns, machine_names=True)
    rows = list(csv.reader(machine.open(newline="", encoding="utf-8")))
    assert rows[0] == columns
    assert {row[2] for row in rows[1:]} <= {s.value for s in p.ConnectionStatus}
    assert "needs_reauth" in {row[2] for row in rows[1:]}
    assert "xero" in {row[1] for row in rows[1:]}


@pytest.fixture
def full_folder(short_tmp):
    """A folder on a tiny tmpfs that is already full."""
    folder = short_tmp / "full"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    try:
        fill(folder)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_an_export_to_a_full_disk_says_so_and_leaves_nothing(seeded, full_folder):
    _, rpc = seeded
    message = await refused(rpc, str(full_folder / "clients.csv"), overwrite=False)
    assert "No space left on device" in message and "nothing was written" in message
    assert sorted(p.name for p in full_folder.iterdir()) == ["filler"]
