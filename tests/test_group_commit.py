"""The store's one-hop units and group commit (``run_sync``, ``commit_unit``) on a real
SQLite file: units that arrive together are written in one transaction, each wholly or not
at all, and one unit's error touches no other."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from clientlink.common.protocol import ConnectionStatus
from clientlink.daemon.store import Store

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
async def store(short_tmp):
    store = await Store.open(short_tmp / "data" / "clientlink.db")
    yield store
    await store.close()


async def _client(store: Store, number: int) -> int:
    return await store.create_client(
        provider="xero",
        tenant_id=f"t-{number}",
        name=f"Client {number}",
        legal_name=None,
        abn=None,
        grant_id=None,
        status=ConnectionStatus.NOT_CONNECTED,
        now=NOW,
    )


def _rename(client_id: int, name: str, fail: bool = False):
    def unit(conn: sqlite3.Connection) -> str:
        conn.execute("UPDATE clients SET name = ? WHERE id = ?", (name, client_id))
        conn.execute("UPDATE clients SET email = ? WHERE id = ?", (f"{name}@x.example", client_id))
        if fail:
            raise ValueError(f"{name} refused")
        return name

    return unit


async def test_units_that_come_together_commit_together_and_a_failing_one_alone_is_undone(
    store: Store,
):
    ids = [await _client(store, n) for n in range(6)]
    units = [_rename(client_id, f"renamed-{n}", fail=n == 3) for n, client_id in enumerate(ids)]
    outcomes = await asyncio.gather(
        *(store.commit_unit(unit) for unit in units), return_exceptions=True
    )
    assert [o if isinstance(o, str) else str(o) for o in outcomes] == [
        "renamed-0",
        "renamed-1",
        "renamed-2",
        "renamed-3 refused",
        "renamed-4",
        "renamed-5",
    ]
    names = {c.id: (c.name, c.email) for c in [await store.get_client(i) for i in ids] if c}
    assert names[ids[3]] == ("Client 3", None)  # neither of its two statements kept
    assert names[ids[5]] == ("renamed-5", "renamed-5@x.example")
    assert not store.in_transaction()


async def test_a_unit_waits_for_a_transaction_under_way_and_sees_its_commit(store: Store):
    client_id = await _client(store, 1)
    order: list[str] = []
    async with store.transaction():
        await store.update_client_details(client_id, NOW, email="first@x.example")
        pending = asyncio.ensure_future(store.commit_unit(_rename(client_id, "second")))
        await asyncio.sleep(0.01)
        order.append("transaction")
        assert not pending.done()  # the write lock holds it back
    await pending
    order.append("unit")
    client = await store.get_client(client_id)
    assert (
        client is not None
        and client.email == "second@x.example"
        and order
        == [
            "transaction",
            "unit",
        ]
    )


def test_a_killed_process_keeps_no_part_of_a_unit(short_tmp):
    """SIGKILL while a group is being written: after it, every unit is whole or absent."""
    path = short_tmp / "killed.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sqlite3
        from datetime import UTC, datetime
        from pathlib import Path
        from clientlink.common.protocol import ConnectionStatus
        from clientlink.daemon.store import Store

        async def main():
            store = await Store.open(Path({str(path)!r}))
            now = datetime.now(UTC)
            ids = [
                await store.create_client(provider="xero", tenant_id=f"t-{{n}}",
                    name=f"c{{n}}", legal_name=None, abn=None, grant_id=None,
                    status=ConnectionStatus.NOT_CONNECTED, now=now)
                for n in range(200)
            ]
            def unit(client_id):
                def write(conn):
                    conn.execute("UPDATE clients SET name = 'x' WHERE id = ?", (client_id,))
                    if client_id == ids[150]:
                        os.kill(os.getpid(), signal.SIGKILL)
                    conn.execute("UPDATE clients SET email = 'x@x.example' WHERE id = ?",
                                 (client_id,))
                return write
            await asyncio.gather(*(store.commit_unit(unit(i)) for i in ids))

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT name, email FROM clients").fetchall()
    conn.close()
    assert len(rows) == 200
    halves = [row for row in rows if (row[0] == "x") != (row[1] == "x@x.example")]
    assert halves == []
