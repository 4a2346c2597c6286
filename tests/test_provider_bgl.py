"""BGL Simple Fund 360 end to end: the sandbox over HTTP, the daemon over its socket.

One SF360 sign-in covers every fund and entity of the firm; the token calls carry their
parameters in the query string (the sandbox refuses them in the body, so these flows prove
the daemon sends them right); a removed integration and an expired authorisation read
differently; re-import shows what the firm changed; the watcher keeps the grant alive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from textual import events
from textual.widgets import Input, OptionList

from clientlink.common import protocol as p
from clientlink.sandbox.accounts import BGL_CLIENT_SECRET
from clientlink.sandbox.server import SandboxServer
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_actions import BulkActionsScreen
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.conftest import TEST_ORGS
from tests.helpers import advance_time, finished, sandbox_get, sandbox_post, wait_until

ENTITIES = 12
WEEK = 7 * 24 * 3600


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The sandbox with a small SMSF firm in its BGL."""
    async with SandboxServer(org_count=TEST_ORGS, smsf_entity_count=ENTITIES) as server:
        yield server


async def _sign_in(daemon, rpc, client_id: int | None = None):
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="bgl", client_secret=BGL_CLIENT_SECRET)
    if client_id is None:
        session = await rpc.call(p.AUTH_BEGIN, provider="bgl")
    else:
        session = await rpc.call(p.AUTH_BEGIN, provider="bgl", client_id=client_id)
    assert "/bgl/oauth/authorize?" in session.authorize_url
    # No business selection: the person signs in, enters the code and allows the firm.
    redirect = await daemon.approve(session.authorize_url, [])
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def _imported(daemon, rpc) -> tuple[p.AuthCompleteResult, list[p.Client]]:
    result = await _sign_in(daemon, rpc)
    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=result.grant_id)
    clients = [await rpc.call(p.CLIENTS_GET, client_id=cid) for cid in imported.created]
    return result, clients


async def _bgl_grant(daemon) -> dict:
    grants = await sandbox_get(daemon.sandbox.base_url, "/_sandbox/grants")
    (grant,) = [g for g in grants if g["provider"] == "bgl"]
    return grant


async def test_one_sign_in_imports_every_entity_of_the_firm_with_its_details(daemon, rpc):
    result, clients = await _imported(daemon, rpc)
    funds = await sandbox_get(daemon.sandbox.base_url, "/_sandbox/bgl/funds")
    assert len(result.tenants) == len(funds) == ENTITIES
    assert {t.tenant_id for t in result.tenants} == {f["fund_id"] for f in funds}
    assert {t.business for t in result.tenants} == {funds[0]["firm"]}
    by_fund = {f["fund_id"]: f for f in funds}
    assert len(clients) == ENTITIES
    for client in clients:
        fund = by_fund[client.tenant_id]
        assert client.provider == "bgl" and client.status == "connected"
        assert (client.name, client.abn) == (fund["fund_name"], fund["abn"])
        assert client.entity_type == fund["entity_type"]
        assert client.email == fund["email"]
        assert client.business == fund["firm"]
    assert "SMSF" in {client.entity_type for client in clients}


async def test_removed_integration_then_bulk_and_single_reauthorisation(daemon, rpc):
    _, clients = await _imported(daemon, rpc)
    # The account holder removes clientlink in SF360's Integrations page.
    grant = await _bgl_grant(daemon)
    await sandbox_post(daemon.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await advance_time(daemon, WEEK)  # the access token ends: the watcher's refresh is refused
    for client in clients:
        after = await rpc.call(p.CLIENTS_GET, client_id=client.id)
        assert after.status == "needs_reauth"
        assert "SF360 integration was removed" in (after.status_reason or "")
        assert "Integrations page" in after.status_reason

    ids = [client.id for client in clients]
    bulk = await _sign_in(daemon, rpc)
    assert sorted(t.client_id for t in bulk.tenants) == sorted(ids)  # matched on fundID
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=bulk.grant_id, client_ids=ids[1:]
    )
    job = await finished(rpc, started.job_id)
    assert (job.state, job.done, job.failed) == ("completed", len(ids) - 1, 0)
    for client_id in ids[1:]:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert (client.status, client.grant_id) == ("connected", bulk.grant_id)

    single = await _sign_in(daemon, rpc, client_id=ids[0])
    client = await rpc.call(p.CLIENTS_GET, client_id=ids[0])
    assert (client.status, client.grant_id) == ("connected", single.grant_id)


async def test_an_expired_authorisation_says_so_not_revoked(daemon, rpc):
    _, clients = await _imported(daemon, rpc)
    grant = await _bgl_grant(daemon)
    await sandbox_post(
        daemon.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/expire-refresh"
    )
    await advance_time(daemon, WEEK)
    after = await rpc.call(p.CLIENTS_GET, client_id=clients[0].id)
    assert after.status == "needs_reauth"
    assert "expired after 30 days without use" in (after.status_reason or "")
    assert "revoked" not in after.status_reason


async def test_watcher_keeps_the_grant_alive_past_the_refresh_tokens_lifetime(daemon, rpc):
    _, clients = await _imported(daemon, rpc)
    for _ in range(6):  # six weeks: longer than a 30-day refresh token lives unused
        await advance_time(daemon, WEEK - 3600)
    grant = await _bgl_grant(daemon)
    tokens = await sandbox_get(daemon.sandbox.base_url, "/_sandbox/tokens")
    refresh = [t for t in tokens if t["grant_id"] == grant["grant_id"] and t["kind"] == "refresh"]
    # The first refresh token's 30 days are long over, each refresh rotated it, one lives.
    assert refresh[0]["state"] == "expired" and len(refresh) > 2
    assert [t["state"] for t in refresh].count("active") == 1
    client = await rpc.call(p.CLIENTS_GET, client_id=clients[0].id)
    assert client.status == "connected"
    checked = await rpc.call(p.CLIENTS_CHECK, client_ids=[client.id])
    assert checked.by_status == {"connected": 1}


async def test_reimport_shows_what_the_firm_changed_in_sf360(daemon, rpc):
    _, clients = await _imported(daemon, rpc)
    target = clients[0]
    new_type = "BillableCompany" if target.entity_type != "BillableCompany" else "BillableTrust"
    await sandbox_post(
        daemon.sandbox.base_url,
        f"/_sandbox/bgl/funds/{target.tenant_id}",
        {"fund_name": "Renamed Family Super Fund", "email": None, "entity_type": new_type},
    )
    started = await rpc.call(
        p.JOBS_START, kind="reimport", client_ids=[client.id for client in clients]
    )
    job = await finished(rpc, started.job_id)
    changed = [item for item in job.items if item.changes]
    assert [item.client_id for item in changed] == [target.id]
    changes = changed[0].changes
    assert changes["name"] == [target.name, "Renamed Family Super Fund"]
    assert changes["entity_type"] == [target.entity_type, new_type]
    await rpc.call(p.CLIENTS_APPLY_REIMPORT, job_id=started.job_id)
    after = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert (after.name, after.entity_type) == ("Renamed Family Super Fund", new_type)


async def test_revoking_an_unused_sign_in_says_to_use_sf360s_integrations_page(daemon, rpc):
    result = await _sign_in(daemon, rpc)
    revoked = await rpc.call(p.GRANTS_REVOKE, grant_id=result.grant_id)
    assert revoked.state == "revoked"
    assert "Integrations page" in revoked.message


async def test_tui_bulk_reauthorises_the_whole_firm_after_one_sf360_sign_in(daemon, rpc):
    _, clients = await _imported(daemon, rpc)
    grant = await _bgl_grant(daemon)
    await sandbox_post(daemon.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await advance_time(daemon, WEEK)
    app = ClientlinkApp(daemon.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:

        async def screen_of(kind):
            await wait_until(lambda: isinstance(app.screen, kind), what=kind.__name__)
            return app.screen

        await wait_until(lambda: getattr(app.screen, "clients", None), what="the client list")
        await pilot.press("b")
        await screen_of(BulkActionsScreen)
        await pilot.press("enter")
        chooser = await screen_of(ChooseSoftwareScreen)
        options = chooser.query_one(OptionList)
        await wait_until(lambda: options.option_count > 0, what="the software list")
        options.highlighted = options.get_option_index("bgl")
        prompt = str(options.get_option("bgl").prompt)
        assert f"{ENTITIES} clients to re-authorise" in prompt
        await pilot.press("enter")
        sign_in = await screen_of(SignInScreen)
        await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
        assert sign_in.session is not None
        redirect = await daemon.approve(sign_in.session.authorize_url, [])
        app.screen.focused.post_message(events.Paste(redirect))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(lambda: paste.has_focus, what="the paste field")
        await pilot.press("enter")

        bulk = await screen_of(BulkReauthScreen)
        checklist = bulk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == ENTITIES, what="the checklist")
        assert set(checklist.selected) == {client.id for client in clients}
        await pilot.press("enter")
        progress = await screen_of(JobProgressScreen)
        await wait_until(
            lambda: progress.job is not None and progress.job.state.finished, what="the job"
        )
        summary = str(progress.query_one("#job-summary").render())
        assert f"{ENTITIES} re-authorised, 0 failed" in summary
    listed = await rpc.call(p.CLIENTS_LIST, filter={"provider": "bgl"}, limit=100)
    assert {item.status for item in listed.items} == {"connected"}
