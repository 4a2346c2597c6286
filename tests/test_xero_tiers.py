"""Xero since March 2026 (issue 10 part 4, provider-facts §8): an app's tier caps its
connections and, on Starter, its daily calls per organisation; the daemon counts its
connections and API egress and shows them against the configured tier."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import httpx
import pytest

from clientlink.common import protocol as p
from clientlink.sandbox import xero_identity
from clientlink.sandbox.accounts import PUBLIC_CLIENT_ID
from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.testkit import authorize_url, pkce_pair
from tests.conftest import RunningDaemon
from tests.helpers import advance_time

REDIRECT = "http://127.0.0.1:8752/callback"


async def _set_tier(http: httpx.AsyncClient, tier: str) -> None:
    response = await http.post(f"/_sandbox/xero/apps/{PUBLIC_CLIENT_ID}/tier", json={"tier": tier})
    assert response.status_code == 200, response.text


async def _connect(sandbox: SandboxServer, tenants: list[str]) -> dict:
    verifier, challenge = pkce_pair()
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT, code_challenge=challenge)
    redirect = await approve(url, orgs=tenants)
    code = httpx.URL(redirect).params["code"]
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        response = await http.post(
            xero_identity.TOKEN_PATH,
            data={
                "grant_type": "authorization_code",
                "client_id": PUBLIC_CLIENT_ID,
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def http(sandbox: SandboxServer):  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


async def test_starter_tier_caps_connections_at_five(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await _set_tier(http, "starter")
    orgs = [org.tenant_id for org in sandbox.state.orgs]
    await _connect(sandbox, orgs[:4])
    with pytest.raises(ApproveError):
        await approve(
            authorize_url(sandbox.base_url, redirect_uri=REDIRECT, code_challenge=pkce_pair()[1]),
            orgs=orgs[4:6],
        )
    # Re-connecting what is connected, plus one more, stays within five.
    await _connect(sandbox, orgs[:5])
    assert sandbox.state.xero.app_connection_count(PUBLIC_CLIENT_ID) == 5
    bad = await http.post(f"/_sandbox/xero/apps/{PUBLIC_CLIENT_ID}/tier", json={"tier": "gold"})
    assert bad.status_code == 400 and "starter" in bad.json()["error"]


async def test_starter_tier_allows_1000_calls_a_day_per_organisation(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await _set_tier(http, "starter")
    tenant = sandbox.state.orgs[0].tenant_id
    tokens = await _connect(sandbox, [tenant])
    sandbox.state.clock.set(datetime.now(UTC).replace(hour=1, minute=0, second=0))
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "xero-tenant-id": tenant}
    path = "/xero/api.xro/2.0/Organisation"
    first = await http.get(path, headers=headers)
    assert first.headers["X-DayLimit-Remaining"] == "999"
    for done in range(1, 1000):
        if done % 60 == 0:
            sandbox.state.clock.advance(60)
        assert (await http.get(path, headers=headers)).status_code == 200
    sandbox.state.clock.advance(60)
    refused = await http.get(path, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert int(refused.headers["Retry-After"]) > 0


# --------------------------------------------------------------------------- the daemon


@pytest.fixture
def home(home, sandbox: SandboxServer):  # type: ignore[no-untyped-def]
    """The test home with its Xero app on the Starter tier, in config and in the sandbox."""
    text = home.config_file.read_text(encoding="utf-8")
    text = text.replace('kind = "xero"\n', 'kind = "xero"\ntier = "starter"\n', 1)
    home.config_file.write_text(text, encoding="utf-8")
    sandbox.state.xero.set_tier(PUBLIC_CLIENT_ID, "starter")
    return home


async def _sign_in(daemon: RunningDaemon, rpc, tenants: list[str]) -> p.AuthBeginResult:  # type: ignore[no-untyped-def]
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", new_connections=len(tenants))
    redirect = await daemon.approve(session.authorize_url, tenants)
    grant = await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    await rpc.call(p.CLIENTS_IMPORT, grant_id=grant.grant_id)
    return session


async def test_daemon_shows_connections_and_egress_against_the_tier(
    daemon: RunningDaemon,
) -> None:
    rpc = await daemon.connect()
    (usage,) = (await rpc.call(p.DAEMON_STATUS)).usage
    assert usage | {"month": None} == {
        "provider": "xero",
        "tier": "starter",
        "connections": 0,
        "connection_cap": 5,
        "day_limit_per_organisation": 1000,
        "egress_bytes_month": 0,
        "month": None,
    }
    orgs = [org.tenant_id for org in daemon.sandbox.state.orgs[:3]]
    first = await _sign_in(daemon, rpc, orgs)
    assert first.warning is None
    (usage,) = (await rpc.call(p.DAEMON_STATUS)).usage
    assert usage["connections"] == 3 and usage["egress_bytes_month"] > 0

    # A bulk sign-in that would pass the cap is warned about before it starts.
    warned = await rpc.call(p.AUTH_BEGIN, provider="xero", new_connections=3)
    assert "allows 5 connections" in warned.warning
    await rpc.call(p.AUTH_CANCEL, session_id=warned.session_id)

    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        "--home",
        str(daemon.paths.config_dir.parent),
        "status",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await cli.communicate()
    assert "(starter tier): 3 of 5 connections" in out.decode()


async def test_watching_a_client_costs_little_api_egress(daemon: RunningDaemon) -> None:
    """Measures the keep-alive's API egress per client per month (issue 10's figure)."""
    rpc = await daemon.connect()
    orgs = [org.tenant_id for org in daemon.sandbox.state.orgs[:5]]
    await _sign_in(daemon, rpc, orgs)
    meter = daemon.daemon.egress["xero"]
    start = meter.total(daemon.clock.now())
    refreshes = daemon.sandbox.state.calls["token.refresh_token"]
    for _ in range(58):  # a day in 25-minute steps: the watcher refreshes every ~25 minutes
        await advance_time(daemon, 1500)
    day = meter.total(daemon.clock.now()) - start
    refreshed = daemon.sandbox.state.calls["token.refresh_token"] - refreshes
    assert refreshed >= 50  # the grant was kept alive all day
    per_client_month = day * 30 / len(orgs)
    print(f"watching egress: {per_client_month:.0f} bytes per client per month")
    assert per_client_month < 50_000
