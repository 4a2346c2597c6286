"""A business new to one software whose ABN a client under other software has: asked about,
never made a duplicate silently; attached to that client, or imported as new on purpose.

Real daemon over its socket, the sandbox over HTTP, a real SQLite file; the TUI at 80x24.
"""

from __future__ import annotations

import pytest
from textual import events

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen
from clientlink.tui.screens.possible_match import PossibleMatchScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from tests.helpers import sandbox_get, wait_until
from tests.test_client_import import screen_text


async def quickbooks_client_and_its_xero_tenant(practice, rpc) -> tuple[p.Client, str]:
    """A QuickBooks client of the practice, and the id the same business has in Xero."""
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.seeded.quickbooks_ids[0])
    orgs = await sandbox_get(practice.sandbox.base_url, "/_sandbox/orgs")
    org = next(org for org in orgs if org["realm_id"] == client.tenant_id)
    return client, org["tenant_id"]


async def xero_sign_in(practice, rpc, tenants: list[str]) -> p.AuthCompleteResult:
    session = await rpc.call(p.AUTH_BEGIN, provider="xero")
    redirect = await practice.approve(session.authorize_url, tenants)
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def count_clients(rpc) -> int:
    return (await rpc.call(p.CLIENTS_LIST, filter={"active": None}, limit=1)).total


async def test_import_asks_first_and_attach_moves_the_client_in_one_audited_step(practice):
    rpc = await practice.connect()
    client, xero_tenant = await quickbooks_client_and_its_xero_tenant(practice, rpc)
    grant = await xero_sign_in(practice, rpc, [xero_tenant])
    before = await count_clients(rpc)

    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=grant.grant_id, tenant_ids=[xero_tenant])
    assert imported.created == [] and imported.updated == []
    (match,) = imported.possible_matches
    assert (match.tenant_id, match.client_id, match.client_provider) == (
        xero_tenant,
        client.id,
        "quickbooks",
    )
    assert match.abn == client.abn and match.client_name == client.name
    assert await count_clients(rpc) == before, "nothing is created before the person decides"

    # A client someone is re-authorising is not moved under them.
    session = await rpc.call(p.AUTH_BEGIN, provider="quickbooks", client_id=client.id)
    with pytest.raises(RpcError) as held:
        await rpc.call(
            p.CLIENTS_ATTACH, grant_id=grant.grant_id, tenant_id=xero_tenant, client_id=client.id
        )
    assert held.value.code == ErrorCode.CONFLICT
    assert "already re-authorising" in held.value.message
    await rpc.call(p.AUTH_CANCEL, session_id=session.session_id)
    assert await rpc.call(p.CLIENTS_GET, client_id=client.id) == client

    # A client whose ABN is another's is refused, and nothing changes.
    other = await rpc.call(p.CLIENTS_GET, client_id=practice.seeded.quickbooks_ids[1])
    with pytest.raises(RpcError) as refused:
        await rpc.call(
            p.CLIENTS_ATTACH, grant_id=grant.grant_id, tenant_id=xero_tenant, client_id=other.id
        )
    assert refused.value.code == ErrorCode.CONFLICT
    assert "ABN" in refused.value.message and other.name in refused.value.message
    assert await rpc.call(p.CLIENTS_GET, client_id=other.id) == other

    attached = await rpc.call(
        p.CLIENTS_ATTACH, grant_id=grant.grant_id, tenant_id=xero_tenant, client_id=client.id
    )
    assert (attached.id, attached.provider, attached.tenant_id) == (client.id, "xero", xero_tenant)
    assert attached.status == "connected" and attached.email == client.email
    assert await count_clients(rpc) == before
    audit = await rpc.call(p.AUDIT_LIST, client_id=client.id, limit=5)
    entry = next(item for item in audit.items if item.action == "client.attached")
    assert entry.detail["provider"] == ["quickbooks", "xero"]
    assert entry.detail["tenant_id"] == [client.tenant_id, xero_tenant]
    assert entry.detail["grant_id"] == grant.grant_id
    history = await rpc.call(p.CLIENTS_HISTORY, client_id=client.id, limit=5)
    assert history.items[0].kind == "attached"
    assert "to Xero" in (history.items[0].reason or "")

    # Attached, it is this software's client: importing the tenant again finds it.
    again = await rpc.call(p.CLIENTS_IMPORT, grant_id=grant.grant_id, tenant_ids=[xero_tenant])
    assert again.updated == [client.id] and again.possible_matches == []
    with pytest.raises(RpcError) as twice:
        await rpc.call(
            p.CLIENTS_ATTACH, grant_id=grant.grant_id, tenant_id=xero_tenant, client_id=client.id
        )
    assert twice.value.code == ErrorCode.CONFLICT and "re-authorise" in twice.value.message


async def test_import_as_new_on_purpose_and_attach_then_refuses_the_bound_tenant(practice):
    rpc = await practice.connect()
    client, xero_tenant = await quickbooks_client_and_its_xero_tenant(practice, rpc)
    grant = await xero_sign_in(practice, rpc, [xero_tenant])
    imported = await rpc.call(
        p.CLIENTS_IMPORT, grant_id=grant.grant_id, tenant_ids=[xero_tenant], as_new=[xero_tenant]
    )
    (created,) = imported.created
    assert imported.possible_matches == []
    duplicate = await rpc.call(p.CLIENTS_GET, client_id=created)
    assert duplicate.abn == client.abn and duplicate.provider == "xero"

    with pytest.raises(RpcError) as refused:
        await rpc.call(
            p.CLIENTS_ATTACH, grant_id=grant.grant_id, tenant_id=xero_tenant, client_id=client.id
        )
    assert refused.value.code == ErrorCode.CONFLICT
    assert duplicate.name in refused.value.message and "already" in refused.value.message
    assert await rpc.call(p.CLIENTS_GET, client_id=client.id) == client
    audit = await rpc.call(p.AUDIT_LIST, client_id=client.id, limit=5)
    assert all(item.action != "client.attached" for item in audit.items)

    with pytest.raises(RpcError) as unknown:
        await rpc.call(
            p.CLIENTS_ATTACH, grant_id=grant.grant_id, tenant_id="not-reached", client_id=client.id
        )
    assert unknown.value.code == ErrorCode.INVALID_PARAMS


async def test_the_bulk_checklist_asks_before_importing_and_attaches_at_80x24(practice) -> None:
    rpc = await practice.connect()
    client, xero_tenant = await quickbooks_client_and_its_xero_tenant(practice, rpc)
    needing = await rpc.call(
        p.CLIENTS_LIST, filter={"status": "needs_reauth", "provider": "xero"}, limit=1
    )
    before = await count_clients(rpc)
    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: getattr(app.screen, "clients", None), what="the client list")
        providers = (await rpc.call(p.PROVIDERS_LIST)).items
        xero = next(each for each in providers if each.name == "xero")
        app.push_screen(BulkReauthScreen(xero))
        await wait_until(
            lambda: (
                isinstance(app.screen, SignInScreen)
                and "Re-authorise Bulk Clients" in screen_text(app)
            ),
            what="the sign-in",
        )
        sign_in = app.screen
        await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
        tenants = [needing.items[0].tenant_id, xero_tenant]
        redirect = await practice.approve(sign_in.session.authorize_url, tenants)
        app.screen.focused.post_message(events.Paste(redirect))
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(lambda: isinstance(app.screen, BulkReauthScreen), what="the checklist")
        await wait_until(
            lambda: "Not clients yet: 1" in screen_text(app), what="the business new to Xero"
        )
        await pilot.press("i")
        await wait_until(
            lambda: isinstance(app.screen, PossibleMatchScreen), what="the question first"
        )
        await pilot.pause()
        # What the dialog says, as drawn: its part of each screen line.
        region = app.screen.query_one("#possible-match-dialog").region
        lines = screen_text(app).splitlines()[region.y : region.bottom]
        drawn = " ".join(line[region.x : region.right] for line in lines).replace("│", " ")
        words = " ".join(drawn.split())
        assert "Already a client?" in words
        assert f"has the ABN of {client.name}, a QuickBooks (sandbox) client" in words
        assert "The same business in new software?" in words
        assert f"Attach to {client.name} (moves it from QuickBooks (sandbox) to Xero" in words
        assert "Import as a new Xero (sandbox) client" in words
        assert "Leave it out for now (Esc)" in words
        assert await count_clients(rpc) == before, "asked before anything is imported"
        await pilot.press("enter")  # the first choice: attach
        await wait_until(lambda: isinstance(app.screen, BulkReauthScreen), what="the checklist")
        await wait_until(
            lambda: any("1 client attached" in n.message for n in app._notifications),
            what="the toast",
        )
        await wait_until(lambda: "Not clients yet" not in screen_text(app), what="nothing new left")
        assert client.name[:20] in screen_text(app), "the attached client joins the checklist"

    moved = await rpc.call(p.CLIENTS_GET, client_id=client.id)
    assert (moved.provider, moved.tenant_id, moved.status) == ("xero", xero_tenant, "connected")
    assert await count_clients(rpc) == before
