"""Re-authorise Bulk Clients → Class in the TUI: the sign-ins said up front, then walked.

Real daemon, real Class sandbox over HTTP, real socket; the app is driven with Pilot at
80x24, keyboard only, and the screen's own words are read. The TUI is closed and opened
again between two sign-ins: the Jobs screen says what the job waits for and continues it.
"""

from __future__ import annotations

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from clientlink.common import protocol as p
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import ChooseSoftwareScreen
from clientlink.tui.screens.business_reauth import BusinessReauthScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.jobs import JobsScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.helpers import wait_until
from tests.test_class_multi_business import class_practice
from tests.test_tui_bulk import clients_screen_with_list, finished_job, open_bulk_menu, screen_of


def shown(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def sign_in_on_screen(pilot: Pilot, running, business: str) -> None:
    """The sign-in screen for ``business``: the person approves and pastes the address."""
    sign_in = await screen_of(pilot.app, SignInScreen)
    await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
    assert sign_in.business == business
    title = shown(sign_in, "#sign-in-title")
    assert "Sign in to" in title and f"business {business}" in title
    assert sign_in.session is not None
    redirect_url = await running.approve(sign_in.session.authorize_url, [])
    pilot.app.screen.focused.post_message(events.Paste(redirect_url))
    paste = sign_in.query_one("#sign-in-paste", Input)
    await wait_until(lambda: paste.has_focus, what="the paste field")
    await pilot.press("enter")


async def test_class_bulk_says_the_sign_ins_up_front_and_walks_through_them(daemon) -> None:
    rpc = await daemon.connect()
    by_business = await class_practice(rpc, daemon.sandbox.base_url)
    # The screen lists (and signs in to) the businesses by code.
    first, second, third = sorted(by_business, key=str.casefold)
    funds = sum(len(ids) for ids in by_business.values())
    software = next(
        info.display_name
        for info in (await rpc.call(p.PROVIDERS_LIST)).items
        if info.name == "class"
    )

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

        walk = await screen_of(app, BusinessReauthScreen)
        checklist = walk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == funds, what="the funds")
        said = f"These {funds} funds are in 3 {software} businesses: you will sign in 3 times"
        assert said in shown(walk, "#business-summary")
        # Each fund is labelled by its business.
        labels = [str(checklist.get_option_at_index(i).prompt) for i in range(funds)]
        assert sum(label.startswith(first) for label in labels) == len(by_business[first])
        await pilot.press("space")  # untick one: the count follows
        assert f"These {funds - 1} funds are in" in shown(walk, "#business-summary")
        await pilot.press("space")

        await pilot.press("enter")  # Start: the whole job is recorded, then sign-in 1
        await sign_in_on_screen(pilot, daemon, first)
        await screen_of(app, BusinessReauthScreen)
        step = f"Sign-in 2 of 3: business {second} — {len(by_business[second])} funds"
        await wait_until(lambda: step in shown(walk, "#business-step"), what="sign-in 2")
        await wait_until(
            lambda: walk.job is not None and walk.job.done == len(by_business[first]),
            what="the first business re-authorised",
        )
        assert f"{len(by_business[first])} done" in shown(walk, "#business-counts")
        job_id = walk.job_id
        await pilot.press("escape")  # leave it waiting; close the TUI

    # The TUI again: the Jobs screen says what the job waits for, and continues it.
    app = ClientlinkApp(daemon.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await pilot.press("f4")
        jobs = await screen_of(app, JobsScreen)
        await wait_until(lambda: job_id in jobs.jobs, what="the job listed")
        waiting = f"Job {job_id} is waiting for you to sign in to {second}: Enter continues"
        assert waiting in shown(jobs, "#jobs-summary")
        await pilot.press("enter")
        walk = await screen_of(app, BusinessReauthScreen)
        step = f"Sign-in 2 of 3: business {second} — {len(by_business[second])} funds"
        await wait_until(lambda: step in shown(walk, "#business-step"), what="sign-in 2 again")

        await pilot.press("k")  # Skip this business
        confirm = await screen_of(app, ConfirmScreen)
        assert f"Skip business {second}?" in shown(confirm, "#confirm-question")
        await pilot.press("y")
        step = f"Sign-in 3 of 3: business {third} — {len(by_business[third])} funds"
        await wait_until(lambda: step in shown(walk, "#business-step"), what="sign-in 3")
        await pilot.press("enter")
        await sign_in_on_screen(pilot, daemon, third)

        progress = await finished_job(pilot)
        summary = shown(progress, "#job-summary")
        done = len(by_business[first]) + len(by_business[third])
        assert f"{done} re-authorised, {len(by_business[second])} failed" in summary

    for client_id in by_business[third]:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"
