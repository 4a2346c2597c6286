"""What one sign-in covers, said before the bulk sign-in and after it, per software.

Xero covers the organisations ticked at its consent page, BGL every fund of the firm, Class
one business, QuickBooks one company and MYOB one company file (DESIGN.md, provider-facts).
The provider definition says it once (``sign_in_covers``); ``providers.list`` hands it on;
the software chooser shows it under each software, and the checklist after a sign-in to a
one-company-file software says how to re-authorise the next file.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input, OptionList

from clientlink.common import protocol as p
from clientlink.sandbox.accounts import (
    BGL_CLIENT_SECRET,
    MYOB_CLIENT_SECRET,
    QUICKBOOKS_CLIENT_SECRET,
)
from clientlink.sandbox.classsuper import CLASS_CLIENT_SECRET
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.helpers import sandbox_get, sandbox_post, wait_until
from tests.test_client_import import screen_text
from tests.test_provider_myob import _files, _import_one, home  # noqa: F401 (a fixture)
from tests.test_tui_bulk import clients_screen_with_list, open_bulk_menu, screen_of

COVERS = {
    "xero": "one sign-in covers the organisations you tick",
    "quickbooks": "one sign-in per company",
    "bgl": "one sign-in covers every fund of the firm",
    "class": "one sign-in per Class business",
    "myob": "one sign-in per company file",
}
SECRETS = {
    "quickbooks": QUICKBOOKS_CLIENT_SECRET,
    "bgl": BGL_CLIENT_SECRET,
    "class": CLASS_CLIENT_SECRET,
    "myob": MYOB_CLIENT_SECRET,
}


async def _every_software(daemon):
    rpc = await daemon.connect()
    for provider, secret in SECRETS.items():
        await rpc.call(p.PROVIDERS_SET_SECRET, provider=provider, client_secret=secret)
    return rpc


async def test_providers_list_says_what_one_sign_in_covers(daemon):
    rpc = await _every_software(daemon)
    listed = {item.kind: item for item in (await rpc.call(p.PROVIDERS_LIST)).items}
    assert {kind: item.sign_in_covers for kind, item in listed.items()} == COVERS
    assert all(item.configured for item in listed.values())


async def test_the_chooser_says_under_each_software_what_its_sign_in_covers_at_80x24(
    daemon, sandbox
):
    rpc = await _every_software(daemon)
    await _import_one(daemon, rpc, _files(sandbox, tfn=False)[0])  # a client to list
    app = ClientlinkApp(daemon.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await open_bulk_menu(pilot)
        await pilot.press("enter")  # Re-authorise Bulk Clients
        chooser = await screen_of(app, ChooseSoftwareScreen)
        options = chooser.query_one(OptionList)
        await wait_until(lambda: options.option_count == len(COVERS), what="the software list")
        await pilot.pause()
        screen = screen_text(app)
        lines = [line.strip(" │╭╮╰╯▁▔▎▊") for line in screen.splitlines()]
        for provider, covers in COVERS.items():
            # The software's name, then on the line under it what one sign-in covers.
            name = options.get_option(provider).prompt.plain.split("  ")[0]
            at = next(i for i, line in enumerate(lines) if line.startswith(name))
            assert lines[at + 1] == covers, (provider, lines[at : at + 2])
        await pilot.press("f1")
        await pilot.pause()
        # The help dialog's lines, between its borders.
        help_text = " ".join(
            line.split("│")[1].strip()
            for line in screen_text(app).splitlines()
            if line.count("│") >= 2
        )
        assert "its line says what one sign-in to it covers" in help_text
        assert "You sign in to it once" not in help_text


async def test_a_myob_checklist_says_each_sign_in_covers_one_file_and_how_to_do_the_next(
    daemon, sandbox
):
    rpc = await _every_software(daemon)
    first, second = _files(sandbox, tfn=False)[:2]
    ids = [await _import_one(daemon, rpc, org) for org in (first, second)]
    for grant in await sandbox_get(sandbox.base_url, "/_sandbox/grants"):
        await sandbox_post(sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK, client_ids=ids)
    app = ClientlinkApp(daemon.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await open_bulk_menu(pilot)
        await pilot.press("enter")
        chooser = await screen_of(app, ChooseSoftwareScreen)
        options = chooser.query_one(OptionList)
        await wait_until(lambda: options.option_count > 0, what="the software list")
        options.highlighted = options.get_option_index("myob")
        await pilot.press("enter")
        sign_in = await screen_of(app, SignInScreen)
        await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
        assert sign_in.session is not None
        redirect_url = await daemon.approve(sign_in.session.authorize_url, [first.tenant_id])
        app.screen.focused.post_message(events.Paste(redirect_url))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(lambda: paste.has_focus, what="the paste field")
        await pilot.press("enter")

        bulk = await screen_of(app, BulkReauthScreen)
        checklist = bulk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == 1, what="the checklist")
        assert checklist.selected == [ids[0]]
        await pilot.pause()
        words = " ".join(screen_text(app).split())
        assert "1 covered, 1 of them clients." in words
        assert (
            "One sign-in per company file: 1 other MYOB (sandbox) client still needs "
            "re-authorising; when this is done, press b and sign in again for the next."
        ) in words
