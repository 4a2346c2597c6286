"""Basiq has no official Python SDK: the sandbox's v3 answers are checked against Basiq's
published v3 API (issue 10), kept here as data: the fields each object must carry, the
Consent UI entry point, consents, events, signed webhooks, and 410 for an expired link.
Every `links` address the sandbox hands out must resolve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from clientlink.common.config import BanksConfig
from clientlink.daemon.banks import BankFeeds
from clientlink.sandbox.basiq import BANK_LOGIN, BANK_PASSWORD, BASIQ_API_KEY
from clientlink.sandbox.server import SandboxServer

NAB = "AU00401"

# Required fields of Basiq v3's objects (its API reference's response schemas).
REQUIRED: dict[str, set[str]] = {
    "token": {"access_token", "token_type", "expires_in"},
    "user": {
        "type", "id", "email", "mobile", "firstName", "middleName", "lastName",
        "businessName", "businessIdNo", "businessIdNoType", "businessAddress",
        "verificationStatus", "verificationDate", "accounts", "connections", "links",
    },
    "connection": {
        "type", "id", "status", "method", "mfaEnabled", "createdDate", "lastUsed",
        "expiryDate", "institution", "accounts", "links",
    },
    "connector": {
        "type", "id", "method", "name", "shortName", "institutionType", "country", "tier",
        "stage", "status", "authorization", "logo", "links",
    },
    "consent": {
        "type", "id", "created", "updated", "expiryDate", "origin", "status", "purpose",
        "data", "revoked",
    },
    "event": {"type", "id", "createdDate", "entity", "eventType", "userId", "links"},
    "list": {"type", "data"},
    "error": {"type", "correlationId", "data"},
}  # fmt: skip
CONNECTION_STATUSES = {"active", "invalid", "pending", "deleted", "pre-init", "init"}


def _conforms(kind: str, body: dict[str, Any]) -> None:
    missing = REQUIRED[kind] - set(body)
    assert not missing, f"{kind} lacks {sorted(missing)}"
    if kind in ("user", "connection", "connector", "consent", "event"):
        assert body["type"] == kind


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url + "/basiq", timeout=10) as http:
        token = await _token(http, "SERVER_ACCESS")
        http.headers.update({"Authorization": f"Bearer {token}", "basiq-version": "3.0"})
        yield http


async def _token(http: httpx.AsyncClient, scope: str, user_id: str | None = None) -> str:
    form = {"scope": scope} | ({"userId": user_id} if user_id else {})
    response = await http.post(
        "/token",
        data=form,
        headers={"Authorization": f"Basic {BASIQ_API_KEY}", "basiq-version": "3.0"},
    )
    assert response.status_code == 200
    _conforms("token", response.json())
    return response.json()["access_token"]


async def _resolves(api: httpx.AsyncClient, links: dict[str, str]) -> None:
    for name, url in links.items():
        assert (await api.get(url)).status_code == 200, f"links.{name} ({url}) does not resolve"


async def test_consent_ui_connects_banks_and_every_object_has_basiqs_shape(
    sandbox: SandboxServer, api: httpx.AsyncClient
) -> None:
    created = await api.post("/users", json={"email": "a@client.example", "mobile": "+61491570110"})
    assert created.status_code == 201
    user = created.json()
    _conforms("user", user)

    # The v3 Consent UI: /home?token=<CLIENT_ACCESS token>&action=...
    client_token = await _token(api, "CLIENT_ACCESS", user["id"])
    home = f"/home?token={client_token}&action=connect&institutionId={NAB}"
    page = await api.get(home)
    assert page.status_code == 200 and f'value="{NAB}" checked' in page.text
    form = {"institution": NAB, f"login-{NAB}": BANK_LOGIN, f"password-{NAB}": BANK_PASSWORD}
    done = await api.post(home, data=form)
    assert done.status_code == 200 and "National Australia Bank" in done.text

    user = (await api.get(f"/users/{user['id']}")).json()
    _conforms("user", user)
    await _resolves(api, user["links"])
    listed = (await api.get(user["links"]["connections"])).json()
    _conforms("list", listed)
    (connection,) = listed["data"]
    _conforms("connection", connection)
    assert connection["status"] in CONNECTION_STATUSES
    await _resolves(api, connection["links"] | connection["institution"]["links"])

    (consent,) = (await api.get(f"/users/{user['id']}/consents")).json()["data"]
    _conforms("consent", consent)
    assert consent["status"] == "active"

    events = (await api.get("/events", params={"filter": f"user.id.eq('{user['id']}')"})).json()
    assert [e["entity"] + "." + e["eventType"] for e in events["data"]] == [
        "connection.created",
        "consent.created",
    ]
    for item in events["data"]:
        _conforms("event", item)
        await _resolves(api, item["links"])


async def test_connectors_are_v3s_catalogue_and_their_links_resolve(
    api: httpx.AsyncClient,
) -> None:
    body = (await api.get("/connectors")).json()
    _conforms("list", body)
    assert {item["id"] for item in body["data"]} >= {NAB}
    for item in body["data"][:5]:
        _conforms("connector", item)
        await _resolves(api, item["links"])
    institutions = (await api.get("/institutions")).json()["data"]
    await _resolves(api, institutions[0]["links"])


async def test_an_expired_auth_link_is_410_gone_and_the_daemon_reads_it_as_expired(
    sandbox: SandboxServer, api: httpx.AsyncClient
) -> None:
    user_id = (await api.post("/users", json={"email": "b@client.example"})).json()["id"]
    assert (await api.post(f"/users/{user_id}/auth_link", json={})).status_code == 201
    sandbox.state.clock.advance(timedelta(days=7, seconds=1).total_seconds())
    api.headers["Authorization"] = f"Bearer {await _token(api, 'SERVER_ACCESS')}"
    gone = await api.get(f"/users/{user_id}/auth_link")
    assert gone.status_code == 410
    _conforms("error", gone.json())

    feeds = BankFeeds(BanksConfig(api_base=sandbox.base_url + "/basiq"), BASIQ_API_KEY)
    try:
        assert (await feeds.link_state(user_id))["status"] == "expired"
    finally:
        await feeds.close()


async def test_consent_ui_refuses_an_expired_client_token(
    sandbox: SandboxServer, api: httpx.AsyncClient
) -> None:
    user_id = (await api.post("/users", json={"email": "c@client.example"})).json()["id"]
    client_token = await _token(api, "CLIENT_ACCESS", user_id)
    sandbox.state.clock.advance(3601)
    page = await api.get(f"/home?token={client_token}")
    assert page.status_code == 410
    assert (await api.get("/home?token=nonsense")).status_code == 404
