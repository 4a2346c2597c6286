"""Class Super through the daemon: sandbox over real HTTP, the daemon's RPC over its socket.

One authorisation covers one Class business: import its funds, re-authorise one fund or a
business's funds in bulk, re-import a changed fund, what each refusal means, and the
watcher keeping 30-day single-use refresh tokens alive with few token calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import DaemonUnavailable, RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.sandbox.accounts import DEMO_USER
from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.classsuper import CLASS_CLIENT_SECRET, LIMITED_USER
from clientlink.sandbox.seed import abn_is_valid
from tests.helpers import (
    DaemonProcess,
    advance_time,
    finished,
    sandbox_delete,
    sandbox_get,
    sandbox_post,
    wait_until,
)

PROVIDER = "class"


def scope_of(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query)["scope"][0].split()


async def businesses(sandbox) -> list[dict]:
    return await sandbox_get(sandbox.base_url, "/_sandbox/class/businesses")


async def class_grants(sandbox) -> list[dict]:
    grants = await sandbox_get(sandbox.base_url, "/_sandbox/grants")
    return [g for g in grants if g["provider"] == PROVIDER]


async def refreshes(sandbox) -> int:
    stats = await sandbox_get(sandbox.base_url, "/_sandbox/stats")
    return stats["calls"].get("class.token.refresh_token", 0)


async def ready(rpc) -> None:
    await rpc.call(p.PROVIDERS_SET_SECRET, provider=PROVIDER, client_secret=CLASS_CLIENT_SECRET)


async def sign_in(rpc, business: str | None, *, choose: str | None = None, user=DEMO_USER):
    """One sign-in to a Class business (or to the one chosen on Class's own page)."""
    session = await rpc.call(p.AUTH_BEGIN, provider=PROVIDER, business=business)
    redirect = await approve(session.authorize_url, orgs=[choose] if choose else None, user=user)
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def import_business(rpc, business: str) -> list[int]:
    result = await sign_in(rpc, business)
    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=result.grant_id)
    return sorted(imported.created)


@pytest.fixture
async def class_rpc(daemon):
    rpc = await daemon.connect()
    await ready(rpc)
    return rpc


async def test_providers_list_names_class_and_its_missing_secret(daemon):
    rpc = await daemon.connect()
    info = next(i for i in (await rpc.call(p.PROVIDERS_LIST)).items if i.name == PROVIDER)
    assert info.kind == "class" and not info.configured
    assert "set-secret class" in (info.problem or "")
    with pytest.raises(RpcError) as refused:
        await rpc.call(p.AUTH_BEGIN, provider=PROVIDER, business="PATEL09")
    assert refused.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED
    await ready(rpc)
    info = next(i for i in (await rpc.call(p.PROVIDERS_LIST)).items if i.name == PROVIDER)
    assert info.configured and info.has_secret


async def test_importing_a_business_makes_one_client_per_fund(daemon, class_rpc):
    rpc = class_rpc
    business = (await businesses(daemon.sandbox))[0]
    session = await rpc.call(p.AUTH_BEGIN, provider=PROVIDER, business=business["code"])
    assert f"target:b/{business['code']}" in scope_of(session.authorize_url)
    assert {"openid", "offline_access", "fund.read"} <= set(scope_of(session.authorize_url))
    assert session.warning is None
    redirect = await approve(session.authorize_url)
    result = await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert len(result.tenants) == len(business["funds"]) == 12
    assert {t.business for t in result.tenants} == {business["code"]}
    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=result.grant_id)
    funds = {fund["id"]: fund for fund in business["funds"]}
    for client_id in imported.created:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        fund = funds[client.tenant_id]
        assert client.provider == PROVIDER and client.status == "connected"
        assert client.name == fund["name"] and client.business == business["code"]
        assert client.entity_type == fund["entityType"] and client.email == fund["email"]
        assert client.abn == fund["abn"] and abn_is_valid(client.abn)
    grants = await class_grants(daemon.sandbox)
    assert [g["user"] for g in grants] == [DEMO_USER]


async def test_without_a_business_the_person_picks_one_on_class_page(daemon, class_rpc):
    found = await businesses(daemon.sandbox)
    chosen = found[1]
    session = await class_rpc.call(p.AUTH_BEGIN, provider=PROVIDER)
    assert not any(s.startswith("target:b/") for s in scope_of(session.authorize_url))
    redirect = await approve(session.authorize_url, orgs=[chosen["name"]])
    result = await class_rpc.call(
        p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect
    )
    assert {t.business for t in result.tenants} == {chosen["code"]}
    assert len(result.tenants) == len(chosen["funds"])


async def test_a_business_outside_config_is_allowed_with_a_warning(daemon, class_rpc):
    session = await class_rpc.call(p.AUTH_BEGIN, provider=PROVIDER, business="NEWBIZ1")
    assert "NEWBIZ1 is not among the Class Super" in (session.warning or "")
    assert "target:b/NEWBIZ1" in scope_of(session.authorize_url)
    # Class itself refuses a business the person cannot reach, on its own page.
    with pytest.raises(ApproveError, match="don't have access"):
        await approve(session.authorize_url)
    for bad in ("PATEL09 offline_access", "../x", ""):
        with pytest.raises(RpcError) as refused:
            await class_rpc.call(p.AUTH_BEGIN, provider=PROVIDER, business=bad)
        assert refused.value.code == ErrorCode.INVALID_PARAMS
    with pytest.raises(RpcError) as refused:
        await class_rpc.call(p.AUTH_BEGIN, provider="xero", business="PATEL09")
    assert "leave out business" in refused.value.message


async def test_a_staff_member_reaches_only_their_business(daemon, class_rpc):
    found = await businesses(daemon.sandbox)
    result = await sign_in(class_rpc, None, user=LIMITED_USER)
    assert {t.business for t in result.tenants} == {found[0]["code"]}
    with pytest.raises(ApproveError, match="don't have access"):
        await sign_in(class_rpc, found[1]["code"], user=LIMITED_USER)


async def test_single_and_bulk_reauthorisation_of_a_business(daemon, class_rpc):
    rpc = class_rpc
    code = (await businesses(daemon.sandbox))[1]["code"]
    client_ids = await import_business(rpc, code)
    (grant,) = await class_grants(daemon.sandbox)
    # The person cancels clientlink's access in Class: every fund of the business needs it.
    await sandbox_post(daemon.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK)
    for client_id in client_ids:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert client.status == "needs_reauth"
        reason = client.status_reason or ""
        assert "cancelled in Class Super (sandbox), which revoked" in reason

    # Single: the client's business is used, so Class shows no selection page.
    first = client_ids[0]
    session = await rpc.call(p.AUTH_BEGIN, provider=PROVIDER, client_id=first)
    assert f"target:b/{code}" in scope_of(session.authorize_url)
    redirect = await approve(session.authorize_url)
    await daemon.deliver(redirect)

    async def reauthorised() -> bool:
        return (await rpc.call(p.CLIENTS_GET, client_id=first)).status == "connected"

    await wait_until(reauthorised, what="the fund to be re-authorised")

    # Bulk: one sign-in to the business, the rest of its funds re-authorised by a job.
    rest = client_ids[1:]
    result = await sign_in(rpc, code)
    assert {t.client_id for t in result.tenants} == set(client_ids)
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=rest
    )
    job = await finished(rpc, started.job_id)
    assert (job.state, job.done, job.failed) == ("completed", len(rest), 0)
    for client_id in rest:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert (client.status, client.grant_id) == ("connected", result.grant_id)


async def test_a_bulk_sign_in_to_another_business_binds_none_of_these_funds(daemon, class_rpc):
    found = await businesses(daemon.sandbox)
    client_ids = await import_business(class_rpc, found[0]["code"])
    result = await sign_in(class_rpc, found[2]["code"])
    assert all(t.client_id is None for t in result.tenants)
    started = await class_rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=client_ids[:1]
    )
    job = await finished(class_rpc, started.job_id)
    (item,) = job.items
    assert job.failed == 1 and "not among the businesses selected" in (item.error or "")
    client = await class_rpc.call(p.CLIENTS_GET, client_id=client_ids[0])
    assert client.grant_id != result.grant_id


async def test_reimport_shows_a_fund_changed_in_class(daemon, class_rpc):
    business = (await businesses(daemon.sandbox))[2]
    client_ids = await import_business(class_rpc, business["code"])
    fund = business["funds"][0]
    client = next(
        c
        for c in [await class_rpc.call(p.CLIENTS_GET, client_id=i) for i in client_ids]
        if c.tenant_id == fund["id"]
    )
    await sandbox_post(
        daemon.sandbox.base_url,
        f"/_sandbox/class/funds/{fund['id']}",
        {
            "name": "Marsh Superannuation Fund",
            "entity_type": "Trust",
            "email": "marsh@fund.example",
        },
    )
    started = await class_rpc.call(p.JOBS_START, kind="reimport", client_ids=[client.id])
    job = await finished(class_rpc, started.job_id)
    (item,) = job.items
    assert item.changes == {
        "name": [fund["name"], "Marsh Superannuation Fund"],
        "entity_type": [fund["entityType"], "Trust"],
        "email": [fund["email"], "marsh@fund.example"],
    }


async def test_failure_meanings(daemon, class_rpc):
    rpc = class_rpc
    code = (await businesses(daemon.sandbox))[0]["code"]
    client_id = (await import_business(rpc, code))[0]
    base = daemon.sandbox.base_url
    # An outage at Class's token endpoint is transient: the fund stays connected.
    await sandbox_post(
        base, "/_sandbox/faults", {"kind": "503", "target": "token", "provider": "class"}
    )
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "connected"
    await sandbox_delete(base, "/_sandbox/faults")
    # A wrong app secret is the app's problem, not the grant's.
    await rpc.call(p.PROVIDERS_SET_SECRET, provider=PROVIDER, client_secret="wrong")
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "error" and "client id or secret" in (client.status_reason or "")
    await ready(rpc)
    # A refresh token past its 30 days (expired in Class): re-authorise.
    (grant,) = await class_grants(daemon.sandbox)
    await sandbox_post(base, f"/_sandbox/grants/{grant['grant_id']}/expire-refresh")
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "needs_reauth"
    assert "re-authorise" in (client.status_reason or "")


async def test_the_watcher_keeps_an_idle_grant_alive_for_90_days_with_9_refreshes(
    daemon, class_rpc
):
    code = (await businesses(daemon.sandbox))[2]["code"]
    client_ids = await import_business(class_rpc, code)
    before = await refreshes(daemon.sandbox)
    # A day at a time: 15-minute access tokens are not kept warm for an idle grant; the
    # refresh token is rotated once a third of its 30 days has passed.
    for _ in range(90):
        await advance_time(daemon, 86400)
    assert await refreshes(daemon.sandbox) - before == 9
    for client_id in client_ids:
        client = await class_rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert client.status == "connected", client.status_reason
    (grant,) = await class_grants(daemon.sandbox)
    assert not grant["revoked"]
    # An API call still gets a fresh access token on demand.
    client = await class_rpc.call(p.CLIENTS_REFRESH, client_id=client_ids[0])
    assert client.status == "connected"


# --------------------------------------------------------------------------- crashes


@pytest.fixture
async def daemon_process(home):
    process = DaemonProcess(home)
    yield process
    with contextlib.suppress(ProcessLookupError):
        await process.stop()


async def killed_after_class_rotated(daemon_process, sandbox):
    """Import a Class business in a real clientlinkd, start a forced refresh that Class
    answers only after rotating the token (and holding the answer), then SIGKILL the daemon
    before it can commit the new token. Returns the client refreshed."""
    rpc = await daemon_process.start()
    await ready(rpc)
    code = (await businesses(sandbox))[0]["code"]
    client_id = (await import_business(rpc, code))[0]
    before = await refreshes(sandbox)
    await sandbox_post(
        sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "hang_after", "delay_seconds": 30, "target": "token", "count": 1},
    )
    pending = asyncio.ensure_future(rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True))

    async def rotated() -> bool:
        return await refreshes(sandbox) > before

    await wait_until(rotated, what="Class to rotate the refresh token")
    daemon_process.kill()  # the rotated token never reached the database
    with pytest.raises(DaemonUnavailable):
        await pending
    await daemon_process.process.wait()
    await sandbox_delete(sandbox.base_url, "/_sandbox/faults")
    await rpc.close()
    return client_id


async def test_killed_after_class_rotated_recovers_within_the_grace(home, sandbox, daemon_process):
    client_id = await killed_after_class_rotated(daemon_process, sandbox)
    rpc = await daemon_process.start()  # well inside Class's 60 s grace
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "connected"
    # Past the grace only the token committed after the restart works: it was committed.
    await sandbox_post(sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 120})
    client = await rpc.call(p.CLIENTS_REFRESH, client_id=client_id, force=True)
    assert client.status == "connected"
    await rpc.close()


async def test_killed_after_class_rotated_and_restarted_too_late_says_the_answer_was_lost(
    home, sandbox, daemon_process
):
    client_id = await killed_after_class_rotated(daemon_process, sandbox)
    await sandbox_post(sandbox.base_url, "/_sandbox/clock", {"advance_seconds": 120})
    rpc = await daemon_process.start()

    async def judged() -> bool:
        return (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"

    await wait_until(judged, what="the restarted daemon to repeat the lost refresh")
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    reason = client.status_reason or ""
    assert "answers to clientlink's token refreshes never arrived" in reason
    assert "1-minute grace ran out" in reason and "re-authorise" in reason
    await rpc.close()
