"""The sign-in screen at 80x24: the short address on one line, the QR code (or why not),
typing going to the paste field, and a wrong paste that keeps the sign-in waiting."""

from __future__ import annotations

import httpx
import pytest
from textual.widgets import Input

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.notifications import NotificationsScreen
from clientlink.tui.screens.sign_in import Phase, phone_can_open
from clientlink.tui.widgets.qr_view import qr_text
from tests.test_tui_app import (
    assert_reauthorised,
    open_sign_in_for_a_client_needing_reauth,
    wait_until,
)


def screen_lines(app: ClientlinkApp) -> list[str]:
    """Every row of the screen as drawn."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def test_the_short_address_is_on_one_line_and_typing_goes_to_the_paste_field(
    practice,
) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen, sign_in, client = await open_sign_in_for_a_client_needing_reauth(
            pilot, practice
        )
        short_url = sign_in.session.short_url
        lines = screen_lines(app)
        assert len(lines) == 24
        # The whole address on one row of its own, so a mouse copies all of it.
        (row,) = [line for line in lines if "/s/" in line]
        assert row.strip() == short_url
        assert sign_in.session.authorize_url not in "\n".join(lines)
        # ... next to the ssh command that forwards the same port, itself on one line.
        forward = f"ssh -L {sign_in.session.callback_port}:127.0.0.1:"
        assert any(line.strip().startswith(forward) for line in lines)
        # The paste field has the focus: typing is text, never a shortcut (o is
        # Notifications elsewhere, c, q and s were this screen's own keys).
        paste = sign_in.query_one("#sign-in-paste", Input)
        assert paste.has_focus
        await pilot.press(*"ocqsp")
        await pilot.pause()
        assert app.screen is sign_in and not isinstance(app.screen, NotificationsScreen)
        assert paste.value == "ocqsp"
        assert sign_in.phase == Phase.WAITING
        footer = lines[-1]
        assert "f5 Copy address" in footer and "f8 QR code" in footer

        # The short address leads a browser to the provider's sign-in, then finishes it.
        async with httpx.AsyncClient(timeout=30) as browser:
            found = await browser.get(short_url, follow_redirects=False)
        assert found.headers["location"] == sign_in.session.authorize_url
        redirect = await practice.approve(found.headers["location"], [client.tenant_id])
        paste.value = redirect
        await pilot.press("enter")
        await assert_reauthorised(pilot, practice, clients_screen, client)


async def test_a_wrong_paste_says_why_and_keeps_the_sign_in_waiting(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen, sign_in, client = await open_sign_in_for_a_client_needing_reauth(
            pilot, practice
        )
        session = sign_in.session
        paste = sign_in.query_one("#sign-in-paste", Input)
        for wrong, said in (
            ("hello", "has no sign-in result in it"),
            (f"{session.redirect_uri}?code=abc&state=another", "belongs to a different sign-in"),
            ("http://127.0.0.1:1/elsewhere?code=abc&state=x", "not this sign-in's redirect"),
        ):
            paste.value = wrong
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda said=said: said in "\n".join(screen_lines(app)).replace("\n ", " "),
                f"the refusal of {wrong!r}",
            )
            shown = "\n".join(screen_lines(app))
            assert "Not that address:" in shown
            assert "Sign-in failed" not in shown and "Start again" not in shown
            assert sign_in.phase == Phase.WAITING
            assert sign_in.session is session and paste.has_focus
            async with DaemonClient(practice.socket_path) as daemon:
                status = await daemon.call(p.AUTH_STATUS, session_id=session.session_id)
            assert status.state == "pending"
        # The right address still finishes this very sign-in.
        paste.value = await practice.approve(session.authorize_url, [client.tenant_id])
        await pilot.press("enter")
        await assert_reauthorised(pilot, practice, clients_screen, client)


async def test_the_qr_key_says_plainly_that_a_phone_cannot_open_a_loopback_address(
    practice,
) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        _, sign_in, _ = await open_sign_in_for_a_client_needing_reauth(pilot, practice)
        await pilot.press("f8")
        await wait_until(
            pilot,
            lambda: "A QR code cannot help" in "\n".join(screen_lines(app)),
            "the sentence",
        )
        shown = " ".join(line.strip() for line in screen_lines(app))
        assert "which a phone cannot open" in shown
        assert "▀" not in shown and "▄" not in shown  # no code a phone could not use
        await pilot.press("escape")  # back from the sentence, still signing in
        await pilot.pause()
        assert app.screen is sign_in and sign_in.phase == Phase.WAITING
        assert sign_in.query_one("#sign-in-paste", Input).has_focus


@pytest.mark.parametrize(
    ("url", "openable"),
    [
        ("http://127.0.0.1:8749/s/x", False),
        ("http://127.8.0.1:8749/s/x", False),
        ("http://localhost:8749/s/x", False),
        ("http://[::1]:8749/s/x", False),
        ("http://192.168.1.20:8749/s/x", True),
        ("http://office.example:8749/s/x", True),
    ],
)
def test_which_addresses_a_phone_could_open(url: str, openable: bool) -> None:
    assert phone_can_open(url) is openable


def test_a_qr_code_of_the_longest_short_address_fits_in_24_rows() -> None:
    longest = "http://255.255.255.255:65535/s/" + "A" * 12
    rows = qr_text(longest).plain.splitlines()
    # Header, title, status, the note and the footer leave 19 rows.
    assert len(rows) <= 19 and max(len(row) for row in rows) <= 78
