"""The TUI's staff screen, "my connections" and the connection's owner, against a real
daemon (its own user, an admin) and the sandbox, at 80x24."""

from __future__ import annotations

import io
import os
import pwd

from rich.console import Console
from textual.widgets import DataTable, Input, Select, Static

from clientlink.common import protocol as p
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.staff import StaffEditScreen, StaffScreen
from tests.test_staff import add_unconnected_client
from tests.test_tui_app import wait_until

ME = pwd.getpwuid(os.getuid()).pw_name


def rendered(widget: Static) -> str:
    """What a Static shows, as plain text (wide enough not to wrap)."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def test_an_admin_adds_a_person_and_changes_their_role_on_the_staff_screen(
    practice,
) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.connected, "the app to connect")
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, StaffScreen)
        await wait_until(pilot, lambda: screen.allowed is True, "the staff list")
        await pilot.press("a")
        dialog = app.screen
        assert isinstance(dialog, StaffEditScreen)
        # A login the system does not have: the daemon's reason stays in the dialog.
        dialog.query_one("#staff-login", Input).value = "no_such_person"
        await pilot.press("enter")
        error = dialog.query_one("#staff-error", Static)
        await wait_until(pilot, lambda: "useradd" in rendered(error), "the refusal")
        assert app.screen is dialog
        dialog.query_one("#staff-login", Input).value = "nobody"
        dialog.query_one("#staff-name", Input).value = "Sam Lee"
        dialog.query_one("#staff-role", Select).value = "read-only"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen and screen.members, "the new row")
        table = screen.query_one(DataTable)
        assert [str(cell) for cell in table.get_row_at(0)[:3]] == ["nobody", "Sam Lee", "Read-only"]

        await pilot.press("enter")  # change the highlighted person
        change = app.screen
        assert isinstance(change, StaffEditScreen)
        change.query_one("#staff-role", Select).value = "staff"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: app.screen is screen and screen.members[0].role == "staff", "the change"
        )
    stored = await practice.daemon.store.get_staff("nobody")
    assert (stored.display_name, stored.role) == ("Sam Lee", "staff")


async def test_my_connections_and_the_owner_in_the_client_detail(practice, short_tmp) -> None:
    rpc = await practice.connect()
    await add_unconnected_client(rpc, short_tmp)
    await rpc.call(p.STAFF_ADD, login=ME, display_name="Alex Kim", role="admin")
    mine = await rpc.call(p.CLIENTS_LIST, filter={"mine": True}, limit=1)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ManageClientsScreen)
        await wait_until(pilot, lambda: screen.clients, "clients listed")
        everyone = screen.total
        await pilot.press("m")
        await wait_until(pilot, lambda: screen.total == mine.total, "my connections")
        assert mine.total < everyone  # the never-authorised clients are nobody's
        summary = rendered(screen.summary)
        assert "of my connections" in summary
        assert all(client.owner_login == ME for client in screen.clients.values())

        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, ClientDetailScreen)
        shown = next(iter(screen.clients.values()))
        await wait_until(
            pilot,
            lambda: "Alex Kim, as " in rendered(detail.query_one("#detail-fields")),
            "the owner in the detail",
        )
        assert shown.owner_label and shown.owner_label.startswith("Alex Kim, as ")
        await pilot.press("escape")
        await pilot.press("m")
        await wait_until(pilot, lambda: screen.total == everyone, "everyone's connections again")


async def test_an_admin_marks_someone_as_left_after_seeing_what_rests_on_their_sign_ins(
    practice,
) -> None:
    rpc = await practice.connect()
    await rpc.call(p.STAFF_ADD, login="nobody", display_name="Sam Lee", role="staff")
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[0])
    listing = await rpc.call(p.CLIENTS_LIST, limit=1000)
    resting = [c for c in listing.items if c.grant_id == client.grant_id]
    # Sam's sign-in: the grant those clients rest on is recorded as Sam's.
    async with practice.daemon.store.transaction() as db:
        await db.execute(
            "UPDATE grants SET authorised_by = 'nobody' WHERE id = ?", (client.grant_id,)
        )
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.connected, "the app to connect")
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, StaffScreen)
        await wait_until(pilot, lambda: screen.allowed is True, "the staff list")
        table = screen.query_one(DataTable)
        table.move_cursor(row=[m.login for m in screen.members].index("nobody"))
        await pilot.press("l")
        await wait_until(pilot, lambda: app.screen is not screen, "the question")
        question = rendered(app.screen.query_one("#confirm-question", Static))
        words = " ".join(question.split())
        assert f"{len(resting)} clients rest on their 1 sign-in" in words
        assert resting[0].name in words
        assert "Nothing is revoked" in words
        await pilot.press("n")  # declined: nothing changed
        await wait_until(pilot, lambda: app.screen is screen, "the staff screen")
        assert (await practice.daemon.store.get_staff("nobody")).state == "active"
        await pilot.press("l")
        await wait_until(pilot, lambda: app.screen is not screen, "the question again")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: any(m.login == "nobody" and m.state == "left" for m in screen.members),
            "the person shown as left",
        )
    flagged = await rpc.call(p.CLIENTS_GET, client_id=client.id)
    assert flagged.status == "expiring"
    assert flagged.status_reason.startswith("owner Sam Lee left on ")
