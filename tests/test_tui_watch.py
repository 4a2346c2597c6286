"""The TUI watching connections: needs-attention view, connection detail, notifications.

Real daemon, real sandbox over HTTP, real socket; the app is driven with Pilot at 80x24.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.notifications import NotificationsScreen
from tests.helpers import advance_time, sandbox_get, sandbox_post, wait_until


def toasts(app: ClientlinkApp) -> list[str]:
    # run_test does not draw toasts, but the app still records every notification.
    return [notification.message for notification in app._notifications]


def shown(screen: Any, selector: str) -> str:
    """A Static's text as drawn at its width (tables and groups included)."""
    widget = screen.query_one(selector, Static)
    console = Console(width=max(widget.content_region.width, 20), file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def shown_prompt(screen: NotificationsScreen, index: int) -> str:
    """The text of one entry in the notifications list."""
    option = screen.query_one(OptionList).get_option_at_index(index)
    console = Console(width=76, file=io.StringIO(), record=True)
    console.print(option.prompt)
    return console.export_text()


def flat(text: str) -> str:
    """Text with its line breaks and runs of spaces made single spaces."""
    return " ".join(text.split())


def field(screen: ClientDetailScreen, label: str) -> str:
    """The value shown next to ``label`` on the detail screen."""
    for line in shown(screen, "#detail-fields").splitlines():
        if line.startswith(label):
            return line[len(label) :].strip()
    raise AssertionError(f"no {label!r} on the detail screen")


def cell(screen: ManageClientsScreen, client_id: int, column: str) -> str:
    value = screen.query_one(DataTable).get_cell(str(client_id), column)
    return value if isinstance(value, str) else value.plain


async def clients_screen_with_list(app: ClientlinkApp) -> ManageClientsScreen:
    screen = app.screen
    assert isinstance(screen, ManageClientsScreen)
    await wait_until(lambda: screen.clients, what="the client list")
    return screen


async def connected_client(daemon: DaemonClient) -> p.Client:
    listed = await daemon.call(p.CLIENTS_LIST, filter={"status": "connected"}, limit=1)
    return listed.items[0]


async def highlight(screen: ManageClientsScreen, client_id: int) -> None:
    table = screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(str(client_id)))
    await wait_until(lambda: screen.focused_client_id() == client_id, what="the row highlighted")


async def open_detail(
    pilot: Pilot, screen: ManageClientsScreen, client_id: int
) -> ClientDetailScreen:
    await highlight(screen, client_id)
    await pilot.press("enter")
    await wait_until(
        lambda: (
            isinstance(pilot.app.screen, ClientDetailScreen)
            and pilot.app.screen.history is not None
        ),
        what="the connection detail",
    )
    detail = pilot.app.screen
    assert isinstance(detail, ClientDetailScreen) and detail.client_id == client_id
    return detail


async def start_with_nothing_unread(practice, daemon: DaemonClient) -> None:
    """Deliver and read what seeding the practice raised, so each test counts its own."""
    await practice.daemon.notifier.flush()
    await daemon.call(p.NOTIFICATIONS_ACK)


async def disconnect_at_the_sandbox(practice, daemon: DaemonClient, client: p.Client) -> None:
    """The business is disconnected in the software; the daemon finds out on its next check."""
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/connections/disconnect",
        {"tenant_id": client.tenant_id},
    )
    await daemon.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)


# --------------------------------------------------------------------------- attention view


async def test_the_attention_view_lists_exactly_the_clients_needing_reauth_with_reasons(
    practice,
) -> None:
    daemon = await practice.connect()
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        await pilot.press("t")
        expected = set(practice.client_ids_needing_reauth)
        await wait_until(lambda: set(screen.clients) == expected, what="the attention view")
        columns = [column.key.value for column in screen.query_one(DataTable).columns.values()]
        assert columns == ["mark", "name", "status", "since", "reason", "reauth"]
        for client_id in expected:
            held = await daemon.call(p.CLIENTS_GET, client_id=client_id)
            assert cell(screen, client_id, "status") == "Needs re-auth"
            # The column leaves out the software's name the reason starts with.
            reason = cell(screen, client_id, "reason").rstrip("…").lower()
            assert held.status_reason.startswith(f"Xero (sandbox) {reason}")
            assert cell(screen, client_id, "since").endswith(("ago", "just now"))
        # The pane under the list gives the highlighted client's whole reason.
        focused = await daemon.call(p.CLIENTS_GET, client_id=screen.focused_client_id())
        assert focused.status_reason in flat(shown(screen, "#clients-detail"))

        await pilot.press("a")
        await wait_until(lambda: len(screen.clients) > len(expected), what="everyone again")
        assert "abn" in [c.key.value for c in screen.query_one(DataTable).columns.values()]
        await pilot.press("exclamation_mark")
        await wait_until(lambda: set(screen.clients) == expected, what="! shows attention")


# --------------------------------------------------------------------------- detail


async def test_the_detail_screen_shows_who_authorised_a_client_and_its_history(practice) -> None:
    daemon = await practice.connect()
    client = await connected_client(daemon)
    app = ClientlinkApp(practice.socket_path, open_browser=False, auto_approve=practice.approve)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        detail = await open_detail(pilot, screen, client.id)
        fields = shown(detail, "#detail-fields")
        assert client.name in fields
        assert field(detail, "Authorised by").startswith(f"{client.authorised_by}, ")
        for label in ("Last refresh", "Next check", "Access token ends", "Refresh token ends"):
            assert label in fields

        # A status change while the screen is open: status, reason and history follow it.
        await disconnect_at_the_sandbox(practice, daemon, client)
        await wait_until(
            lambda: "Connected → Needs re-auth" in shown(detail, "#detail-history"),
            what="the status change in the history",
        )
        held = await daemon.call(p.CLIENTS_GET, client_id=client.id)
        assert held.status == "needs_reauth"
        fields = shown(detail, "#detail-fields")
        assert "Needs re-auth" in fields
        assert flat(held.status_reason) in flat(fields)

        # Re-authorise from here (the sandbox signs in): back on this screen, connected.
        await pilot.press("r")
        await wait_until(
            lambda: app.screen is detail and detail.client.status == "connected",
            what="re-authorised and back on the detail screen",
        )
        await wait_until(
            lambda: any(entry.kind == "reauthorised" for entry in detail.history or []),
            what="the re-authorisation in the history",
        )
        held = await daemon.call(p.CLIENTS_GET, client_id=client.id)
        assert field(detail, "Authorised by").startswith(f"{held.authorised_by}, ")

        # Esc: back to the list, the cursor still on the client.
        await pilot.press("escape")
        await wait_until(lambda: app.screen is screen, what="back on Manage Clients")
        assert screen.focused_client_id() == client.id
        assert cell(screen, client.id, "status") == "Connected"


async def test_refresh_now_calls_the_daemon_and_says_how_it_went(practice) -> None:
    daemon = await practice.connect()
    client = await connected_client(daemon)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        detail = await open_detail(pilot, screen, client.id)
        before = (await daemon.call(p.CLIENTS_GET, client_id=client.id)).last_refresh_at
        await advance_time(practice, 60)  # so the refresh's time differs from the last one
        await pilot.press("f")
        await wait_until(
            lambda: any(t.startswith("Refreshed: connected") for t in toasts(app)),
            what="the refresh toast",
        )
        after = await daemon.call(p.CLIENTS_GET, client_id=client.id)
        assert after.last_refresh_at > before
        await wait_until(
            lambda: detail.client.last_refresh_at == after.last_refresh_at,
            what="the new refresh time shown",
        )
        # Back on the list, the row is read again (no status event says a refresh happened).
        await pilot.press("escape")
        await wait_until(
            lambda: screen.clients[client.id].last_refresh_at == after.last_refresh_at,
            what="the row re-read",
        )


# --------------------------------------------------------------------------- live rows


async def test_a_disconnection_at_the_sandbox_turns_the_row_to_needs_reauth_live(
    practice,
) -> None:
    daemon = await practice.connect()
    client = await connected_client(daemon)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)):
        screen = await clients_screen_with_list(app)
        await highlight(screen, client.id)
        assert cell(screen, client.id, "status") == "Connected"
        await disconnect_at_the_sandbox(practice, daemon, client)
        await wait_until(
            lambda: cell(screen, client.id, "status") == "Needs re-auth",
            what="the row turning Needs re-auth",
        )
        reason = (await daemon.call(p.CLIENTS_GET, client_id=client.id)).status_reason
        await wait_until(
            lambda: reason in flat(shown(screen, "#clients-detail")),
            what="the new reason in the pane",
        )


# --------------------------------------------------------------------------- notifications


async def test_a_notification_raises_the_unread_count_and_m_clears_it(practice) -> None:
    daemon = await practice.connect()
    await start_with_nothing_unread(practice, daemon)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        assert app.unread_notifications == 0
        # Revoke a staff member's grant at the sandbox; the daemon notices on a refresh.
        listed = await daemon.call(p.CLIENTS_LIST, filter={"status": "connected"})
        by_tenant = {c.tenant_id: c for c in listed.items}
        grants = await sandbox_get(practice.sandbox.base_url, "/_sandbox/grants")
        grant = next(
            g for g in grants if not g["revoked"] and set(g["tenant_ids"]) & set(by_tenant)
        )
        victim = by_tenant[next(t for t in grant["tenant_ids"] if t in by_tenant)]
        await sandbox_post(
            practice.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke"
        )
        await daemon.call(p.CLIENTS_REFRESH, client_id=victim.id, force=True)
        await practice.daemon.notifier.flush()

        await wait_until(lambda: app.unread_notifications > 0, what="the unread count")
        listed = await daemon.call(p.NOTIFICATIONS_LIST)
        newest = listed.items[0]
        assert app.unread_notifications == listed.unread
        assert app.sub_title == f"{listed.unread} unread (press o)"
        await wait_until(lambda: newest.title in toasts(app), what="the notification toast")

        await pilot.press("o")
        await wait_until(
            lambda: isinstance(app.screen, NotificationsScreen) and app.screen.notifications,
            what="the notifications screen",
        )
        panel = app.screen
        assert panel.notifications[0].id == newest.id
        prompt = shown_prompt(panel, 0)
        assert newest.title in prompt and "●" in prompt
        assert f"desktop: {newest.desktop}" in prompt  # no pop-up here, and it says why

        await pilot.press("m")
        await wait_until(lambda: app.unread_notifications == 0, what="the count cleared")
        assert app.sub_title == ""
        assert (await daemon.call(p.NOTIFICATIONS_LIST)).unread == 0
        await wait_until(lambda: all(n.read for n in panel.notifications), what="all read")


async def test_enter_on_a_notification_about_one_client_opens_its_connection(practice) -> None:
    daemon = await practice.connect()
    await start_with_nothing_unread(practice, daemon)
    client = await connected_client(daemon)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await disconnect_at_the_sandbox(practice, daemon, client)
        await practice.daemon.notifier.flush()
        await wait_until(lambda: app.unread_notifications == 1, what="one unread notification")
        await pilot.press("f3")
        await wait_until(
            lambda: isinstance(app.screen, NotificationsScreen) and app.screen.notifications,
            what="the notifications screen",
        )
        assert app.screen.notifications[0].client_ids == [client.id]
        await pilot.press("enter")
        await wait_until(
            lambda: isinstance(app.screen, ClientDetailScreen) and app.screen.client is not None,
            what="the client's connection",
        )
        assert app.screen.client_id == client.id
        await wait_until(lambda: app.unread_notifications == 0, what="opening marks it read")


# --------------------------------------------------------------------------- reconnecting


async def test_the_new_screens_reload_after_a_daemon_restart(practice) -> None:
    daemon = await practice.connect()
    await practice.daemon.notifier.flush()  # so the panel has something to show
    client = await connected_client(daemon)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        detail = await open_detail(pilot, screen, client.id)
        await pilot.press("o")
        await wait_until(lambda: isinstance(app.screen, NotificationsScreen), what="the panel")
        panel = app.screen
        await practice.daemon.stop()
        await wait_until(lambda: not app.connected, what="the app noticing")
        assert "clientlinkd is not running" in shown(panel, "#offline-banner")
        # Forget what was shown, so a reload is what brings it back.
        detail.history = None
        panel.notifications = []
        await practice.daemon.start()
        await wait_until(
            lambda: app.connected and detail.history is not None and panel.notifications,
            what="both screens reloaded",
        )


async def test_enter_on_a_digest_shows_everyone_needing_attention(practice) -> None:
    daemon = await practice.connect()
    await practice.daemon.notifier.flush()  # seeding's clients needing re-auth: one digest
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        await pilot.press("o")
        await wait_until(
            lambda: isinstance(app.screen, NotificationsScreen) and app.screen.notifications,
            what="the notifications screen",
        )
        digest = app.screen.notifications[0]
        assert digest.kind == "digest" and len(digest.client_ids) > 1
        await pilot.press("enter")
        await wait_until(
            lambda: (
                app.screen is screen
                and set(screen.clients) == set(practice.client_ids_needing_reauth)
            ),
            what="the needs-attention view",
        )
        listed = await daemon.call(p.NOTIFICATIONS_LIST)
        assert next(n for n in listed.items if n.id == digest.id).read
