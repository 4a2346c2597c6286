"""Every TUI screen shows outside text as written: markup in a name is letters, not style.

A business names itself in its own accounting file, so a client may be called
``[b]07[/b][@click=app.quit]q[/] x[/]``: Rich/Textual markup would make that bold, a
clickable "quit", and (the stray ``[/]``) a crash of the whole screen. Each screen that
can show a client's name or a provider's text is opened here at 80x24 with such names,
and must show the brackets as typed (``tests/test_terminal_injection.py`` covers escape
sequences).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, Select, TextArea

from clientlink.cli.demo import seed_practice
from clientlink.common import protocol as p
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.communication_center import CommunicationCenterScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.edit_contact import EditContactScreen
from clientlink.tui.screens.invite_client import InviteClientScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.jobs import JobsScreen
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.notifications import NotificationsScreen
from clientlink.tui.screens.reconnect_banks import ReconnectBanksScreen
from clientlink.tui.screens.reimport_review import ReimportReviewScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.screens.template_editor import TemplateEditorScreen
from tests.helpers import finished, sandbox_get, sandbox_post
from tests.test_tui_app import wait_until

pytestmark = pytest.mark.timeout(240)


def hostile(number: int) -> str:
    """A name that is bold, a quit action and a crash, if read as markup."""
    return f"[b]{number:02}[/b][@click=app.quit]q[/] x[/]"


TEMPLATE_NAME = "[b]Ours[/b] x[/]"


def drawn(app: ClientlinkApp) -> str:
    """The current screen as the terminal shows it, line by line."""
    if not app.is_running:
        raise AssertionError(f"the app stopped: {app._exception!r}")
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def shows(pilot: Pilot, screen_type: type, text: str) -> Any:
    """Wait until a ``screen_type`` is on top and draws ``text``; return the screen."""
    app = pilot.app

    def ready() -> bool:
        return isinstance(app.screen, screen_type) and text in drawn(app)

    try:
        await wait_until(pilot, ready, f"{screen_type.__name__} to show {text!r}")
    except AssertionError:
        raise AssertionError(f"{screen_type.__name__} shows:\n{drawn(app)}") from None
    return app.screen


async def back_to(pilot: Pilot, screen: Any) -> None:
    while pilot.app.screen is not screen:
        pilot.app.pop_screen()
        await pilot.pause()


@pytest.fixture
async def markup_practice(daemon):
    """The demo practice after every business renamed itself to markup."""
    base = daemon.sandbox.base_url
    for number, org in enumerate(await sandbox_get(base, "/_sandbox/orgs")):
        await sandbox_post(base, f"/_sandbox/orgs/{org['tenant_id']}", {"name": hostile(number)})
    rpc = await daemon.connect("seed")
    seeded = await seed_practice(rpc, base)
    await daemon.daemon.notifier.flush()  # a digest naming some of them, unread
    daemon.seeded = seeded
    return daemon


async def test_every_screen_shows_markup_in_names_and_provider_text_literally(
    markup_practice,
) -> None:
    rpc = await markup_practice.connect()
    template = await rpc.call(
        p.TEMPLATES_CREATE,
        name=TEMPLATE_NAME,
        channel="email",
        subject="Banks for {client_name}",
        body="Dear {client_name}, connect here: {link}",
    )
    # One invitation that the mail server refuses: a failed job naming its client.
    await sandbox_post(
        markup_practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "smtp_5xx", "smtp_code": 554, "count": 1},
    )
    connected = await rpc.call(p.CLIENTS_LIST, filter={"status": "connected"}, limit=1)
    victim = connected.items[0]
    started = await rpc.call(p.INVITES_SEND, client_id=victim.id, channel="email")
    job = await finished(rpc, started.job_id)
    assert job.failed == 1
    name = victim.name
    assert "[/]" in name and "[b]" in name

    app = ClientlinkApp(markup_practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients = app.screen
        assert isinstance(clients, ManageClientsScreen)
        await wait_until(pilot, lambda: clients.clients, "the client list")
        await shows(pilot, ManageClientsScreen, "[b]")  # the table and the detail pane
        highlighted = clients.clients[clients.focused_client_id()]
        await shows(pilot, ManageClientsScreen, highlighted.name)

        app.push_screen(ClientDetailScreen(victim.id, victim))
        await shows(pilot, ClientDetailScreen, name)
        await back_to(pilot, clients)

        app.push_screen(EditContactScreen(victim))
        await shows(pilot, EditContactScreen, f"Contact details — {name}")
        await back_to(pilot, clients)

        app.push_screen(InviteClientScreen(victim))
        invite = await shows(pilot, InviteClientScreen, f"Invite {name}")
        select = invite.query_one("#invite-template", Select)
        await wait_until(pilot, lambda: template.id in dict(map(reversed, select._options)), "t")
        select.value = template.id
        await shows(pilot, InviteClientScreen, TEMPLATE_NAME)
        await back_to(pilot, clients)

        clients.action_set_active(False)
        await shows(pilot, ConfirmScreen, "[b]")
        await back_to(pilot, clients)

        app.push_screen(JobProgressScreen(started.job_id))
        await shows(pilot, JobProgressScreen, name[:20])  # the failures table, cut to fit
        await shows(pilot, JobProgressScreen, f"{name}: ")  # the highlighted failure in full
        await back_to(pilot, clients)

        app.push_screen(JobsScreen())
        jobs = await shows(pilot, JobsScreen, "invite")
        jobs.action_toggle_audit()
        await shows(pilot, JobsScreen, "[b]")  # the audit log names the client
        await back_to(pilot, clients)

        app.push_screen(NotificationsScreen())
        await shows(pilot, NotificationsScreen, "[b]")  # the digest names some clients
        await back_to(pilot, clients)

        app.push_screen(ReconnectBanksScreen())  # step 1: tick the clients, by name
        await shows(pilot, ReconnectBanksScreen, "[b]00[/b][@click=app.quit]q[/] x[/]")
        await back_to(pilot, clients)

        app.push_screen(CommunicationCenterScreen())
        center = await shows(pilot, CommunicationCenterScreen, TEMPLATE_NAME)
        app.push_screen(TemplateEditorScreen(center.placeholders, None))
        editor = await shows(pilot, TemplateEditorScreen, "Preview for")
        editor.query_one("#editor-subject", Input).value = "For {client_name}"
        editor.query_one("#editor-body", TextArea).text = "Dear {client_name}, {link}"
        first = min((c.name for c in clients.clients.values()), key=str.casefold)
        await shows(pilot, TemplateEditorScreen, first[:15])  # the Select of clients
        await shows(pilot, TemplateEditorScreen, f"Dear {first[:15]}")  # the preview
        await back_to(pilot, clients)

        app.push_screen(SignInScreen(victim, "Xero"))
        await shows(pilot, SignInScreen, f"Re-authorise {name}")
        await back_to(pilot, clients)

        assert app.is_running and app._exception is None


async def test_the_bulk_checklist_and_the_reimport_review_show_provider_names_literally(
    markup_practice,
) -> None:
    rpc = await markup_practice.connect()
    needing = await rpc.call(
        p.CLIENTS_LIST, filter={"status": "needs_reauth", "provider": "xero"}, limit=1000
    )
    tenants = [item.tenant_id for item in needing.items]
    assert tenants
    # One business renames itself again: the re-import shows the old and the new name.
    connected = await rpc.call(
        p.CLIENTS_LIST, filter={"status": "connected", "provider": "xero"}, limit=1
    )
    renamed = connected.items[0]
    new_name = "[i]New[/i] x[/]"
    base = markup_practice.sandbox.base_url
    await sandbox_post(base, f"/_sandbox/orgs/{renamed.tenant_id}", {"name": new_name})
    reimport = await rpc.call(p.JOBS_START, kind="reimport", client_ids=[renamed.id])
    await finished(rpc, reimport.job_id)

    app = ClientlinkApp(markup_practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients = app.screen
        await wait_until(pilot, lambda: clients.clients, "the client list")

        app.push_screen(ReimportReviewScreen(reimport.job_id))
        await shows(pilot, ReimportReviewScreen, renamed.name)
        await shows(pilot, ReimportReviewScreen, f"Name: {renamed.name} → {new_name}")
        await back_to(pilot, clients)

        providers = (await rpc.call(p.PROVIDERS_LIST)).items
        xero = next(each for each in providers if each.name == "xero")
        app.push_screen(BulkReauthScreen(xero))  # it opens the one sign-in itself
        sign_in = await shows(pilot, SignInScreen, "Re-authorise Bulk Clients")
        await wait_until(pilot, lambda: sign_in.phase == Phase.WAITING, "the sign-in address")
        redirect = await markup_practice.approve(sign_in.session.authorize_url, tenants)
        app.screen.focused.post_message(events.Paste(redirect))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(pilot, lambda: paste.has_focus, "the paste field")
        await pilot.press("enter")
        first = next(item.name for item in needing.items)
        await shows(pilot, BulkReauthScreen, first[:20])
        assert app.is_running and app._exception is None


async def test_a_sign_in_refused_by_the_provider_toasts_its_description_literally(
    markup_practice,
) -> None:
    """auth.failed: the provider's own error_description, escapes and markup included."""
    from textual.widgets._toast import Toast

    rpc = await markup_practice.connect()
    needing = await rpc.call(p.CLIENTS_LIST, filter={"status": "needs_reauth"}, limit=1)
    client = needing.items[0]
    description = "No \x1b]52;c;ZXZpbA==\x07 \x9b2J \u202e[@click=app.quit]ok[/] [b]x[/b] y[/]"
    made_visible = "No ␛]52;c;ZXZpbA==␇ \ufffd2J \ufffd[@click=app.quit]ok[/] [b]x[/b] y[/]"

    app = ClientlinkApp(markup_practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        clients = app.screen
        await wait_until(pilot, lambda: clients.clients, "the client list")
        app.push_screen(SignInScreen(client, "Xero"))
        sign_in = await shows(pilot, SignInScreen, f"Re-authorise {client.name}")
        await wait_until(pilot, lambda: sign_in.phase == Phase.WAITING, "the sign-in address")
        session = sign_in.session
        state = session.authorize_url.split("state=", 1)[1].split("&", 1)[0]
        query = urlencode(
            {"state": state, "error": "server_error", "error_description": description}
        )
        await markup_practice.deliver(f"{session.redirect_uri}?{query}")
        await wait_until(pilot, lambda: sign_in.phase == Phase.FAILED, "the refusal")

        failed = [n for n in app._notifications if n.title.startswith("Sign-in failed")]
        assert len(failed) == 1, [n.title for n in app._notifications]
        (toast,) = failed
        assert toast.title == f"Sign-in failed — {client.name}"
        assert made_visible in toast.message
        assert toast.markup is False

        def on_screen() -> list[Toast]:
            return [each for each in app.screen.query(Toast) if each._notification is toast]

        await wait_until(pilot, on_screen, "the toast on the screen")
        drawn_toast = on_screen()[0].render().plain
        assert drawn_toast.startswith(f"Sign-in failed — {client.name}\nThe sign-in failed: ")
        assert made_visible in drawn_toast
        for char in drawn_toast:
            assert char == "\n" or not (ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F), char
        await shows(pilot, SignInScreen, "[@click=app.quit]ok[/]")  # and on the screen
        assert app.is_running and app._exception is None
