"""The protocol typed at both ends: typed calls and results, events built from their models,
seq gaps and daemon restarts noticed by the client and resynced by the TUI."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError
from textual.widgets import DataTable

from clientlink.common import protocol as p
from clientlink.common.client import (
    DAEMON_RESTARTED,
    LOST_EVENTS,
    DaemonClient,
    EventCursor,
    Resync,
)
from clientlink.daemon.rpc_connection import OUTBOUND_EVENT_BYTES
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.formatting import ShownDaemonClient
from clientlink.tui.screens.manage_clients import ManageClientsScreen

FILLER = "x" * 50_000
"""A large event field, so a burst of events outgrows a connection's queue quickly."""


def flood(daemon) -> None:
    """Publish, without yielding to the loop, more events than a connection may queue.

    Large ones first, then small ones to fill what room is left: afterwards the queue
    has less than about 1 KB free, so any larger event is dropped.
    """
    for current in [FILLER] * (OUTBOUND_EVENT_BYTES // len(FILLER) + 5) + ["x" * 1000] * 100:
        daemon.daemon.events.publish(
            p.JobProgress(
                topic=p.Topic.JOB_PROGRESS,
                job_id=999_999,
                kind=p.JobKind.REIMPORT,
                state=p.JobState.RUNNING,
                total=1,
                done=0,
                failed=0,
                current=current,
            )
        )


async def test_a_typed_call_returns_the_result_model(practice) -> None:
    async with DaemonClient(practice.socket_path) as client:
        listed = await client.call(p.CLIENTS_LIST, limit=2)
        assert isinstance(listed, p.ClientsListResult)
        assert len(listed.items) == 2 and listed.total >= 2
        assert isinstance(listed.items[0], p.Client)
        first = listed.items[0]
        same = await client.call(p.CLIENTS_GET, p.ClientIdParams(client_id=first.id))
        assert same.id == first.id and same.name == first.name
        needing = await client.call(
            p.CLIENTS_LIST, filter=p.ClientFilter(status=p.ConnectionStatus.NEEDS_REAUTH)
        )
        assert {c.id for c in needing.items} == set(practice.client_ids_needing_reauth)


async def test_a_typed_call_refuses_fields_its_method_does_not_have(daemon) -> None:
    rpc = await daemon.connect()
    with pytest.raises(TypeError, match=r"clients\.list has no parameter limt"):
        await rpc.call(p.CLIENTS_LIST, limt=5)
    with pytest.raises(TypeError, match="takes ClientIdParams"):
        await rpc.call(p.CLIENTS_GET, p.Empty())  # type: ignore[arg-type]
    assert (await rpc.call(p.DAEMON_STATUS)).protocol == p.PROTOCOL_VERSION


def test_methods_are_built_from_the_typed_constants() -> None:
    assert p.METHODS["clients.list"] is p.CLIENTS_LIST
    assert p.CLIENTS_LIST.params is p.ClientsListParams
    assert p.CLIENTS_LIST.result is p.ClientsListResult
    assert all(name == method.name for name, method in p.METHODS.items())


def test_results_from_a_newer_or_older_daemon_still_read() -> None:
    # A newer daemon's extra fields are ignored; an older one's missing new fields default.
    newer = p.HelloResult.model_validate(
        {"protocol": 1, "daemon_version": "9", "user": "u", "pid": 1, "minor": 7, "x": {}}
    )
    assert newer.minor == 7
    older = p.HelloResult.model_validate(
        {"protocol": 1, "daemon_version": "0.1", "user": "u", "pid": 1}
    )
    assert older.minor == 0 and older.epoch is None


async def test_hello_reports_the_minor_version_and_this_start_s_epoch(daemon) -> None:
    rpc = await daemon.connect()
    hello = rpc.greeting
    assert hello.protocol == p.PROTOCOL_VERSION and hello.minor == p.PROTOCOL_MINOR >= 1
    assert hello.epoch == daemon.daemon.events.epoch and len(hello.epoch) >= 16
    other = await daemon.connect()
    assert other.epoch == rpc.epoch  # one id per daemon start, not per connection


def test_each_event_bus_has_its_own_epoch(daemon) -> None:
    from clientlink.daemon.events import EventBus

    assert EventBus(daemon.clock).epoch != EventBus(daemon.clock).epoch


async def test_events_are_built_from_their_models_and_checked_where_made(daemon) -> None:
    bus = daemon.daemon.events
    with pytest.raises(TypeError, match=r"client\.status_changed event is a ClientStatusChanged"):
        bus.publish(
            p.ClientReauthorised(
                topic=p.Topic.CLIENT_STATUS_CHANGED, client_id=1, name="x", grant_id=1
            )
        )
    with pytest.raises(ValidationError):
        p.ClientStatusChanged(client_id=1, name="x", old_status=None, status="nonsense")
    rpc = await daemon.connect()
    await rpc.subscribe()
    published = bus.publish(p.NotificationsRead(unread=3))
    update = await asyncio.wait_for(anext(rpc.updates()), 10)
    assert isinstance(update, p.NotificationsRead) and update.unread == 3
    assert update.seq == published["seq"] == bus.last_seq and update.at


async def test_a_seq_gap_is_reported_as_a_resync(daemon) -> None:
    rpc = await daemon.connect()
    await rpc.subscribe()
    flood(daemon)  # the connection cannot take it all: some events are dropped
    updates = rpc.updates()
    seen = []
    while len(seen) < 200:
        update = await asyncio.wait_for(anext(updates), 10)
        seen.append(update)
        if isinstance(update, Resync):
            break
        # Once there is room again, one of these arrives and shows the numbers skipped.
        daemon.daemon.events.publish(p.NotificationsRead(unread=0))
    resync = seen[-1]
    assert isinstance(resync, Resync) and resync.reason == LOST_EVENTS
    assert resync.after_seq is not None
    after = await asyncio.wait_for(anext(updates), 10)  # the event that showed the gap
    assert isinstance(after, p.Event) and after.seq > resync.after_seq + 1


async def test_resuming_from_a_cursor_replays_or_says_the_daemon_restarted(daemon) -> None:
    first = await daemon.connect()
    await first.subscribe()
    daemon.daemon.events.publish(p.NotificationsRead(unread=1))
    await asyncio.wait_for(anext(first.updates()), 10)
    cursor = first.cursor
    assert cursor == EventCursor(daemon.daemon.events.epoch, daemon.daemon.events.last_seq)
    daemon.daemon.events.publish(p.NotificationsRead(unread=2))

    same_start = await daemon.connect()
    await same_start.subscribe(resume=cursor)
    replayed = await asyncio.wait_for(anext(same_start.updates()), 10)
    assert isinstance(replayed, p.NotificationsRead) and replayed.unread == 2

    restarted = await daemon.connect()
    await restarted.subscribe(resume=EventCursor("an earlier start", cursor.seq))
    update = await asyncio.wait_for(anext(restarted.updates()), 10)
    assert update == Resync(DAEMON_RESTARTED)


async def test_typed_results_through_the_tui_s_client_are_safe_to_show(practice) -> None:
    client_id = practice.connected_ids[0]
    await practice.daemon.store.update_client_details(
        client_id, practice.clock.now(), name="Evil\x1b[2J Pty Ltd"
    )
    async with ShownDaemonClient(practice.socket_path) as shown_client:
        client = await shown_client.call(p.CLIENTS_GET, client_id=client_id)
    assert "\x1b" not in client.name and "Evil" in client.name


# --------------------------------------------------------------------------- the TUI


def status_cell(screen: ManageClientsScreen, client_id: int) -> str:
    return screen.query_one(DataTable).get_cell(str(client_id), "status").plain


async def test_manage_clients_shows_the_current_state_after_its_events_were_dropped(
    practice,
) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ManageClientsScreen)
        client_id = practice.connected_ids[0]
        deadline = time.monotonic() + 20
        while not (app.connected and client_id in screen.clients):
            assert time.monotonic() < deadline, "the client list never appeared"
            await pilot.pause(0.05)
        assert status_cell(screen, client_id) == "Connected"

        # The daemon records a change, and its event is lost: the TUI's connection was too
        # far behind (a burst of large events), so the daemon dropped what did not fit.
        name = screen.clients[client_id].name
        reason = "The provider refused the refresh: " + "the grant was revoked. " * 200
        await practice.daemon.store.set_client_status(
            client_id, p.ConnectionStatus.NEEDS_REAUTH, reason, practice.clock.now()
        )
        flood(practice)
        practice.daemon.events.publish(
            p.ClientStatusChanged(
                client_id=client_id,
                name=name,
                old_status=p.ConnectionStatus.CONNECTED,
                status=p.ConnectionStatus.NEEDS_REAUTH,
                reason=reason,  # some 4 KB: it does not fit in what room the queue has left
            )
        )
        # The next event that gets through shows the gap in seq: the screen reloads.
        deadline = time.monotonic() + 30
        while status_cell(screen, client_id) != "Needs re-auth":
            assert time.monotonic() < deadline, "the screen still shows the stale status"
            practice.daemon.events.publish(p.NotificationsRead(unread=0))
            await pilot.pause(0.2)
