"""Contact details, invitations and templates in the TUI.

Real daemon, real sandbox (SMTP server, bank feeds) over real sockets; the app is driven
with Pilot at 80x24.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, TextArea

from clientlink.common import protocol as p
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.communication_center import CommunicationCenterScreen
from clientlink.tui.screens.edit_contact import EditContactScreen
from clientlink.tui.screens.invite_client import InviteClientScreen
from clientlink.tui.screens.reconnect_banks import ReconnectBanksScreen, Step
from clientlink.tui.screens.template_editor import TemplateEditorScreen
from clientlink.tui.widgets.filtered_checklist import FilteredChecklist
from tests.helpers import finished, sandbox_get, sandbox_post, wait_until
from tests.test_tui_bulk import clients_screen_with_list, finished_job, screen_of, toasts
from tests.test_tui_watch import flat
from tests.test_tui_watch import shown as shown_on


async def outbox(practice: Any, channel: str) -> list[dict[str, Any]]:
    return await sandbox_get(practice.sandbox.base_url, f"/_sandbox/outbox?channel={channel}")


async def open_detail_of_highlighted(pilot: Pilot) -> ClientDetailScreen:
    clients_screen = await clients_screen_with_list(pilot.app)
    client_id = clients_screen.focused_client_id()
    await pilot.press("d")
    detail = await screen_of(pilot.app, ClientDetailScreen)
    assert detail.client_id == client_id
    await wait_until(lambda: detail.client is not None, what="the client's details")
    return detail


def shown(widget: Any) -> str:
    """A Static's text as drawn, on one line."""
    return flat(shown_on(widget.screen, f"#{widget.id}"))


async def test_an_invalid_email_is_refused_in_the_dialog_and_a_valid_one_saved(practice) -> None:
    daemon = await practice.connect()
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail_of_highlighted(pilot)
        before = await daemon.call(p.CLIENTS_GET, client_id=detail.client_id)
        assert before.email and before.email in shown(detail.query_one("#detail-fields"))

        await pilot.press("e")
        dialog = await screen_of(app, EditContactScreen)
        dialog.query_one("#contact-email", Input).value = "accounts@@example"
        await pilot.press("enter")
        await wait_until(lambda: dialog.has_class("-error"), what="the refusal in the dialog")
        assert app.screen is dialog
        assert "not a valid email" in shown(dialog.query_one("#contact-error"))
        assert await daemon.call(p.CLIENTS_GET, client_id=detail.client_id) == before

        dialog.query_one("#contact-email", Input).value = "books@new-address.example"
        dialog.query_one("#contact-phone", Input).value = "0412 345 678"
        await pilot.press("enter")
        await wait_until(lambda: app.screen is detail, what="the dialog to close")
        after = await daemon.call(p.CLIENTS_GET, client_id=detail.client_id)
        assert (after.email, after.phone) == ("books@new-address.example", "+61412345678")
        assert "books@new-address.example" in shown(detail.query_one("#detail-fields"))


async def test_inviting_one_client_by_email_sends_the_mail_and_the_timeline_says_sent(
    practice,
) -> None:
    daemon = await practice.connect()
    bank = (await daemon.call(p.BANKS_LIST)).items[1]
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail_of_highlighted(pilot)
        assert detail.client is not None
        await wait_until(lambda: detail.invitations == [], what="an empty timeline")

        await pilot.press("i")
        dialog = await screen_of(app, InviteClientScreen)
        banks = dialog.query_one(FilteredChecklist)
        await wait_until(lambda: banks.items, what="the banks")
        banks.filter_input.value = bank.name
        await wait_until(lambda: banks.shown == [bank.id], what="the filtered banks")
        banks.checklist.focus()
        await pilot.press("space")
        assert dialog.channel is not None and dialog.channel.value == "email"
        await pilot.press("ctrl+s")  # the message first
        await wait_until(lambda: dialog.confirming is not None, what="the message to confirm")
        assert bank.name in shown(dialog.query_one("#invite-message"))
        await pilot.press("ctrl+s")  # then Send

        await wait_until(lambda: app.screen is detail, what="the dialog to close")
        await wait_until(lambda: "Invitation sent" in toasts(app), what="the toast")
        timeline = detail.query_one("#detail-timeline", DataTable)
        await wait_until(lambda: timeline.row_count == 1, what="the invitation in the timeline")
        assert str(timeline.get_row_at(0)[1]) == "Email"
        assert str(timeline.get_row_at(0)[4]) == "Sent"
        assert bank.name in shown(detail.query_one("#detail-invitation"))

        # The client connects the bank; the follow-up's event moves the timeline on by itself.
        users = await sandbox_get(practice.sandbox.base_url, "/_sandbox/basiq/users")
        opaque = users[0]["auth_link"]["opaque"]
        await sandbox_post(practice.sandbox.base_url, f"/_sandbox/basiq/consent/{opaque}/complete")
        await daemon.call(p.INVITES_FOLLOW_UP)
        await wait_until(
            lambda: str(timeline.get_row_at(0)[4]) == "Bank connected", what="the live update"
        )

    (mail,) = await outbox(practice, "email")
    assert mail["rcpt_tos"] == [detail.client.email]
    assert bank.name in mail["text"]


def drawn(app: ClientlinkApp) -> str:
    """The whole screen as drawn at 80x24, line by line."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_v_on_manage_clients_shows_the_message_and_sends_one_invitation_on_confirm(
    practice,
) -> None:
    daemon = await practice.connect()
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen = await clients_screen_with_list(app)
        client = clients_screen.clients[clients_screen.focused_client_id() or -1]
        assert client.email and client.phone
        await pilot.press("v")
        dialog = await screen_of(app, InviteClientScreen)
        assert dialog.client.id == client.id
        assert f"Invite {client.name}" in drawn(app)
        await wait_until(lambda: dialog.templates, what="the templates")
        await pilot.press("down")  # SMS, to the client's mobile
        assert dialog.channel == p.Channel.SMS

        await pilot.press("ctrl+s")  # shows the message; nothing is sent yet
        await wait_until(lambda: dialog.confirming is not None, what="the message to confirm")
        screen = drawn(app)
        assert f"To {client.phone}" in screen and "segment" in screen
        assert dialog.preview is not None and dialog.preview.sample is not None
        message = "".join(shown(dialog.query_one("#invite-message")).split())
        assert "".join(dialog.preview.sample.body.split()) in message  # wrapped, all of it
        assert "please connect your bank feeds" in screen
        assert "Send (ctrl+s)" in screen and "Back (Esc)" in screen
        await pilot.press("enter")  # Enter never sends from the message
        await pilot.pause()
        assert app.screen is dialog and await outbox(practice, "sms") == []

        # Esc goes back to the choices; the email's message has a subject.
        await pilot.press("escape")
        assert dialog.confirming is None and app.screen is dialog
        await pilot.press("up")
        assert dialog.channel == p.Channel.EMAIL
        await pilot.press("ctrl+s")
        await wait_until(lambda: dialog.confirming is not None, what="the email to confirm")
        assert dialog.preview is not None and dialog.preview.sample is not None
        subject = dialog.preview.sample.subject
        assert subject and f"Subject: {subject}" in flat(shown(dialog.query_one("#invite-message")))
        assert "Subject: Harbourside Accounting" in drawn(app)
        assert f"Dear {client.name}," in drawn(app)  # the body's lines, as they arrive
        assert f"To {client.email}" in drawn(app)
        assert await outbox(practice, "email") == []

        await pilot.press("ctrl+s")  # the deliberate Send
        await wait_until(lambda: app.screen is clients_screen, what="back on Manage Clients")
        await wait_until(lambda: "Invitation sent" in toasts(app), what="the toast")

    (mail,) = await outbox(practice, "email")
    assert mail["rcpt_tos"] == [client.email]
    assert await outbox(practice, "sms") == []
    (invitation,) = (await daemon.call(p.INVITES_LIST, client_id=client.id)).items
    assert invitation.channel == p.Channel.EMAIL


async def test_the_palette_offers_client_invite_for_the_highlighted_client(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen = await clients_screen_with_list(app)
        client = clients_screen.clients[clients_screen.focused_client_id() or -1]
        await pilot.press("f2")  # the command palette
        await pilot.pause()
        await pilot.press(*"client", "colon", "space", *"invite")
        await wait_until(lambda: "Client: invite" in drawn(app), what="the command listed")
        assert f"Invite {client.name} to connect bank feeds" in flat(drawn(app))
        await pilot.press("enter")
        dialog = await screen_of(app, InviteClientScreen)
        assert dialog.client.id == client.id


async def test_a_custom_template_reaches_two_marked_clients_naming_both_banks(practice) -> None:
    daemon = await practice.connect()
    banks = (await daemon.call(p.BANKS_LIST)).items[1:3]
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen = await clients_screen_with_list(app)
        await pilot.press("f6")
        center = await screen_of(app, CommunicationCenterScreen)
        await wait_until(lambda: center.templates, what="the templates")

        await pilot.press("n")
        editor = await screen_of(app, TemplateEditorScreen)
        editor.query_one("#editor-name", Input).value = "Add your new banks"
        editor.query_one("#editor-subject", Input).value = "{client_name}: add {bank_names}"
        body = editor.query_one("#editor-body", TextArea)
        body.text = "Hello {client_name}, please add {bank_names} here: {linky}"
        await pilot.press("ctrl+s")
        await wait_until(lambda: editor.has_class("-error"), what="the refusal")
        assert "{linky}" in shown(editor.query_one("#editor-error"))
        assert app.screen is editor
        listed = await daemon.call(p.TEMPLATES_LIST)
        assert all(template.builtin for template in listed.items)

        body.text = "Hello {client_name}, please add {bank_names} here: {link}"
        preview = editor.query_one("#editor-preview")
        await wait_until(
            lambda: "please add your bank accounts here: https://" in shown(preview),
            what="the preview of the fixed text",
        )
        # The refusal was about the text: once the text is valid it is no longer shown.
        assert not editor.has_class("-error")
        assert "Not saved" not in shown(editor.query_one("#editor-error"))
        await pilot.press("ctrl+s")
        await wait_until(lambda: app.screen is center, what="back in the Communication Center")
        listed = await daemon.call(p.TEMPLATES_LIST)
        (template,) = [each for each in listed.items if not each.builtin]
        await wait_until(lambda: template.id in center.templates, what="the new template")

        await pilot.press("escape")
        await wait_until(lambda: app.screen is clients_screen, what="back on Manage Clients")
        await pilot.press("space", "space")  # marks the first two clients
        marked = sorted(clients_screen.marked)
        assert len(marked) == 2
        await pilot.press("b", "5")  # Bulk Actions → Reconnect and Add New Banks
        wizard = await screen_of(app, ReconnectBanksScreen)
        assert wizard.step == Step.BANKS and wizard.client_ids == marked
        bank_list = wizard.query_one(f"#{Step.BANKS}", FilteredChecklist)
        await wait_until(lambda: bank_list.items, what="the banks")
        for bank in banks:
            bank_list.checklist.highlighted = bank_list.shown.index(bank.id)
            await pilot.press("space")
        await pilot.press("enter")
        assert wizard.step == Step.TEMPLATE
        templates = wizard.query_one("#reconnect-templates", OptionList)
        templates.highlighted = templates.get_option_index(template.id)
        await pilot.pause()
        assert "All 2 clients have an email address" in shown(wizard.query_one("#reconnect-reach"))
        await pilot.press("enter")  # on to the confirmation
        await wait_until(lambda: wizard.preview is not None, what="the confirmation")
        await pilot.press("ctrl+s")  # Send
        progress = await finished_job(pilot)
        assert "2 invited, 0 failed" in shown(progress.query_one("#job-summary"))

    mails = await outbox(practice, "email")
    emails = {(await daemon.call(p.CLIENTS_GET, client_id=cid)).email for cid in marked}
    assert {address for mail in mails for address in mail["rcpt_tos"]} == emails
    both = f"{banks[0].name} and {banks[1].name}"
    assert len(mails) == 2 and all(both in mail["text"] for mail in mails)


async def test_a_bank_connection_that_breaks_says_so_on_the_client_screen_and_in_a_toast(
    practice,
) -> None:
    daemon = await practice.connect()
    bank = (await daemon.call(p.BANKS_LIST)).items[1]
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail_of_highlighted(pilot)
        assert detail.client is not None
        section = detail.query_one("#detail-banks")
        await wait_until(lambda: detail.bank_connections == [], what="no bank connections")
        assert "No bank connections yet" in shown(section)

        # The client accepts an invitation and connects the bank: the section shows it live.
        started = await daemon.call(
            p.INVITES_SEND, client_id=detail.client_id, channel="email", bank_ids=[bank.id]
        )
        await finished(daemon, started.job_id)
        users = await sandbox_get(practice.sandbox.base_url, "/_sandbox/basiq/users")
        opaque = users[0]["auth_link"]["opaque"]
        await sandbox_post(practice.sandbox.base_url, f"/_sandbox/basiq/consent/{opaque}/complete")
        await daemon.call(p.INVITES_FOLLOW_UP)
        await wait_until(
            lambda: f"{bank.name} Connected" in shown(section), what="the connected bank"
        )
        assert "reconnect" not in shown(section)

        listed = await daemon.call(p.BANKS_CONNECTIONS, client_id=detail.client_id)
        (connection,) = listed.items
        await sandbox_post(
            practice.sandbox.base_url, f"/_sandbox/basiq/connections/{connection.id}/invalidate"
        )
        await daemon.call(p.INVITES_FOLLOW_UP)
        await wait_until(
            lambda: "Broken — needs a reconnect" in shown(section), what="the broken connection"
        )
        assert f"Invite the client to reconnect: press i and tick {bank.name}" in shown(section)
        assert f"{detail.client.name}: a bank connection broke" in toasts(app)


async def test_the_bulk_send_is_confirmed_first_and_enter_alone_sends_nothing(practice) -> None:
    daemon = await practice.connect()
    first, second, third = practice.connected_ids[:3]
    await daemon.call(p.CLIENTS_UPDATE, client_id=second, phone="")
    names = {cid: (await daemon.call(p.CLIENTS_GET, client_id=cid)).name for cid in (first, third)}
    skipped = (await daemon.call(p.CLIENTS_GET, client_id=second)).name
    bank = (await daemon.call(p.BANKS_LIST)).items[1]
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ReconnectBanksScreen([first, second, third]))
        wizard = await screen_of(app, ReconnectBanksScreen)
        await pilot.pause()
        bank_list = wizard.query_one(f"#{Step.BANKS}", FilteredChecklist)
        await wait_until(lambda: bank_list.items, what="the banks")
        bank_list.checklist.highlighted = bank_list.shown.index(bank.id)
        await pilot.press("space", "enter")
        assert wizard.step == Step.TEMPLATE
        templates = wizard.query_one("#reconnect-templates", OptionList)
        templates.highlighted = templates.get_option_index("default-sms")
        await pilot.press("enter")
        await wait_until(lambda: wizard.preview is not None, what="the confirmation")
        assert wizard.step == Step.CONFIRM
        counts = shown(wizard.query_one("#confirm-counts"))
        assert "SMS: 2 messages to send · Email: none" in counts
        assert f"Skipped, 1: {skipped} (no mobile number)" in counts
        assert "per SMS (GSM-7)" in counts and "links of 80 characters (estimated)" in counts
        message = shown(wizard.query_one("#confirm-message"))
        assert f"please connect your bank feeds for {bank.name}" in message
        assert "segment" in message and names[first] not in message  # SMS: no name in it
        assert "ctrl+s sends (Enter does not)" in shown(wizard.query_one("#reconnect-summary"))

        await pilot.press("enter", "escape", "enter")  # Enter, even twice, sends nothing
        await pilot.pause()
        assert app.screen is wizard and wizard.step == Step.CONFIRM
        assert await outbox(practice, "sms") == []

        sample = wizard.query_one("#confirm-sample")
        sample.value = third  # the message for another client
        await wait_until(
            lambda: (
                wizard.preview is not None
                and wizard.preview.sample is not None
                and wizard.preview.sample.client_id == third
            ),
            what="the other client's message",
        )
        phone = (await daemon.call(p.CLIENTS_GET, client_id=third)).phone
        assert f"To {phone}" in shown(wizard.query_one("#confirm-message"))

        await pilot.press("ctrl+s")
        progress = await finished_job(pilot)
        assert "2 invited, 0 failed" in shown(progress.query_one("#job-summary"))
    sent = await outbox(practice, "sms")
    assert len(sent) == 2 and all(bank.name in sms["body"] for sms in sent)
