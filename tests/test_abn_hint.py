"""BGL's "ABN as a hint": a fund whose fundID changed is still its client, found by its ABN.

SF360 can re-create a fund under a new fundID, and a client imported from a spreadsheet may
carry another id or none. A sign-in's fund that no client has by id is offered as the one
client of the same software (and firm) with its ABN, and re-authorising it rebinds the
client to the new fundID in the same transaction: no duplicate. Where the ABN names two
clients, or a client the sign-in reaches under its own fundID, nothing is guessed and the
answer says why. The sandbox's admin API changes a fund's id (``/_sandbox/bgl/funds/ID``).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator

import pytest
from textual import events
from textual.widgets import Input, OptionList

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.sandbox.accounts import BGL_CLIENT_SECRET
from clientlink.sandbox.server import SandboxServer
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_actions import BulkActionsScreen
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.conftest import TEST_ORGS
from tests.helpers import advance_time, finished, sandbox_get, sandbox_post, wait_until
from tests.test_client_import import screen_text

ENTITIES = 12


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The sandbox with a small SMSF firm in its BGL."""
    async with SandboxServer(org_count=TEST_ORGS, smsf_entity_count=ENTITIES) as server:
        yield server


async def _sign_in(daemon, rpc, client_id: int | None = None) -> p.AuthCompleteResult:
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="bgl", client_secret=BGL_CLIENT_SECRET)
    if client_id is None:
        session = await rpc.call(p.AUTH_BEGIN, provider="bgl")
    else:
        session = await rpc.call(p.AUTH_BEGIN, provider="bgl", client_id=client_id)
    redirect = await daemon.approve(session.authorize_url, [])
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def _imported(daemon, rpc) -> list[p.Client]:
    """Every fund of the firm a client, each with an ABN (funds without one left out)."""
    result = await _sign_in(daemon, rpc)
    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=result.grant_id)
    clients = [await rpc.call(p.CLIENTS_GET, client_id=cid) for cid in imported.created]
    return [client for client in clients if client.abn]


async def _change_fund(daemon, current_id: str, **changes: str) -> None:
    await sandbox_post(daemon.sandbox.base_url, f"/_sandbox/bgl/funds/{current_id}", changes)


async def _client_count(rpc) -> int:
    return (await rpc.call(p.CLIENTS_LIST, filter={"provider": "bgl"}, limit=1)).total


async def test_bulk_reauthorisation_rebinds_a_fund_whose_id_changed_by_its_abn(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target = clients[0]
    old_id = target.tenant_id
    await _change_fund(daemon, old_id, fund_id="RECREATED0001")  # SF360 re-created the fund

    bulk = await _sign_in(daemon, rpc)
    tenant = next(t for t in bulk.tenants if t.tenant_id == "RECREATED0001")
    assert tenant.abn == target.abn
    assert tenant.client_id == target.id
    assert tenant.match == f"matched by ABN: fund id changed from {old_id} to RECREATED0001"
    others = [t for t in bulk.tenants if t.tenant_id != "RECREATED0001"]
    assert all(t.client_id is not None and t.match is None for t in others)  # by fundID

    ids = sorted(client.id for client in clients)
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=bulk.grant_id, client_ids=ids
    )
    job = await finished(rpc, started.job_id)
    assert (job.state, job.done, job.failed) == ("completed", len(ids), 0)
    after = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert (after.tenant_id, after.grant_id, after.status) == (
        "RECREATED0001",
        bulk.grant_id,
        "connected",
    )
    assert await _client_count(rpc) == ENTITIES  # rebound, not duplicated
    history = await rpc.call(p.CLIENTS_HISTORY, client_id=target.id)
    assert any(
        entry.kind == "reauthorised" and entry.reason == tenant.match for entry in history.items
    )
    audit = (await rpc.call(p.AUDIT_LIST, client_id=target.id)).items
    rebound = [e for e in audit if e.action == "client.reauthorised"]
    assert rebound[0].detail["tenant_id"] == [old_id, "RECREATED0001"]
    # The new fundID is the one used from now on.
    checked = await rpc.call(p.CLIENTS_CHECK, client_ids=[target.id])
    assert checked.by_status == {"connected": 1}
    again = await _sign_in(daemon, rpc)
    tenant = next(t for t in again.tenants if t.tenant_id == "RECREATED0001")
    assert (tenant.client_id, tenant.match) == (target.id, None)


async def test_single_reauthorisation_rebinds_the_client_by_its_abn(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target = clients[1]
    await _change_fund(daemon, target.tenant_id, fund_id="RECREATED0002")
    single = await _sign_in(daemon, rpc, client_id=target.id)
    after = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert (after.tenant_id, after.grant_id, after.status) == (
        "RECREATED0002",
        single.grant_id,
        "connected",
    )
    listed = next(t for t in single.tenants if t.tenant_id == "RECREATED0002")
    assert listed.client_id == target.id
    assert await _client_count(rpc) == ENTITIES


async def test_importing_the_sign_ins_funds_moves_the_client_to_the_new_id(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target = clients[9]
    old_id = target.tenant_id
    await _change_fund(daemon, old_id, fund_id="RECREATED0008")
    bulk = await _sign_in(daemon, rpc)
    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=bulk.grant_id)
    assert imported.created == [] and target.id in imported.updated
    after = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert (after.tenant_id, after.grant_id, after.status) == (
        "RECREATED0008",
        bulk.grant_id,
        "connected",
    )
    assert await _client_count(rpc) == ENTITIES
    audit = (await rpc.call(p.AUDIT_LIST, limit=5)).items
    (entry,) = [e for e in audit if e.action == "clients.import" and e.detail.get("rebound")]
    assert entry.detail["rebound"] == {str(target.id): [old_id, "RECREATED0008"]}


async def test_a_spreadsheet_client_with_another_fund_id_is_found_by_its_abn(
    daemon, rpc, short_tmp
):
    funds = await sandbox_get(daemon.sandbox.base_url, "/_sandbox/bgl/funds")
    fund = next(f for f in funds if f["abn"])
    path = short_tmp / "clients.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Client name", "ABN", "Software", "Software ID", "Email", "Mobile"])
        writer.writerow(["From the spreadsheet", fund["abn"], "bgl", "OLDSYSTEM42", "", ""])
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    assert preview.counts == {"add": 1, "match": 0, "refuse": 0}, preview.rows
    await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path), confirm=True, digest=preview.digest)
    (imported,) = (await rpc.call(p.CLIENTS_LIST, filter={"provider": "bgl"})).items
    assert imported.tenant_id == "OLDSYSTEM42" and imported.status == "not_connected"

    bulk = await _sign_in(daemon, rpc)
    tenant = next(t for t in bulk.tenants if t.tenant_id == fund["fund_id"])
    assert tenant.client_id == imported.id
    assert tenant.match == f"matched by ABN: fund id changed from OLDSYSTEM42 to {fund['fund_id']}"
    assert sum(t.client_id is not None for t in bulk.tenants) == 1  # the rest: not clients yet
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=bulk.grant_id, client_ids=[imported.id]
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.failed) == (1, 0)
    after = await rpc.call(p.CLIENTS_GET, client_id=imported.id)
    assert (after.tenant_id, after.status) == (fund["fund_id"], "connected")
    assert after.name == "From the spreadsheet"  # names change only through re-import review


async def _give_abn(daemon, rpc, client: p.Client, abn: str) -> None:
    """The firm changes a fund's ABN in SF360 and the practice applies the re-import."""
    await _change_fund(daemon, client.tenant_id, abn=abn)
    started = await rpc.call(p.JOBS_START, kind="reimport", client_ids=[client.id])
    await finished(rpc, started.job_id)
    await rpc.call(p.CLIENTS_APPLY_REIMPORT, job_id=started.job_id)
    assert (await rpc.call(p.CLIENTS_GET, client_id=client.id)).abn == abn


async def test_two_clients_with_the_abn_are_not_guessed_between(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target, twin = clients[2], clients[3]
    await _give_abn(daemon, rpc, twin, target.abn)  # two clients now share target's ABN
    old_id = target.tenant_id
    await _change_fund(daemon, old_id, fund_id="RECREATED0003")

    bulk = await _sign_in(daemon, rpc)
    tenant = next(t for t in bulk.tenants if t.tenant_id == "RECREATED0003")
    assert tenant.client_id is None
    assert tenant.match.startswith(f"not matched by ABN: 2 clients have ABN {target.abn}")
    assert target.name in tenant.match and twin.name in tenant.match
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=bulk.grant_id, client_ids=[target.id]
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.failed) == (0, 1)
    assert "2 clients have ABN" in job.items[0].error
    after = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert after.tenant_id == old_id and after.grant_id != bulk.grant_id

    # A minute on: the client's own grant is older than this sign-in (within one second,
    # the daemon would take it for another sign-in that finished first).
    await advance_time(daemon, 60)
    with pytest.raises(RpcError) as refused:
        await _sign_in(daemon, rpc, client_id=target.id)
    assert refused.value.code == ErrorCode.AUTH_CLIENT_NOT_SELECTED
    assert "2 clients have ABN" in refused.value.message
    assert await _client_count(rpc) == ENTITIES


async def test_an_abn_of_a_client_bound_to_another_fund_of_the_sign_in_is_not_taken(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target, other = clients[4], clients[5]
    # Target's fund is re-created with other's ABN: the ABN names other, whose own fund the
    # sign-in also reaches, so the new fund is not other's.
    await _change_fund(daemon, target.tenant_id, fund_id="RECREATED0004", abn=other.abn)
    bulk = await _sign_in(daemon, rpc)
    tenant = next(t for t in bulk.tenants if t.tenant_id == "RECREATED0004")
    assert tenant.client_id is None
    assert tenant.match == (
        f"not matched by ABN: {other.name} has ABN {other.abn} but is bound to fund id "
        f"{other.tenant_id} of this sign-in"
    )
    mine = next(t for t in bulk.tenants if t.tenant_id == other.tenant_id)
    assert (mine.client_id, mine.match) == (other.id, None)


async def test_two_funds_of_the_sign_in_with_one_abn_are_not_guessed_between(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target, other = clients[6], clients[7]
    await _change_fund(daemon, target.tenant_id, fund_id="RECREATED0005")
    await _change_fund(daemon, other.tenant_id, fund_id="RECREATED0006", abn=target.abn)
    bulk = await _sign_in(daemon, rpc)
    for fund_id in ("RECREATED0005", "RECREATED0006"):
        tenant = next(t for t in bulk.tenants if t.tenant_id == fund_id)
        assert tenant.client_id is None
        assert tenant.match.startswith("not matched by ABN: 2 entities of this sign-in have ABN")


async def test_the_rebinding_is_refused_with_a_sentence_when_another_client_holds_the_id(
    daemon, rpc, short_tmp
):
    clients = await _imported(daemon, rpc)
    target = clients[8]
    await _change_fund(daemon, target.tenant_id, fund_id="RECREATED0007")
    bulk = await _sign_in(daemon, rpc)
    assert next(t for t in bulk.tenants if t.tenant_id == "RECREATED0007").client_id == target.id
    # Meanwhile someone imports a spreadsheet naming the fund's new id for another client
    # (the race the check inside the transaction guards: re-checked where it is written).
    path = short_tmp / "clients.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Client name", "ABN", "Software", "Software ID", "Email", "Mobile"])
        writer.writerow(["Someone else", "", "bgl", "RECREATED0007", "", ""])
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path), confirm=True, digest=preview.digest)
    holder_id = next(
        c.id
        for c in (await rpc.call(p.CLIENTS_LIST, filter={"provider": "bgl"}, limit=100)).items
        if c.tenant_id == "RECREATED0007"
    )
    services = daemon.daemon.services
    row = await services.store.get_client(target.id)
    details = await services.clients.verify("bgl", bulk.grant_id, "RECREATED0007")
    with pytest.raises(RpcFailure) as refused:
        await services.clients.commit_reauthorisation(
            row, bulk.grant_id, details, "test", tenant_id="RECREATED0007"
        )
    assert refused.value.code == ErrorCode.CONFLICT
    assert f"(client {holder_id}) is already bound to RECREATED0007" in refused.value.message
    after = await rpc.call(p.CLIENTS_GET, client_id=target.id)
    assert (after.tenant_id, after.grant_id) == (row.tenant_id, row.grant_id)  # unchanged
    # The job decides again at its turn: the fund now has its own client, target stays out.
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=bulk.grant_id, client_ids=[target.id]
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.failed) == (0, 1)
    assert "was not among the businesses selected" in job.items[0].error


async def test_tui_checklist_says_matched_by_abn_at_80x24(daemon, rpc):
    clients = await _imported(daemon, rpc)
    target = clients[0]
    old_id = target.tenant_id
    await _change_fund(daemon, old_id, fund_id="NEWID01")
    grant = next(
        g
        for g in await sandbox_get(daemon.sandbox.base_url, "/_sandbox/grants")
        if g["provider"] == "bgl"
    )
    await sandbox_post(daemon.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK, client_ids=[client.id for client in clients])
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
        await wait_until(lambda: checklist.option_count == len(clients), what="the checklist")
        assert target.id in checklist.selected  # ticked like the others
        await pilot.pause()
        screen = screen_text(app)
        (row,) = [line for line in screen.splitlines() if target.name in line and "▐" in line]
        assert "(by ABN)" in row and "Needs re-auth" in row
        words = " ".join(screen.split())  # the line under the list wraps at 80 columns
        assert f"{target.name}: matched by ABN: fund id changed from {old_id} to NEWID01" in words
        assert "Not clients yet" not in screen
