"""A token call never starts when its result could not be stored: a real full disk.

The home (database, WAL and all) lives on a tiny tmpfs mounted for the test (CI runs as
root); the test truncates the WAL and fills the rest of the tmpfs, so SQLite's next write
fails with SQLITE_FULL, as on a practice's full disk.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from clientlink.cli.demo import PASSPHRASE_ENV, demo_config_text
from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.paths import Paths, resolve_paths
from clientlink.common.protocol import ErrorCode
from tests.helpers import sandbox_get


@pytest.fixture
def home(short_tmp: Path, sandbox, monkeypatch: pytest.MonkeyPatch) -> Paths:
    mount_point = short_tmp / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
        check=True,
    )
    monkeypatch.setenv(PASSPHRASE_ENV, "test passphrase, not a secret")
    paths = resolve_paths(mount_point / "home")
    paths.ensure()
    paths.config_file.write_text(
        demo_config_text(sandbox.base_url, smtp_port=sandbox.smtp_port), encoding="utf-8"
    )
    yield paths
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(database: Path) -> Path:
    """Empty the WAL into the database, then take every free byte of the file system."""
    with contextlib.closing(sqlite3.connect(database)) as other:
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    filler = database.parent / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\0" * size):
                    pass
    finally:
        os.close(descriptor)
    return filler


async def refresh_calls(practice) -> int:
    stats = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    return stats["calls"].get("token.refresh_token", 0)


async def test_a_refresh_is_skipped_when_the_disk_is_full_and_nothing_is_lost(practice):
    rpc = await practice.connect()
    client_id = practice.xero_connected_ids[-1]
    before = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    calls = await refresh_calls(practice)

    filler = fill_disk(practice.paths.database)  # no await in between: nothing else writes
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert caught.value.code == ErrorCode.STORAGE_FULL
    assert "disk" in caught.value.message and "full" in caught.value.message
    assert await refresh_calls(practice) == calls  # the provider was never asked

    os.unlink(filler)
    after = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert await refresh_calls(practice) == calls + 1
    assert after.status == "connected"
    assert after.access_expires_at >= before.access_expires_at
