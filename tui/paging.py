"""Clients from clientlinkd page by page: the one loop over ``clients.list`` every screen uses."""

from __future__ import annotations

from typing import Any

from clientlink.common.client import DaemonClient
from clientlink.common.protocol import CLIENTS_LIST, Client, ClientsListResult

MAX_PAGE_SIZE = 1000
"""The most ``clients.list`` returns at once."""


async def fetch_clients(
    daemon: DaemonClient,
    filter_params: dict[str, Any],
    offset: int = 0,
    limit: int | None = None,
) -> ClientsListResult:
    """Up to ``limit`` clients matching ``filter_params`` from ``offset`` (every one if None).

    Asks in pages of at most :data:`MAX_PAGE_SIZE`, the daemon's limit. The total and the
    counts are the last page's. A list that shrinks while it is read ends early rather than
    asking forever.
    """
    items: list[Client] = []
    while True:
        wanted = MAX_PAGE_SIZE if limit is None else min(MAX_PAGE_SIZE, limit - len(items))
        page = await daemon.call(
            CLIENTS_LIST, filter=filter_params, offset=offset + len(items), limit=wanted
        )
        items.extend(page.items)
        if (
            not page.items
            or offset + len(items) >= page.total
            or (limit is not None and len(items) >= limit)
        ):
            return ClientsListResult(total=page.total, items=items, counts=page.counts)
