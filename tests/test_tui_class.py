"""Class Super in the TUI at 80x24: the bulk re-authorisation of one Class business's funds.

Real daemon, real sandbox over HTTP, real socket; the app is driven with Pilot.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input, OptionList

from clientlink.common import protocol as p
from clientlink.sandbox.approve import approve
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import ChooseSoftwareScreen
from clientlink.tui.screens.business_reauth import BusinessReauthScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.helpers import sandbox_get, sandbox_post, wait_until
from tests.test_provider_class import import_business, ready
from tests.test_tui_bulk import clients_screen_with_list, finished_job, open_bulk_menu, screen_of


async def test_bulk_reauthorise_a_class_business_after_one_sign_in(daemon) -> None:
    rpc = await daemon.connect()
    await ready(rpc)
    business = (await sandbox_get(daemon.sandbox.base_url, "/_sandbox/class/businesses"))[1]
    client_ids = await import_business(rpc, business["code"])
    for grant in await sandbox_get(daemon.sandbox.base_url, "/_sandbox/grants"):
        await sandbox_post(daemon.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK)
    app = ClientlinkApp(daemon.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await open_bulk_menu(pilot)
        await pilot.press("enter")  # Re-authorise Bulk Clients
        chooser = await screen_of(app, ChooseSoftwareScreen)
        options = chooser.query_one(OptionList)
        await wait_until(lambda: options.option_count > 0, what="the software list")
        options.highlighted = options.get_option_index("class")
        await pilot.press("enter")
        # One sign-in per Class business: the funds first, and how many sign-ins they take.
        walk = await screen_of(app, BusinessReauthScreen)
        checklist = walk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == len(client_ids), what="the funds")
        assert set(checklist.selected) == set(client_ids)
        shown = [str(checklist.get_option_at_index(i).prompt) for i in range(len(client_ids))]
        fund_names = {fund["name"] for fund in business["funds"]}
        assert all(any(name in line for name in fund_names) for line in shown)
        assert "business: you will sign in once" in str(
            walk.query_one("#business-summary").render()
        )
        await pilot.press("enter")  # Start: the job, then its one sign-in
        sign_in = await screen_of(app, SignInScreen)
        await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
        assert sign_in.provider == "class" and sign_in.session is not None
        assert sign_in.business == business["code"]  # named: no selection page at Class
        redirect_url = await approve(sign_in.session.authorize_url, orgs=[business["name"]])
        app.screen.focused.post_message(events.Paste(redirect_url))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(lambda: paste.has_focus, what="the paste field")
        await pilot.press("enter")

        progress = await finished_job(pilot)
        summary = str(progress.query_one("#job-summary").render())
        assert f"{len(client_ids)} re-authorised, 0 failed" in summary

    for client_id in client_ids:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"
