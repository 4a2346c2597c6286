"""Re-authorising one client end to end: sandbox over HTTP, daemon over its socket."""

from __future__ import annotations

import httpx
import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from tests.helpers import next_event, port_closes, port_is_open, sandbox_get


async def _client_and_tenant(practice, rpc, client_id):
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    return client, client.tenant_id


async def _signed_in(practice, rpc, deny: bool = False):
    """A sign-in for the first client needing re-auth, with the person having ticked its
    business: (client id, the auth.begin result, the address the browser ended on)."""
    client_id = practice.client_ids_needing_reauth[0]
    _, tenant = await _client_and_tenant(practice, rpc, client_id)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    redirect = await practice.approve(session.authorize_url, [tenant], deny=deny)
    return client_id, session, redirect


async def test_reauthorise_through_loopback_listener_marks_client_connected(practice):
    rpc = await practice.connect()
    await rpc.subscribe()
    client_id = practice.client_ids_needing_reauth[0]
    client, tenant = await _client_and_tenant(practice, rpc, client_id)
    assert client.status == "needs_reauth"

    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    assert session.redirect_uri.startswith("http://127.0.0.1:")
    assert "code_challenge_method=S256" in session.authorize_url
    redirect = await practice.approve(session.authorize_url, [tenant])
    page = await practice.deliver(redirect)
    assert page.status_code == 200
    assert "close this tab" in page.text

    reauthorised = await next_event(rpc, "client.reauthorised", client_id=client_id)
    assert reauthorised["name"] == client.name
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "connected"
    assert client.status_reason is None
    assert client.grant_id == reauthorised["grant_id"]
    status = await rpc.call(p.AUTH_STATUS, session_id=session.session_id)
    assert status.state == "completed"

    audit = await rpc.call(p.AUDIT_LIST, client_id=client_id)
    entry = next(e for e in audit.items if e.action == "client.reauthorised")
    assert entry.actor == rpc.hello["user"]
    assert entry.detail["previous_status"] == "needs_reauth"


async def test_status_change_event_carries_increasing_sequence_numbers(practice):
    rpc = await practice.connect()
    subscribed = await rpc.subscribe(["client.status_changed", "auth.completed"])
    client_id = practice.client_ids_needing_reauth[1]
    _, tenant = await _client_and_tenant(practice, rpc, client_id)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    redirect = await practice.approve(session.authorize_url, [tenant])
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    changed = await next_event(rpc, "client.status_changed", client_id=client_id)
    completed = await next_event(rpc, "auth.completed", session_id=session.session_id)
    assert changed["old_status"] == "needs_reauth" and changed["status"] == "connected"
    assert subscribed["seq"] < changed["seq"] < completed["seq"]


async def test_pasted_redirect_completes_and_lists_the_grants_tenants(practice):
    rpc = await practice.connect()
    client_id, session, redirect = await _signed_in(practice, rpc)
    _, tenant = await _client_and_tenant(practice, rpc, client_id)
    result = await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert [t.tenant_id for t in result.tenants] == [tenant]
    assert result.tenants[0].client_id == client_id
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"


async def test_listener_is_open_only_while_a_sign_in_is_pending(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    _, tenant = await _client_and_tenant(practice, rpc, client_id)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    assert await port_is_open(session.callback_port)
    redirect = await practice.approve(session.authorize_url, [tenant])
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert await port_closes(session.callback_port)
    with pytest.raises(httpx.ConnectError):
        await practice.deliver(redirect)


async def test_signing_in_without_ticking_the_client_says_so_and_changes_nothing(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    client, tenant = await _client_and_tenant(practice, rpc, client_id)
    orgs = await sandbox_get(practice.sandbox.base_url, "/_sandbox/orgs")
    other = next(o["tenant_id"] for o in orgs if o["tenant_id"] != tenant)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    redirect = await practice.approve(session.authorize_url, [other])
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert caught.value.code == ErrorCode.AUTH_CLIENT_NOT_SELECTED
    assert client.name in caught.value.message
    assert "tick" in caught.value.message
    after = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert after.status == "needs_reauth"
    assert after.grant_id == client.grant_id


async def test_tampered_state_is_refused_and_the_session_still_completes(practice):
    rpc = await practice.connect()
    client_id, session, redirect = await _signed_in(practice, rpc)
    tampered = redirect.replace("state=", "state=x")
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=tampered)
    assert caught.value.code == ErrorCode.AUTH_STATE_MISMATCH
    assert (await rpc.call(p.AUTH_STATUS, session_id=session.session_id)).state == "pending"
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"


async def test_reused_redirect_is_refused_without_a_second_exchange(practice):
    rpc = await practice.connect()
    _, session, redirect = await _signed_in(practice, rpc)
    params = {"session_id": session.session_id, "redirect_url": redirect}
    await rpc.call(p.AUTH_COMPLETE, **params)
    exchanges = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, **params)
    assert caught.value.code == ErrorCode.AUTH_SESSION_FINISHED
    assert (await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")) == exchanges


async def _second_session_with_first_code(practice, rpc, *, use_first_code: bool):
    client_id = practice.client_ids_needing_reauth[0]
    _, tenant = await _client_and_tenant(practice, rpc, client_id)
    first = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    first_redirect = await practice.approve(first.authorize_url, [tenant])
    if use_first_code:
        await rpc.call(p.AUTH_COMPLETE, session_id=first.session_id, redirect_url=first_redirect)
    second = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    second_state = httpx.URL(second.authorize_url).params["state"]
    code = httpx.URL(first_redirect).params["code"]
    forged = f"{second.redirect_uri}?code={code}&state={second_state}"
    return client_id, second, forged


async def test_replayed_code_is_refused_by_the_provider_and_changes_nothing(practice):
    rpc = await practice.connect()
    client_id, second, forged = await _second_session_with_first_code(
        practice, rpc, use_first_code=True
    )
    before = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=second.session_id, redirect_url=forged)
    assert caught.value.code == ErrorCode.AUTH_PROVIDER_REFUSED
    assert await rpc.call(p.CLIENTS_GET, client_id=client_id) == before


async def test_code_from_another_session_fails_pkce_and_changes_nothing(practice):
    rpc = await practice.connect()
    client_id, second, forged = await _second_session_with_first_code(
        practice, rpc, use_first_code=False
    )
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=second.session_id, redirect_url=forged)
    assert caught.value.code == ErrorCode.AUTH_PROVIDER_REFUSED
    assert "refused" in caught.value.message
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"


async def test_expired_session_is_refused_and_its_listener_closed(practice):
    rpc = await practice.connect()
    client_id, session, redirect = await _signed_in(practice, rpc)
    practice.clock.advance(11 * 60)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert caught.value.code == ErrorCode.AUTH_SESSION_EXPIRED
    assert "start it again" in caught.value.message
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"


async def test_cancelled_session_refuses_its_redirect(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    _, tenant = await _client_and_tenant(practice, rpc, client_id)
    keep_open = await rpc.call(p.AUTH_BEGIN, provider="xero")  # keeps the listener up
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    redirect = await practice.approve(session.authorize_url, [tenant])
    cancelled = await rpc.call(p.AUTH_CANCEL, session_id=session.session_id)
    assert cancelled.state == "cancelled"
    page = await practice.deliver(redirect)
    assert page.status_code == 400
    assert "Start the sign-in again" in page.text
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"
    await rpc.call(p.AUTH_CANCEL, session_id=keep_open.session_id)


async def test_cancel_on_the_consent_page_fails_the_session_clearly(practice):
    rpc = await practice.connect()
    _, session, redirect = await _signed_in(practice, rpc, deny=True)
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert caught.value.code == ErrorCode.AUTH_PROVIDER_REFUSED
    assert "Cancel" in caught.value.message


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"provider": "myob"}, ErrorCode.PROVIDER_UNKNOWN),
        ({"provider": "xero", "client_id": 999999}, ErrorCode.NOT_FOUND),
    ],
)
async def test_begin_with_bad_input_says_what_is_wrong(rpc, params, code):
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_BEGIN, **params)
    assert caught.value.code == code
    assert (await rpc.call(p.DAEMON_STATUS)).pending_auth_sessions == 0


async def test_unknown_session_and_garbage_redirect_are_clear_errors(practice):
    rpc = await practice.connect()
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id="nope", redirect_url="http://x/?code=1")
    assert caught.value.code == ErrorCode.AUTH_SESSION_UNKNOWN
    session = await rpc.call(p.AUTH_BEGIN, provider="xero")
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url="hello")
    assert caught.value.code == ErrorCode.AUTH_REDIRECT_INVALID
    assert (await rpc.call(p.AUTH_STATUS, session_id=session.session_id)).state == "pending"
