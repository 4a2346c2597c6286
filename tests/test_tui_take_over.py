"""Take over connections in the TUI, at 80x24: Bulk Actions → Take over connections → whose →
their clients by software → one sign-in as you → the job → revoke their old sign-in.

Real daemon, real sandbox over HTTP, real socket; the screen is read as a person reads it.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input, OptionList

from clientlink.common import protocol as p
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_actions import BulkActionsScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.screens.take_over import ChooseOwnerScreen, TakeOverScreen
from tests.helpers import wait_until
from tests.test_handover import ALEX_XERO, sam_has_left_the_practice
from tests.test_tui_bulk import clients_screen_with_list, finished_job, screen_of


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_take_over_connections_moves_a_leavers_clients_and_revokes_on_request(practice):
    daemon = await practice.connect()
    old_grant, resting = await sam_has_left_the_practice(practice, daemon)
    await daemon.call(p.STAFF_LEAVE, login="sam")
    tenants = [(await daemon.call(p.CLIENTS_GET, client_id=c)).tenant_id for c in resting]
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await pilot.press("b")
        menu = await screen_of(app, BulkActionsScreen)
        assert "Take over connections" in str(
            menu.query_one(OptionList).get_option_at_index(5).prompt
        )
        await pilot.press("6")

        chooser = await screen_of(app, ChooseOwnerScreen)
        owners = chooser.query_one(OptionList)
        await wait_until(lambda: owners.option_count > 0, what="the owners")
        # Sam's clients are all flagged, so Sam comes first.
        first = str(owners.get_option_at_index(0).prompt)
        assert first.startswith("Sam Lee (sam)") and f"{len(resting)} need attention" in first
        await pilot.press("enter")

        take_over = await screen_of(app, TakeOverScreen)
        await wait_until(lambda: take_over.loaded, what="Sam's connections")
        summary = text_of(take_over, "#take-over-summary")
        expected = f"Take over Sam Lee's connections: {len(resting)} clients, 1 sign-in as you"
        assert expected in summary
        groups = text_of(take_over, "#take-over-groups")
        assert "1. Xero" in groups and f"{len(resting)} clients" in groups and "next" in groups
        await pilot.press("enter")

        sign_in = await screen_of(app, SignInScreen)
        await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
        assert sign_in.session is not None
        redirect = await practice.approve(sign_in.session.authorize_url, tenants, user=ALEX_XERO)
        app.screen.focused.post_message(events.Paste(redirect))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(lambda: paste.has_focus, what="the paste field")
        await pilot.press("enter")

        progress = await finished_job(pilot)
        outcome = text_of(progress, "#job-summary")
        assert f"Took over {len(resting)} of Sam Lee's connections" in outcome
        await pilot.press("escape")

        back = await screen_of(app, TakeOverScreen)
        await wait_until(
            lambda: "none left" in text_of(back, "#take-over-summary"), what="none left"
        )
        old = text_of(back, "#take-over-old")
        assert f"grant {old_grant} (xero)" in old and "r revokes them" in old
        await pilot.press("r")
        await screen_of(app, ConfirmScreen)
        await pilot.press("y")
        await wait_until(
            lambda: f"Revoked grant {old_grant} (xero)" in text_of(back, "#take-over-old"),
            what="what was revoked",
        )

    grants = {g.id: g for g in (await daemon.call(p.GRANTS_LIST)).items}
    assert grants[old_grant].state == "revoked"
    for client_id in resting:
        client = await daemon.call(p.CLIENTS_GET, client_id=client_id)
        assert client.status == "connected" and client.grant_id != old_grant
