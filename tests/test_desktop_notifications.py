"""Desktop notifications against a real private D-Bus session and notification server."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clientlink.common.desktop import (
    NO_NOTIFICATION_SERVER,
    NO_SESSION_BUS,
    OPEN_ACTION_KEY,
    OPEN_ACTION_TITLE,
    SERVER_NOT_ANSWERING,
    DesktopNotifications,
    DesktopUnavailable,
)
from tests.dbus_session import CloseCall, NotificationServer, NotifyCall, start_dbus_daemon

# Until tests/conftest.py registers the plugin for every test module.

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def desktop() -> AsyncIterator[DesktopNotifications]:
    notifications = DesktopNotifications(timeout=1.0)
    yield notifications
    await notifications.close()


async def test_send_shows_title_body_and_an_open_clientlink_action(
    desktop: DesktopNotifications, notification_server: NotificationServer
) -> None:
    await desktop.send("3 clients need re-authorising", "Xero: Smith Super Fund, ...")
    await desktop.send("Bank feed broken", "Acme Pty Ltd", urgency="critical", open_action=False)

    shown, critical = await notification_server.wait_for(2)
    assert shown.app_name == "clientlink"
    assert shown.summary == "3 clients need re-authorising"
    assert shown.body == "Xero: Smith Super Fund, ..."
    assert shown.action_titles[OPEN_ACTION_KEY] == OPEN_ACTION_TITLE == "Open clientlink"
    assert "default" in shown.action_titles  # clicking the notification itself opens too
    assert shown.hints["urgency"] == 1
    assert critical.hints["urgency"] == 2
    assert OPEN_ACTION_KEY not in critical.action_titles


HOSTILE_NAME = (
    "Evil \x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x07\x9b2J\u202e <b>bold</b> "
    "<a href='https://evil.example/'>pay here</a> & Co"
)


async def test_outside_text_is_made_visible_and_the_body_is_never_read_as_markup(
    desktop: DesktopNotifications, notification_server: NotificationServer
) -> None:
    notification_server.capabilities.append("body-markup")
    await desktop.send(f"Re-authorise {HOSTILE_NAME}", f"{HOSTILE_NAME}\nand 2 more")
    [shown] = await notification_server.wait_for(1)
    visible_name = (
        "Evil ␛]52;c;ZXZpbA==␇␛]0;owned␇\ufffd2J\ufffd <b>bold</b> "
        "<a href='https://evil.example/'>pay here</a> & Co"
    )
    # The summary is plain text in the specification: made visible, nothing else.
    assert shown.summary == f"Re-authorise {visible_name}"
    assert shown.body == (
        "Evil ␛]52;c;ZXZpbA==␇␛]0;owned␇\ufffd2J\ufffd &lt;b&gt;bold&lt;/b&gt; "
        "&lt;a href='https://evil.example/'&gt;pay here&lt;/a&gt; &amp; Co␊and 2 more"
    )
    for text in (shown.summary, shown.body):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
        assert "\u202e" not in text


async def test_a_server_that_reads_no_markup_gets_the_body_unescaped(
    desktop: DesktopNotifications, notification_server: NotificationServer
) -> None:
    assert "body-markup" not in notification_server.capabilities
    await desktop.send("Smith & Jones <Trust>", "Smith & Jones <Trust>\x1b[2J")
    [shown] = await notification_server.wait_for(1)
    assert shown.summary == "Smith & Jones <Trust>"
    assert shown.body == "Smith & Jones <Trust>␛[2J"


async def test_withdraw_closes_the_shown_notification(
    desktop: DesktopNotifications, notification_server: NotificationServer
) -> None:
    identifier = await desktop.send("Connection lost", "Xero: Smith Super Fund")
    [shown] = await notification_server.wait_for(1)

    await desktop.withdraw(identifier)

    assert notification_server.closes == [CloseCall(id=shown.id, was_open=True)]
    assert notification_server.showing == set()


async def test_replace_shows_the_new_text_in_place_of_the_old(
    desktop: DesktopNotifications, notification_server: NotificationServer
) -> None:
    identifier = await desktop.send("19 clients need re-authorisation", "Acme, ...")
    [old] = await notification_server.wait_for(1)

    newer = await desktop.replace(identifier, "18 clients need re-authorisation", "Bay, ...")

    _, close, new = await notification_server.wait_for(3)
    assert close == CloseCall(id=old.id, was_open=True)
    assert isinstance(new, NotifyCall) and new.summary == "18 clients need re-authorisation"
    assert notification_server.showing == {new.id}
    await desktop.withdraw(newer)  # the new identifier is the one that closes it
    assert notification_server.showing == set()


async def test_pressing_open_clientlink_runs_the_open_command_then_withdraw_is_quiet(
    notification_server: NotificationServer, tmp_path: Path
) -> None:
    marker = tmp_path / "opened"
    script = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('opened')"
    desktop = DesktopNotifications(timeout=1.0, open_command=[sys.executable, "-c", script])
    try:
        identifier = await desktop.send("Connection lost", "Xero: Smith Super Fund")
        [shown] = await notification_server.wait_for(1)

        notification_server.invoke_action(shown.id, OPEN_ACTION_KEY)
        async with asyncio.timeout(5):
            # Another process writes it: there is nothing to await but the file itself.
            while not marker.exists():  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        # The person acted on it, so it is gone: withdrawing is a no-op, not an error.
        await desktop.withdraw(identifier)
        assert notification_server.closes == []
    finally:
        await desktop.close()
    assert marker.read_text() == "opened"


async def test_without_a_session_bus_probe_says_so_and_send_raises(
    desktop: DesktopNotifications, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)  # dbus-fast would look for an X11 bus

    assert await desktop.probe() == NO_SESSION_BUS
    with pytest.raises(DesktopUnavailable, match=f"^{NO_SESSION_BUS}$"):
        await desktop.send("Connection lost", "Xero: Smith Super Fund")


async def test_a_bus_without_a_notification_server_is_reported_and_send_raises(
    desktop: DesktopNotifications, dbus_session: str
) -> None:
    assert await desktop.probe() == NO_NOTIFICATION_SERVER
    with pytest.raises(DesktopUnavailable, match=f"^{NO_NOTIFICATION_SERVER}$"):
        await desktop.send("Connection lost", "Xero: Smith Super Fund")


async def test_server_disappearing_between_sends_raises_instead_of_hanging(
    desktop: DesktopNotifications, notification_server: NotificationServer
) -> None:
    identifier = await desktop.send("Connection lost", "Xero: Smith Super Fund")
    await notification_server.stop()

    with pytest.raises(DesktopUnavailable, match=f"^{NO_NOTIFICATION_SERVER}$"):
        await desktop.send("Connection lost", "Xero: Jones Family Trust")
    with pytest.raises(DesktopUnavailable, match=f"^{NO_NOTIFICATION_SERVER}$"):
        await desktop.withdraw(identifier)


async def test_a_server_that_never_answers_fails_the_send_within_the_timeout(
    notification_server: NotificationServer,
) -> None:
    desktop = DesktopNotifications(timeout=0.5)
    try:
        await desktop.send("Connection lost", "Xero: Smith Super Fund")
        notification_server.stop_answering()

        with pytest.raises(DesktopUnavailable, match=f"^{SERVER_NOT_ANSWERING}$"):
            await desktop.send("Connection lost", "Xero: Jones Family Trust")

        notification_server.resume_answering()
        await desktop.send("Connection lost", "Xero: Brown Holdings")
        assert [call.body for call in notification_server.notifications][-1] == (
            "Xero: Brown Holdings"
        )
    finally:
        await desktop.close()


async def test_a_restarted_session_bus_is_used_once_it_is_back(
    desktop: DesktopNotifications, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cl-dbus-"))
    first_bus, first_address = start_dbus_daemon(folder / "first")
    second_bus = None
    try:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", first_address)
        first_server = NotificationServer(first_address)
        await first_server.start()
        await desktop.send("Connection lost", "Xero: Smith Super Fund")

        first_bus.kill()
        first_bus.communicate()
        await first_server.stop()  # returns once its connection has noticed the loss
        with pytest.raises(DesktopUnavailable, match=f"^{NO_SESSION_BUS}$"):
            await desktop.send("Connection lost", "Xero: Jones Family Trust")

        second_bus, second_address = start_dbus_daemon(folder / "second")
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", second_address)
        second_server = NotificationServer(second_address)
        await second_server.start()
        await desktop.send("Connection lost", "Xero: Brown Holdings")
        [shown] = await second_server.wait_for(1)
        assert shown.body == "Xero: Brown Holdings"
        await second_server.stop()
    finally:
        for bus in (first_bus, second_bus):
            if bus is not None:
                bus.kill()
                bus.communicate()
        shutil.rmtree(folder, ignore_errors=True)
