"""The sign-in screen's QR code at 80x24, for a listener a phone on the network can reach."""

from __future__ import annotations

import socket

import pytest

from clientlink.common.paths import Paths
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.sign_in import phone_can_open
from clientlink.tui.widgets.qr_view import qr_text
from tests.test_tui_app import open_sign_in_for_a_client_needing_reauth
from tests.test_tui_sign_in_address import screen_lines


def _this_computers_address() -> str:
    """This computer's address on its network (where a phone on that network reaches it)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        return probe.getsockname()[0]
    finally:
        probe.close()


@pytest.fixture
def home(home: Paths) -> Paths:
    """The listener on this computer's network address (a phone could open it)."""
    text = home.config_file.read_text(encoding="utf-8")
    host = _this_computers_address()
    assert phone_can_open(f"http://{host}/"), f"{host} is not an address a phone can open"
    if "[auth]" in text:
        text = text.replace("[auth]", f'[auth]\ncallback_host = "{host}"', 1)
    else:
        text += f'\n[auth]\ncallback_host = "{host}"\n'
    home.config_file.write_text(text, encoding="utf-8")
    return home


async def test_the_qr_code_of_a_network_address_fits_80x24(practice) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        _, sign_in, _ = await open_sign_in_for_a_client_needing_reauth(pilot, practice)
        assert phone_can_open(sign_in.session.short_url)
        await pilot.press("f8")
        await pilot.pause()
        lines = screen_lines(app)

        def blocks(rows: list[str]) -> list[str]:
            return [row.strip() for row in rows if set(row) & set("▀▄█")]

        drawn = blocks(lines)
        code = blocks(qr_text(sign_in.session.short_url).plain.splitlines())
        # Every row of the code is on the screen at once, nothing scrolled away.
        assert len(drawn) == len(code) and len(lines) == 24
        assert drawn == code
        assert "Scan it with your phone" in "\n".join(lines)
