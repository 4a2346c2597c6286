"""Manage Clients at 80x24: the Re-Authorise column, the footer's keys, the pane's words."""

from __future__ import annotations

from textual.widgets import DataTable

from clientlink.common import protocol as p
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.client_table import REAUTH_BUTTON
from tests.test_tui_app import wait_until
from tests.test_tui_sign_in_address import screen_lines


async def listed(pilot) -> ManageClientsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ManageClientsScreen)
    await wait_until(pilot, lambda: screen.clients, "the client list")
    return screen


def row_of(lines: list[str], name: str) -> str:
    (row,) = [line for line in lines if line.strip().startswith(name)]
    return row


async def test_rows_needing_a_sign_in_have_a_re_authorise_button_at_80_columns(
    practice,
) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await listed(pilot)
        table = screen.query_one(DataTable)
        needing = practice.client_ids_needing_reauth[0]
        connected = next(i for i in practice.connected_ids if i in screen.clients)
        table.move_cursor(row=table.get_row_index(str(needing)))
        await pilot.pause()
        lines = screen_lines(app)
        heading = next(line for line in lines if line.strip().startswith("✓  Name"))
        assert heading.rstrip().endswith("Re-Auth")  # the last column, in view at 80
        assert max(len(line) for line in lines) == 80
        # Button cells only on rows a sign-in mends; none on a connected row.
        for client in screen.clients.values():
            cell = table.get_cell(str(client.id), "reauth")
            wanted = client.status in ("needs_reauth", "expiring", "not_connected")
            assert (str(cell) == REAUTH_BUTTON) is wanted, (client.name, client.status)
        assert str(table.get_cell(str(connected), "reauth")) == ""
        # The row under the cursor, as drawn: its status, then its button at the right edge.
        name = screen.clients[needing].name
        cell = name if len(name) <= 15 else name[:14] + "…"
        drawn = row_of(lines, f"{cell}  ")
        assert "Needs re-auth" in drawn and drawn.rstrip().endswith("Re-Auth")

        # → goes to the button (the pane says what Enter does), Enter presses it.
        await pilot.press("right")
        await wait_until(
            pilot,
            lambda: "Enter: re-authorise" in "\n".join(screen_lines(app)),
            "the pane saying Enter re-authorises",
        )
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, SignInScreen) and app.screen.phase == Phase.WAITING,
            "the sign-in for the row",
        )
        assert app.screen.client.id == needing
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen, "back on Manage Clients")

        # On a connected row Enter (still in the column) opens details, as before.
        table.move_cursor(row=table.get_row_index(str(connected)))
        await pilot.pause()
        assert "Enter: details" in "\n".join(screen_lines(app))
        await pilot.press("left")

        # A click on a row's button opens its sign-in too.
        row = table.get_row_index(str(needing))
        table.move_cursor(row=row)
        await pilot.pause()
        region = table.content_region
        x = region.x + sum(c.get_render_width(table) for c in table.ordered_columns[:-1]) + 3
        y = region.y + 1 + row - int(table.scroll_y)  # below the heading
        await pilot.click(offset=(x, y))
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, SignInScreen) and app.screen.phase == Phase.WAITING,
            "the sign-in from a click",
        )
        assert app.screen.client.id == needing
        await pilot.press("escape")


async def test_the_80_column_footer_shows_every_key_with_f6_and_f10(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await listed(pilot)
        await wait_until(pilot, lambda: "f10" in screen_lines(app)[-1], "the footer's F10")
        footer = screen_lines(app)[-1]
        for key in ("r Re-Auth", "b Bulk", "t Attention", "f1 Help", "f6 Comms", "f10 Quit"):
            assert key in footer, footer
        await pilot.press("f6")
        await wait_until(
            pilot, lambda: type(app.screen).__name__ == "CommunicationCenterScreen", "F6"
        )


async def test_a_deactivated_clients_pane_does_not_promise_a_check(practice) -> None:
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await listed(pilot)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(str(client_id)))
        await wait_until(
            pilot, lambda: "next check in" in "\n".join(screen_lines(app)), "an active pane"
        )
        await rpc.call(p.CLIENTS_DEACTIVATE, client_ids=[client_id])
        screen.action_show_status("inactive")
        await wait_until(
            pilot,
            lambda: screen.clients and all(not c.active for c in screen.clients.values()),
            "the inactive list",
        )
        table.move_cursor(row=table.get_row_index(str(client_id)))
        await pilot.pause()
        shown = "\n".join(screen_lines(app))
        assert client.name[:20] in shown
        assert "Deactivated: clientlinkd does not check it" in shown
        assert "next check" not in shown
        assert str(table.get_cell(str(client_id), "reauth")) == ""
