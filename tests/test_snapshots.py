"""How the main screens look at 80x24, against a real daemon and sandbox, as SVG snapshots.

A deliberate change of look updates the snapshot in the same commit:
``.venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update``, then look at the
SVGs under ``tests/__snapshots__/``.

Nothing in a snapshot may change from run to run: the daemon's clock and the TUI's "now"
are one fixed instant (so every time, relative or not, reads the same), the time zone is
UTC, the practice is the sandbox's seeded one, and no screen shown holds a port, a temporary
path or a sign-in's random state. Text cursors do not blink.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy import SnapshotAssertion
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from clientlink.common import protocol as p
from clientlink.common.protocol import ConnectionStatus, JobKind
from clientlink.daemon.clock import Clock
from clientlink.tui import formatting
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.client_detail import ClientDetailScreen
from clientlink.tui.screens.communication_center import CommunicationCenterScreen
from clientlink.tui.screens.help import HelpScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.manage_clients import ManageClientsScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from tests.helpers import finished

pytestmark = pytest.mark.timeout(240)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SIZE = (80, 24)


class FixedClock(Clock):
    """The daemon's clock stopped at :data:`NOW` (``advance`` still moves it)."""

    def now(self) -> datetime:
        return NOW + self.offset


@pytest.fixture
def daemon_clock() -> Clock:
    return FixedClock()


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The TUI's "now" is the daemon's; times are written in UTC."""
    monkeypatch.setattr(formatting, "clock", lambda: NOW)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def svg_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """One SVG file a snapshot, compared as pytest-textual-snapshot compares them."""
    return snapshot.use_extension(SVGImageExtension)


async def wait_until(pilot: Pilot, condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def screenshot(pilot: Pilot) -> str:
    """The screen as SVG once everything scheduled has happened; cursors drawn steady."""
    app = pilot.app
    screen = app.screen
    mine = {screen, *screen.walk_children()}
    await wait_until(
        pilot,
        lambda: all(worker.is_finished for worker in app.workers if worker.node in mine),
        "the screen's workers",
    )
    for widget in app.screen.query(Input):
        widget.cursor_blink = False
    for area in app.screen.query(TextArea):
        area.cursor_blink = False
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    return app.export_screenshot(title="clientlink")


async def clients_listed(pilot: Pilot) -> ManageClientsScreen:
    app = pilot.app
    assert isinstance(app, ClientlinkApp)
    await wait_until(pilot, lambda: isinstance(app.screen, ManageClientsScreen), "the list")
    screen = app.screen
    assert isinstance(screen, ManageClientsScreen)
    await wait_until(pilot, lambda: screen.clients and screen.detail.render(), "the rows")
    return screen


async def test_manage_clients(practice, svg_snapshot: SnapshotAssertion) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=SIZE) as pilot:
        await clients_listed(pilot)
        assert await screenshot(pilot) == svg_snapshot


async def test_help(practice, svg_snapshot: SnapshotAssertion) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=SIZE) as pilot:
        await clients_listed(pilot)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert await screenshot(pilot) == svg_snapshot


async def test_sign_in_refused_on_the_consent_page(
    practice, svg_snapshot: SnapshotAssertion
) -> None:
    """While it waits the screen shows the sign-in's own address (a random code, the
    listener's port), so the snapshot is of a sign-in refused on the software's consent page
    (a wrong paste keeps it waiting): the screen without them."""
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await clients_listed(pilot)
        needing = practice.client_ids_needing_reauth[0]
        screen.table.move_cursor(row=screen.table.get_row_index(str(needing)))
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
        sign_in = app.screen
        assert isinstance(sign_in, SignInScreen)
        await wait_until(pilot, lambda: sign_in.phase == Phase.WAITING, "the session")
        assert sign_in.session is not None
        paste = sign_in.query_one("#sign-in-paste", Input)
        state = sign_in.session.authorize_url.split("state=", 1)[1].split("&", 1)[0]
        paste.value = f"{sign_in.session.redirect_uri}?error=access_denied&state={state}"
        paste.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: sign_in.phase == Phase.FAILED, "the refusal")
        assert await screenshot(pilot) == svg_snapshot


async def test_bulk_progress_of_a_finished_job(practice, svg_snapshot: SnapshotAssertion) -> None:
    rpc = await practice.connect()
    client_ids = practice.connected_ids[:3] + practice.client_ids_needing_reauth[:1]
    started = await rpc.call(p.JOBS_START, kind=JobKind.REIMPORT, client_ids=client_ids)
    await finished(rpc, started.job_id)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=SIZE) as pilot:
        await clients_listed(pilot)
        progress = JobProgressScreen(started.job_id, kind=JobKind.REIMPORT)
        app.push_screen(progress)
        await wait_until(pilot, lambda: progress.job is not None, "the job")
        assert await screenshot(pilot) == svg_snapshot


async def test_client_detail(practice, svg_snapshot: SnapshotAssertion) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await clients_listed(pilot)
        client = next(c for c in screen.clients.values() if c.status == ConnectionStatus.CONNECTED)
        detail = ClientDetailScreen(client.id)
        app.push_screen(detail)
        await wait_until(pilot, lambda: detail.client is not None, "the client")
        assert await screenshot(pilot) == svg_snapshot


async def test_communication_center(practice, svg_snapshot: SnapshotAssertion) -> None:
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=SIZE) as pilot:
        await clients_listed(pilot)
        center = CommunicationCenterScreen()
        app.push_screen(center)
        await wait_until(pilot, lambda: center.templates, "the templates")
        assert await screenshot(pilot) == svg_snapshot
