"""Xero since March 2026 (issue 10 part 4, provider-facts §8): an app's tier caps its
connections and, on Starter, its daily calls per organisation; the daemon counts its
connections and API egress and shows them against the configured tier."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from clientlink.sandbox import xero_identity
from clientlink.sandbox.accounts import PUBLIC_CLIENT_ID
from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.testkit import authorize_url, pkce_pair

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
