"""Manage Clients' filter: the query SQLite runs for each keystroke, on a real file.

The list of active clients by name walks an index in name order and stops at the page's
end (no sort of every client per keystroke); the text filter keeps its meaning: any case
of ASCII letters, a missing legal name or email matching nothing rather than failing.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from clientlink.common.protocol import ConnectionStatus
from clientlink.daemon.store import Store
from clientlink.daemon.store.clients import client_filter, client_page_sql

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
async def store(short_tmp):
    store = await Store.open(short_tmp / "data" / "clientlink.db")
    try:
        yield store
    finally:
        await store.close()


async def add(store: Store, name: str, **fields: str) -> int:
    client_id = await store.create_client(
        provider="xero",
        tenant_id=f"t-{name}",
        name=name,
        legal_name=fields.get("legal_name"),
        abn=fields.get("abn"),
        grant_id=None,
        status=ConnectionStatus.NOT_CONNECTED,
        now=NOW,
    )
    if "email" in fields:
        await store.update_client_details(client_id, NOW, email=fields["email"])
    return client_id


def plan(database, where: str, params: list) -> str:
    with sqlite3.connect(database) as db:
        rows = db.execute("EXPLAIN QUERY PLAN " + client_page_sql(where), [*params, 50, 0])
        return " | ".join(row[3] for row in rows)


@pytest.mark.parametrize("text", [None, "7", "acme"])
async def test_a_page_of_active_clients_walks_the_name_index_without_sorting(
    store: Store, short_tmp, text
):
    for number in range(30):
        await add(store, f"Client {number}")
    where, params = client_filter(None, None, text, True)
    steps = plan(short_tmp / "data" / "clientlink.db", where, params)
    assert "clients_by_active_name" in steps
    assert "TEMP B-TREE" not in steps


async def test_the_text_filter_ignores_case_and_missing_fields(store: Store):
    acme = await add(store, "ACME Pty Ltd")
    legal = await add(store, "Harbour", legal_name="Acme Holdings")
    mailed = await add(store, "Smith", email="books@acme.example")
    await add(store, "Nothing Alike")
    for text in ("acme", "ACME", "aCmE"):
        total, rows = await store.list_clients(
            statuses=None, provider=None, text=text, active=True, offset=0, limit=50
        )
        assert total == 3
        assert {row.id for row in rows} == {acme, legal, mailed}
    total, rows = await store.list_clients(
        statuses=None, provider=None, text="100%_", active=True, offset=0, limit=50
    )
    assert (total, rows) == (0, [])
