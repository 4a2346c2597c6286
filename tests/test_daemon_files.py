"""The daemon's own files: one writer, a database that must stay put, room on disk, modes.

Real files, a real tmpfs for the full disk (CI runs as root), real clientlinkd processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import keyring
import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.config import load_config
from clientlink.common.paths import UnsafeFolder, default_runtime_dir, ensure_private_dir
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.datafiles import DataFilesProblem, DiskFull, installation_marker
from clientlink.daemon.service import Daemon
from clientlink.daemon.store import Store, TenantRow, split_statements
from clientlink.daemon.store import schema as store_schema
from tests.helpers import DaemonProcess, MemoryKeyring, wait_until

TEMPLATE = {"name": "Hello", "channel": "email", "subject": "Hi", "body": "Dear you: {link}"}


def daemon_command(home, *extra: str) -> list[str]:
    root = str(home.config_dir.parent)
    return [sys.executable, "-m", "clientlink.daemon.main", "--home", root, *extra]


async def run_to_exit(home, *extra: str, within: float = 30) -> tuple[int, str]:
    """Run clientlinkd expecting it to exit by itself; its exit code and log."""
    process = await asyncio.create_subprocess_exec(
        *daemon_command(home, *extra), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def start_and_stop(home) -> None:
    daemon = Daemon(home, load_config(home.config_file), desktop=None)
    await daemon.start()
    await daemon.stop()


# ---------------------------------------------------------------------- migrations


def test_migrations_split_only_where_sqlite_says_a_statement_ends():
    script = """
    CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT DEFAULT 'a;b');
    CREATE TABLE log (note TEXT);
    CREATE TRIGGER t_logged AFTER INSERT ON t BEGIN
        INSERT INTO log (note) VALUES ('added; ' || new.note);
        INSERT INTO log (note) VALUES ('second');
    END;
    INSERT INTO t (note) VALUES (';');
    """
    statements = split_statements(script)
    assert len(statements) == 4
    assert statements[2].startswith("CREATE TRIGGER") and statements[2].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE x (a TEXT)")


async def test_a_migration_with_a_trigger_and_a_semicolon_literal_runs(short_tmp, monkeypatch):
    extra = """
    CREATE TABLE trigger_test (id INTEGER PRIMARY KEY, note TEXT NOT NULL DEFAULT ';');
    CREATE TABLE trigger_log (note TEXT);
    CREATE TRIGGER trigger_test_logged AFTER INSERT ON trigger_test BEGIN
        INSERT INTO trigger_log (note) VALUES ('added; ' || new.note);
    END;
    INSERT INTO trigger_test DEFAULT VALUES;
    """
    monkeypatch.setattr(store_schema, "MIGRATIONS", [*store_schema.MIGRATIONS, extra])
    store = await Store.open(short_tmp / "data" / "clientlink.db")
    try:
        rows = await store._fetchall("SELECT note FROM trigger_log")
        assert [row["note"] for row in rows] == ["added; ;"]
    finally:
        await store.close()


# ---------------------------------------------------------------------- one writer


async def test_a_second_daemon_refuses_even_after_the_runtime_folder_is_wiped(home):
    first = DaemonProcess(home)
    client = await first.start()
    try:
        await client.call(p.TEMPLATES_CREATE, **TEMPLATE)
        await client.close()
        shutil.rmtree(home.runtime_dir)  # what a tmpfs cleaner does to /run/user/<uid>
        code, log = await run_to_exit(home)
        assert code != 0
        assert "already using the database" in log and str(home.database) in log
        assert "Traceback" not in log
        assert first.process is not None and first.process.returncode is None
    finally:
        await first.stop()


async def test_the_writers_lock_lives_beside_the_database(home):
    assert home.lock_file.parent == home.database.parent
    store = await Store.open(home.database)
    try:
        with pytest.raises(DataFilesProblem, match="already using the database"):
            await Store.open(home.database)
    finally:
        await store.close()
    again = await Store.open(home.database)  # free again once closed
    await again.close()


# ---------------------------------------------------------------------- a vanishing database


async def test_a_deleted_database_stops_writes_and_status_says_why(daemon, rpc):
    await rpc.call(p.TEMPLATES_CREATE, **TEMPLATE)
    os.unlink(daemon.paths.database)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.TEMPLATES_CREATE, **{**TEMPLATE, "name": "Lost"})
    assert caught.value.code == ErrorCode.STORE_UNWRITABLE
    assert "was deleted while clientlinkd was running" in caught.value.message
    status = await rpc.call(p.DAEMON_STATUS)
    assert "was deleted" in status.database_problem
    assert daemon.daemon.failed.is_set()


async def test_a_replaced_database_is_noticed_without_any_write(daemon, rpc):
    other = daemon.paths.data_dir / "other.db"
    sqlite3.connect(other).close()
    os.replace(other, daemon.paths.database)
    status = await rpc.call(p.DAEMON_STATUS)
    assert "was replaced by another file" in status.database_problem
    assert daemon.daemon.failed.is_set()


async def test_clientlinkd_exits_non_zero_when_its_database_is_deleted_and_will_not_start_empty(
    home,
):
    running = DaemonProcess(home)
    client = await running.start()
    await client.call(p.TEMPLATES_CREATE, **TEMPLATE)
    await client.close()
    for suffix in ("", "-wal", "-shm"):
        home.database.with_name(home.database.name + suffix).unlink(missing_ok=True)
    assert running.process is not None
    code = await asyncio.wait_for(running.process.wait(), 20)
    log = (home.state_dir / "clientlinkd.log").read_text()
    assert code == 74 and "was deleted while clientlinkd was running" in log
    assert "Traceback" not in log

    # The next start must not quietly make an empty practice with a new vault key.
    code, log = await run_to_exit(home)
    assert code == 78 and not home.database.exists()
    assert "is missing" in log and str(installation_marker(home)) in log and "--init" in log
    assert "ready" not in log

    # Asked for explicitly, it starts afresh.
    process = await asyncio.create_subprocess_exec(
        *daemon_command(home, "--init"), stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_until(home.socket.exists, within=20, what="clientlinkd --init to serve")
        assert home.database.exists()
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0 and "--init" in stderr.decode()


async def test_a_fresh_home_starts_without_init_and_remembers_it(home):
    assert not home.database.exists() and not installation_marker(home).exists()
    await start_and_stop(home)
    assert installation_marker(home).exists()
    await start_and_stop(home)  # and the database that is there now opens as before


async def test_the_keyring_remembers_the_practice_even_when_the_state_folder_is_gone(
    keyring_config,
):
    home = keyring_config
    keyring.set_keyring(MemoryKeyring())
    await start_and_stop(home)
    shutil.rmtree(home.data_dir)
    installation_marker(home).unlink()
    daemon = Daemon(home, load_config(home.config_file), desktop=None)
    with pytest.raises(DataFilesProblem, match="keyring holds clientlink's data key"):
        await daemon.start()
    assert not home.database.exists()


# ---------------------------------------------------------------------- permissions


async def test_a_read_only_database_is_refused_at_start(home):
    await start_and_stop(home)
    before = home.database.read_bytes()
    home.database.chmod(0o444)
    try:
        code, log = await run_to_exit(home)
    finally:
        home.database.chmod(0o600)
    assert code == 78 and "ready" not in log
    assert f"cannot write its database file {home.database} (mode 0444" in log
    assert home.database.read_bytes() == before


async def test_a_read_only_data_folder_is_refused_at_start(home):
    await start_and_stop(home)
    home.data_dir.chmod(0o555)
    try:
        daemon = Daemon(home, load_config(home.config_file), desktop=None)
        with pytest.raises(DataFilesProblem, match=r"cannot write its data folder .*mode 0555"):
            await daemon.start()
    finally:
        home.data_dir.chmod(0o700)


def test_permissions_are_judged_for_the_user_running_clientlinkd(short_tmp):
    # As root mode bits are checked explicitly; as an ordinary user os.access decides.
    folder = short_tmp / "data"
    folder.mkdir()
    database = folder / "clientlink.db"
    sqlite3.connect(database).close()
    os.chown(short_tmp, 65534, 65534)
    os.chown(folder, 65534, 65534)
    database.chmod(0o644)  # owned by root: the user may read it, not write it
    script = (
        "import sys; from pathlib import Path; "
        "from clientlink.daemon.datafiles import check_writable, DataFilesProblem\n"
        "try:\n    check_writable(Path(sys.argv[1]))\n"
        "except DataFilesProblem as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-c", script, str(database)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert f"cannot write its database file {database} (mode 0644, owner root)" in result.stdout


# ---------------------------------------------------------------------- a full disk


@pytest.fixture
def tmpfs_home(home):
    """``home`` whose data folder is a small tmpfs of its own."""
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(home.data_dir)],
        check=True,
    )
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home.data_dir)], check=True)


def fill(folder: Path) -> Path:
    """Write a filler file in ``folder`` until the disk is full."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last bytes too
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    return filler


async def checkpoint(store: Store) -> None:
    # The next commit must grow the write-ahead log, as after any checkpoint.
    await store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def test_a_full_disk_is_named_and_changes_nothing(tmpfs_home, sandbox, caplog):
    daemon = Daemon(tmpfs_home, load_config(tmpfs_home.config_file), desktop=None)
    await daemon.start()
    try:
        client = await _client(tmpfs_home)
        assert (await client.call(p.DAEMON_STATUS)).disk_reserve is True
        assert daemon.store is not None and daemon.store.reserve is not None
        daemon.store.reserve.release()  # the reserve was already spent
        await checkpoint(daemon.store)
        fill(tmpfs_home.data_dir)
        with caplog.at_level(logging.ERROR):
            with pytest.raises(RpcError) as caught:
                await client.call(
                    p.TEMPLATES_CREATE, **{**TEMPLATE, "body": "{link}" + "x" * 19_000}
                )
        assert caught.value.code == ErrorCode.STORAGE_FULL
        message = caught.value.message
        assert "is full" in message and str(tmpfs_home.data_dir) in message
        assert "nothing was changed" in message
        assert "Traceback" not in caplog.text
        (tmpfs_home.data_dir / "filler").unlink()
        names = [t.name for t in (await client.call(p.TEMPLATES_LIST)).items]
        assert "Hello" not in names
        await client.close()
    finally:
        await daemon.stop()


async def test_the_reserve_lets_a_rotated_token_be_committed_on_a_full_disk(tmpfs_home, sandbox):
    daemon = Daemon(tmpfs_home, load_config(tmpfs_home.config_file), desktop=None)
    await daemon.start()
    try:
        store = daemon.store
        assert store is not None and store.reserve is not None and store.reserve.present
        now = datetime.now(UTC)
        grant_id = await store.insert_grant(
            uid="g-1", provider="xero", auth_event_id=None, token_ciphertext=b"old",
            access_expires_at=now, refresh_expires_at=now, hard_expires_at=None,
            authorised_by="test", now=now, tenants=[TenantRow("t-1", "Tenant")],
        )  # fmt: skip
        await checkpoint(store)
        filler = fill(tmpfs_home.data_dir)
        # h-tokens asks before the token call: the reserve is there, so go ahead.
        await store.ensure_writable_reserve()
        rotated = os.urandom(200_000)  # large enough that the log must grow
        await store.update_grant_tokens(
            grant_id, token_ciphertext=rotated, access_expires_at=now,
            refresh_expires_at=now, hard_expires_at=None, now=now,
        )  # fmt: skip
        grant = await store.get_grant(grant_id)
        assert grant is not None and grant.token_ciphertext == rotated
        assert not store.reserve.present
        # With the reserve spent and the disk full again, no token call should be made.
        fill(tmpfs_home.data_dir)
        with pytest.raises(DiskFull):
            await store.ensure_writable_reserve()
        filler.unlink()
        await store.ensure_writable_reserve()  # room again: the reserve comes back
        assert store.reserve.present
    finally:
        await daemon.stop()


async def _client(home):
    from clientlink.common.client import DaemonClient

    client = DaemonClient(home.socket, client_name="test")
    await client.connect()
    return client


# ---------------------------------------------------------------------- the runtime folder


def test_the_runtime_folder_is_never_a_symlink(short_tmp):
    target = short_tmp / "someone-elses"
    target.mkdir(mode=0o755)
    planted = short_tmp / "clientlink"
    planted.symlink_to(target)
    with pytest.raises(UnsafeFolder, match=r"symbolic link.*XDG_RUNTIME_DIR"):
        ensure_private_dir(planted)
    assert (target.stat().st_mode & 0o777) == 0o755  # not chmodded through the link


def test_a_runtime_folder_of_another_user_is_refused_with_advice(short_tmp):
    planted = short_tmp / "clientlink"
    planted.mkdir(mode=0o777)
    os.chown(planted, 65534, 65534)
    with pytest.raises(UnsafeFolder, match=r"another user.*set XDG_RUNTIME_DIR"):
        ensure_private_dir(planted)


def test_without_xdg_runtime_dir_no_guessable_tmp_folder_is_used(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    chosen = default_runtime_dir()
    assert not chosen.is_relative_to("/tmp")
    user_run = Path(f"/run/user/{os.getuid()}")
    if chosen.is_relative_to(user_run):
        assert user_run.stat().st_uid == os.getuid()
