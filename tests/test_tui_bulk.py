"""Bulk actions in the TUI: re-authorise many clients after one sign-in, jobs, export,
deactivate and reactivate.

Real daemon, real sandbox over HTTP, real socket; the app is driven with Pilot at 80x24.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pwd
import secrets
import shutil
from pathlib import Path
from typing import Any

from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, Static

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.protocol import CLIENT_EXPORT_COLUMNS
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_actions import BulkActionsScreen
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.export_clients import ExportClientsScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.jobs import JobsScreen
from clientlink.tui.screens.manage_clients import INACTIVE, ManageClientsScreen
from clientlink.tui.screens.reimport_review import ReimportReviewScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.helpers import sandbox_post, wait_until


def toasts(app: ClientlinkApp) -> list[str]:
    # run_test does not draw toasts, but the app still records every notification.
    return [notification.message for notification in app._notifications]


async def clients_screen_with_list(app: ClientlinkApp) -> ManageClientsScreen:
    screen = app.screen
    assert isinstance(screen, ManageClientsScreen)
    await wait_until(lambda: screen.clients, what="the client list")
    return screen


async def screen_of(app: ClientlinkApp, kind: type) -> Any:
    await wait_until(lambda: isinstance(app.screen, kind), what=f"the {kind.__name__}")
    return app.screen


async def xero_clients_needing_reauth(daemon: DaemonClient) -> list[p.Client]:
    listed = await daemon.call(
        p.CLIENTS_LIST, filter={"status": "needs_reauth", "provider": "xero"}, limit=1000
    )
    return listed.items


async def open_bulk_menu(pilot: Pilot) -> BulkActionsScreen:
    await pilot.press("b")
    return await screen_of(pilot.app, BulkActionsScreen)


async def finished_job(pilot: Pilot) -> JobProgressScreen:
    progress = await screen_of(pilot.app, JobProgressScreen)
    await wait_until(
        lambda: progress.job is not None and progress.job.state.finished, what="the job to end"
    )
    return progress


async def sign_in_to_xero_in_bulk(pilot: Pilot) -> SignInScreen:
    """Manage Clients → b → Re-authorise Bulk Clients → Xero → the sign-in's address."""
    await open_bulk_menu(pilot)
    await pilot.press("enter")  # the first entry: Re-authorise Bulk Clients
    chooser = await screen_of(pilot.app, ChooseSoftwareScreen)
    options = chooser.query_one(OptionList)
    await wait_until(lambda: options.option_count > 0, what="the software list")
    options.highlighted = options.get_option_index("xero")
    await pilot.press("enter")
    sign_in = await screen_of(pilot.app, SignInScreen)
    await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
    assert sign_in.client is None and sign_in.provider == "xero"
    return sign_in


async def test_bulk_reauthorise_reconnects_the_ticked_clients_after_one_sign_in(
    practice,
) -> None:
    daemon = await practice.connect()
    needing = await xero_clients_needing_reauth(daemon)
    assert len(needing) >= 2
    needing_ids = {client.id for client in needing}
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen = await clients_screen_with_list(app)
        sign_in = await sign_in_to_xero_in_bulk(pilot)
        assert sign_in.session is not None
        redirect_url = await practice.approve(
            sign_in.session.authorize_url, [client.tenant_id for client in needing]
        )
        app.screen.focused.post_message(events.Paste(redirect_url))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(lambda: paste.has_focus, what="the paste field")
        await pilot.press("enter")

        bulk = await screen_of(app, BulkReauthScreen)
        checklist = bulk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == len(needing), what="the checklist")
        # Every business the sign-in covers is a client needing re-auth: all pre-ticked.
        assert set(checklist.selected) == needing_ids
        assert "Not clients yet" not in str(bulk.query_one("#bulk-not-clients").render())
        await pilot.press("enter")  # Re-authorise Selected Clients

        progress = await finished_job(pilot)
        summary = str(progress.query_one("#job-summary").render())
        assert f"{len(needing)} re-authorised, 0 failed" in summary
        await pilot.press("m")
        await wait_until(lambda: app.screen is clients_screen, what="back on Manage Clients")

    listed = await daemon.call(p.CLIENTS_LIST, filter={"provider": "xero"}, limit=1000)
    statuses = {item.id: item.status for item in listed.items}
    assert {statuses[client_id] for client_id in needing_ids} == {"connected"}


async def test_a_running_job_can_be_left_and_reattached_from_the_jobs_screen(practice) -> None:
    # Each provider call takes a while, so the job is still running when the screen is left.
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.2})
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen = await clients_screen_with_list(app)
        for _ in range(3):
            await pilot.press("space")
        assert len(clients_screen.marked) == 3
        assert "3 marked" in str(clients_screen.query_one("#clients-summary").render())
        await open_bulk_menu(pilot)
        await pilot.press("2")  # Re-import client details
        progress = await screen_of(app, JobProgressScreen)
        job_id = progress.job_id
        await pilot.press("escape")  # leave it running
        await wait_until(lambda: app.screen is clients_screen, what="back on Manage Clients")

        await pilot.press("j")
        jobs = await screen_of(app, JobsScreen)
        await wait_until(lambda: job_id in jobs.jobs, what="the job listed")
        assert jobs.highlighted_job_id() == job_id  # newest first
        await pilot.press("enter")
        reattached = await finished_job(pilot)
        assert reattached is not progress and reattached.job_id == job_id
        assert reattached.job.done + reattached.job.failed == 3

        await pilot.press("escape")
        await screen_of(app, JobsScreen)
        await pilot.press("l")  # the audit log
        audit = jobs.query_one("#audit-table", DataTable)
        await wait_until(lambda: audit.row_count > 0, what="the audit log")


async def test_export_writes_the_chosen_columns_of_the_clients_shown(
    practice, tmp_path: Path
) -> None:
    target = tmp_path / "clients.csv"
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        clients_screen = await clients_screen_with_list(app)
        await open_bulk_menu(pilot)
        await pilot.press("3")  # Export clients to CSV
        export = await screen_of(app, ExportClientsScreen)
        columns = export.query_one(Checklist)
        await pilot.press("n")  # no columns
        for column in ("name", "status", "email"):
            columns.highlighted = CLIENT_EXPORT_COLUMNS.index(column)
            await pilot.press("space")
        export.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await wait_until(lambda: app.screen is clients_screen, what="the dialog to close")
        assert any(str(target) in toast for toast in toasts(app))

        with target.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["Name", "Status", "Email"]
        assert len(rows) - 1 == clients_screen.total
        assert {row[0] for row in rows[1:]} == {c.name for c in clients_screen.clients.values()}

        # The file exists now: the dialog says so and stays open until Overwrite is ticked.
        await open_bulk_menu(pilot)
        await pilot.press("3")
        export = await screen_of(app, ExportClientsScreen)
        export.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await wait_until(lambda: export.has_class("-error"), what="the error in the dialog")
        assert app.screen is export
        assert "Overwrite" in str(export.query_one("#export-error").render())


async def test_export_into_a_missing_folder_in_the_home_says_it_created_it(practice) -> None:
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    folder = home / f"clientlink-test-{secrets.token_hex(4)}"
    target = folder / "exports" / "clients.csv"
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            clients_screen = await clients_screen_with_list(app)
            await open_bulk_menu(pilot)
            await pilot.press("3")  # Export clients to CSV
            export = await screen_of(app, ExportClientsScreen)
            export.query_one("#export-path", Input).value = str(target)
            await pilot.press("enter")
            await wait_until(lambda: app.screen is clients_screen, what="the dialog to close")
            said = [toast for toast in toasts(app) if str(target) in toast]
            assert said and f"Created the folder {folder / 'exports'}" in said[-1], said
            with target.open(newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle))
            assert "Software" in header and "provider" not in header
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_deactivate_moves_a_client_under_inactive_and_reactivate_brings_it_back(
    practice,
) -> None:
    daemon = await practice.connect()
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        client_id = screen.focused_client_id()
        assert client_id is not None
        await open_bulk_menu(pilot)
        await pilot.press("4")  # Deactivate selected clients (the highlighted one)
        await screen_of(app, ConfirmScreen)
        await pilot.press("y")
        await wait_until(lambda: client_id not in screen.clients, what="the client to go")
        held = await daemon.call(p.CLIENTS_GET, client_id=client_id)
        assert held.active is False

        screen.query_one("#clients-filter-status", Select).value = INACTIVE
        await wait_until(lambda: set(screen.clients) == {client_id}, what="the Inactive view")
        await open_bulk_menu(pilot)
        await pilot.press("4")  # now: Reactivate selected clients
        await screen_of(app, ConfirmScreen)
        await pilot.press("y")
        await wait_until(lambda: not screen.clients, what="the Inactive view to empty")
        held = await daemon.call(p.CLIENTS_GET, client_id=client_id)
        assert held.active is True


async def test_reimport_shows_the_differences_and_applies_only_the_ticked_ones(practice) -> None:
    daemon = await practice.connect()
    listed = await daemon.call(
        p.CLIENTS_LIST, filter={"status": "connected", "provider": "xero"}, limit=2
    )
    renamed, kept = listed.items
    # The businesses changed their legal names in Xero since they were imported.
    xero = practice.sandbox.state.xero
    for client in (renamed, kept):
        org = xero.orgs[client.tenant_id]
        xero.orgs[org.tenant_id] = dataclasses.replace(org, legal_name=f"{org.legal_name} (New)")
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        for client in (renamed, kept):
            table = screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index(str(client.id)))
            await pilot.press("space")
        await open_bulk_menu(pilot)
        await pilot.press("2")  # Re-import client details
        # The review opens by itself at the end, every difference ticked.
        review = await screen_of(app, ReimportReviewScreen)
        checklist = review.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == 2, what="the differences")
        assert set(checklist.selected) == {renamed.id, kept.id}
        checklist.highlighted = [item.client_id for item in review.items].index(kept.id)
        await pilot.press("space")  # keep this one as it is
        await pilot.press("enter")  # Apply selected changes
        await screen_of(app, JobProgressScreen)

    after = {
        client.id: (await daemon.call(p.CLIENTS_GET, client_id=client.id)).legal_name
        for client in (renamed, kept)
    }
    assert after[renamed.id] == f"{renamed.legal_name} (New)"
    assert after[kept.id] == kept.legal_name


async def test_the_list_loads_page_by_page_and_mark_all_marks_every_match(
    practice, monkeypatch
) -> None:
    """A long list paints its first page at once and fetches more as the cursor nears the end;
    marking all marks every client matching the filter, loaded or not."""
    import clientlink.tui.widgets.client_table as manage

    monkeypatch.setattr(manage, "PAGE_SIZE", 8)
    monkeypatch.setattr(manage, "LOAD_AHEAD", 3)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await clients_screen_with_list(app)
        table = screen.query_one(DataTable)
        total = len(practice.seeded.client_ids)
        summary = screen.query_one("#clients-summary", Static)
        await pilot.pause()
        first = table.row_count
        assert first < total  # a screenful and a little more, not everything
        assert f"{total} clients" in str(summary.render())
        for _ in range(first):
            await pilot.press("down")
        await wait_until(lambda: table.row_count > first, what="the next page")
        await pilot.press("asterisk")
        await wait_until(lambda: len(screen.marked) == total, what="every client marked")
        assert table.row_count < total  # marked without loading them all


async def test_a_bulk_sign_in_that_would_pass_the_xero_tier_cap_says_so_first(
    practice,
) -> None:
    """Xero's Starter tier allows 5 connections: the bulk sign-in warns before it starts."""
    practice.daemon.config.providers["xero"].tier = "starter"
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        sign_in = await sign_in_to_xero_in_bulk(pilot)
        warning = sign_in.query_one("#sign-in-warning", Static)
        await wait_until(lambda: warning.display, what="the tier warning")
        text = str(warning.render())
        assert "Before you sign in: the starter tier allows 5 connections" in text
        assert "Xero will refuse some of them" in text
