"""The TUI against a real daemon and sandbox: offline state, re-authorising one client."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from textual import events
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Static

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.protocol import Client, ErrorCode
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.offline_banner import OfflineBanner

OFFLINE_TEXT = "clientlinkd is not running — reconnecting in"


async def wait_until(
    pilot: Pilot, condition: Callable[[], object], what: str, within: float = 20.0
) -> None:
    """Let the app run until ``condition()`` holds; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await pilot.pause(0.05)


def banner_text(app: ClientlinkApp) -> str:
    banner = app.screen.query_one(OfflineBanner)
    return str(banner.render()) if banner.display else ""


async def test_without_a_daemon_the_banner_says_how_to_start_it(short_tmp: Path) -> None:
    app = ClientlinkApp(short_tmp / "clientlinkd.sock", open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: OFFLINE_TEXT in banner_text(app), "the offline banner")
        text = banner_text(app)
        assert "Start it with `clientlinkd` (or `clientlink service install`)" in text
        assert isinstance(app.screen, ManageClientsScreen)
        assert not app.connected
        await pilot.press("r")  # nothing to re-authorise: a warning, not a crash
        await pilot.pause()
        assert isinstance(app.screen, ManageClientsScreen)


async def test_the_app_connects_and_lists_clients_once_the_daemon_appears(
    practice, short_tmp: Path
) -> None:
    socket_path = short_tmp / "clientlinkd.sock"
    app = ClientlinkApp(socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: OFFLINE_TEXT in banner_text(app), "the offline banner")
        # The daemon "starts": its socket appears where the app keeps looking.
        os.symlink(practice.socket_path, socket_path)
        screen = app.screen
        assert isinstance(screen, ManageClientsScreen)
        await wait_until(pilot, lambda: app.connected and screen.clients, "clients listed")
        assert banner_text(app) == ""
        assert screen.total == len(screen.clients) > 0


# --------------------------------------------------------------------------- re-authorise


def toasts(app: ClientlinkApp) -> list[str]:
    # run_test does not draw toasts, but the app still records every notification.
    return [notification.message for notification in app._notifications]


def status_cell(screen: ManageClientsScreen, client_id: int) -> str:
    return screen.query_one(DataTable).get_cell(str(client_id), "status").plain


async def pick_client_needing_reauth(pilot: Pilot, practice) -> tuple[ManageClientsScreen, Client]:
    """Filter to Needs re-auth (key n); the cursor is then on a client needing re-auth."""
    clients_screen = pilot.app.screen
    assert isinstance(clients_screen, ManageClientsScreen)
    await wait_until(pilot, lambda: clients_screen.clients, "the client list")
    await pilot.press("n")
    await wait_until(
        pilot,
        lambda: (
            clients_screen.clients
            and all(c.status == "needs_reauth" for c in clients_screen.clients.values())
        ),
        "the Needs re-auth filter",
    )
    client = clients_screen.clients[clients_screen.focused_client_id()]
    assert client.id in practice.client_ids_needing_reauth
    assert status_cell(clients_screen, client.id) == "Needs re-auth"
    return clients_screen, client


async def open_sign_in_for_a_client_needing_reauth(
    pilot: Pilot, practice
) -> tuple[ManageClientsScreen, SignInScreen, Client]:
    """Press r on a client needing re-auth and wait for the sign-in address."""
    app = pilot.app
    clients_screen, client = await pick_client_needing_reauth(pilot, practice)
    await pilot.press("r")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, SignInScreen) and app.screen.phase == Phase.WAITING,
        "the sign-in address",
    )
    sign_in = app.screen
    assert isinstance(sign_in, SignInScreen) and sign_in.session is not None
    assert sign_in.client.id == client.id
    return clients_screen, sign_in, client


async def assert_reauthorised(
    pilot: Pilot, practice, clients_screen: ManageClientsScreen, client: Client
) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.screen is clients_screen, "back on Manage Clients")
    assert "Client re-authorised successfully" in toasts(app)
    await wait_until(
        pilot, lambda: status_cell(clients_screen, client.id) == "Connected", "row Connected"
    )
    async with DaemonClient(practice.socket_path) as daemon:
        held = await daemon.call(p.CLIENTS_GET, client_id=client.id)
    assert held.status == "connected"


async def test_pasting_the_redirect_address_reauthorises_the_client(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen, sign_in, client = await open_sign_in_for_a_client_needing_reauth(
            pilot, practice
        )
        redirect_url = await practice.approve(sign_in.session.authorize_url, [client.tenant_id])
        # A terminal paste lands in the paste field wherever the focus is.
        app.screen.focused.post_message(events.Paste(redirect_url))
        await wait_until(
            pilot, lambda: sign_in.query_one("#sign-in-paste", Input).has_focus, "paste field"
        )
        await pilot.press("enter")
        await assert_reauthorised(pilot, practice, clients_screen, client)


async def test_the_loopback_listener_path_reauthorises_the_client(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen, sign_in, client = await open_sign_in_for_a_client_needing_reauth(
            pilot, practice
        )
        redirect_url = await practice.approve(sign_in.session.authorize_url, [client.tenant_id])
        # The browser follows the redirect to the daemon's loopback listener.
        async with httpx.AsyncClient() as browser:
            await browser.get(redirect_url)
        await assert_reauthorised(pilot, practice, clients_screen, client)


async def test_auto_approve_signs_in_without_a_person(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False, auto_approve=practice.approve)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen, client = await pick_client_needing_reauth(pilot, practice)
        await pilot.press("r")  # the sandbox signs in; nothing to type
        await assert_reauthorised(pilot, practice, clients_screen, client)


async def test_ticking_the_wrong_business_shows_the_daemons_explanation(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        _, sign_in, client = await open_sign_in_for_a_client_needing_reauth(pilot, practice)
        await pilot.press("a")  # (no effect here: the sign-in screen is on top)
        async with DaemonClient(practice.socket_path) as daemon:
            everyone = await daemon.call(p.CLIENTS_LIST, limit=1000)
        other = next(
            c
            for c in everyone.items
            if c.id != client.id and c.tenant_id and c.provider == client.provider
        )
        redirect_url = await practice.approve(sign_in.session.authorize_url, [other.tenant_id])
        paste = sign_in.query_one("#sign-in-paste", Input)
        paste.value = redirect_url
        paste.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: sign_in.phase == Phase.FAILED, "the failure")
        assert app.screen is sign_in
        assert sign_in.error_code == ErrorCode.AUTH_CLIENT_NOT_SELECTED
        error = str(sign_in.query_one("#sign-in-error", Static).render())
        assert error.startswith("Sign-in failed: ")
        assert "tick this client's business" in error
        assert sign_in.query_one("#sign-in-start-again", Button).display
        async with DaemonClient(practice.socket_path) as daemon:
            held = await daemon.call(p.CLIENTS_GET, client_id=client.id)
        assert held.status == "needs_reauth"
        # Start again opens a fresh session.
        first_session = sign_in.session.session_id
        await pilot.press("s")
        await wait_until(
            pilot,
            lambda: sign_in.phase == Phase.WAITING and sign_in.session.session_id != first_session,
            "a new sign-in session",
        )


async def test_a_daemon_restart_shows_the_banner_then_reconnects_and_reloads(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ManageClientsScreen)
        await wait_until(pilot, lambda: screen.clients, "the client list")
        await practice.daemon.stop()
        await wait_until(pilot, lambda: OFFLINE_TEXT in banner_text(app), "the offline banner")
        screen.clients.clear()  # forget the rows, so a reload is what brings them back
        await practice.daemon.start()
        await wait_until(pilot, lambda: app.connected and screen.clients, "reloaded clients")
        assert banner_text(app) == ""
