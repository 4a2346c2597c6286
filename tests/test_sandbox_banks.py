"""The Basiq-like bank-feed provider over real loopback HTTP: what invitations rely on."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.common.loopback import LoopbackServer
from clientlink.sandbox import SandboxServer
from clientlink.sandbox.basiq import BASIQ_API_KEY

SEVEN_DAYS = 7 * 24 * 3600
COMMBANK, NAB, HOOLI = "AU00101", "AU00401", "AU00000"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=3) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


async def server_token(http: httpx.AsyncClient) -> str:
    response = await http.post(
        "/basiq/token",
        data={"scope": "SERVER_ACCESS"},
        headers={"Authorization": f"Basic {BASIQ_API_KEY}", "basiq-version": "3.0"},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
async def api(sandbox: SandboxServer, http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {await server_token(http)}"}
    async with httpx.AsyncClient(
        base_url=sandbox.base_url + "/basiq", headers=headers, timeout=10
    ) as client:
        yield client


async def new_user(api: httpx.AsyncClient) -> str:
    response = await api.post("/users", json={"email": "t@fund.example", "mobile": "+61491570156"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def new_link(api: httpx.AsyncClient, user_id: str, banks: list[str]) -> dict[str, Any]:
    response = await api.post(f"/users/{user_id}/auth_link", json={"institutions": banks})
    assert response.status_code == 201, response.text
    return response.json()


def opaque_of(link: dict[str, Any]) -> str:
    return link["url"].rsplit("/", 1)[1]


async def complete(http: httpx.AsyncClient, link: dict[str, Any], **body: Any) -> httpx.Response:
    return await http.post(f"/_sandbox/basiq/consent/{opaque_of(link)}/complete", json=body)


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    response = await http.post("/_sandbox/clock", json={"advance_seconds": seconds})
    assert response.status_code == 200


async def test_institutions_list_australian_banks_with_basiq_ids(api: httpx.AsyncClient) -> None:
    body = (await api.get("/institutions")).json()
    assert body["type"] == "list" and len(body["data"]) >= 30
    assert all(re.fullmatch(r"AU\d{5}", inst["id"]) for inst in body["data"])
    commbank = next(inst for inst in body["data"] if inst["id"] == COMMBANK)
    assert commbank["name"] == "Commonwealth Bank of Australia"
    assert (commbank["shortName"], commbank["institutionType"], commbank["tier"]) == (
        "CommBank",
        "Bank",
        "1",
    )


async def test_token_needs_the_api_key_and_version(http: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Basic nope", "basiq-version": "3.0"}
    wrong = await http.post("/basiq/token", data={"scope": "SERVER_ACCESS"}, headers=headers)
    assert wrong.status_code == 401 and wrong.json()["data"][0]["code"] == "unauthorized-access"
    headers = {"Authorization": f"Basic {BASIQ_API_KEY}"}
    unversioned = await http.post("/basiq/token", data={"scope": "SERVER_ACCESS"}, headers=headers)
    assert unversioned.status_code == 400
    body = await server_token(http)
    assert len(body) > 20


async def test_token_lasts_an_hour_on_the_sandbox_clock(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    assert (await api.get("/institutions")).status_code == 200
    await advance(http, 3601)
    assert (await api.get("/institutions")).status_code == 401


async def test_client_token_reaches_only_its_own_user(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    mine, other = await new_user(api), await new_user(api)
    response = await http.post(
        "/basiq/token",
        data={"scope": "CLIENT_ACCESS", "userId": mine},
        headers={"Authorization": f"Basic {BASIQ_API_KEY}", "basiq-version": "3.0"},
    )
    assert response.json()["token_type"] == "Bearer" and response.json()["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await http.get(f"/basiq/users/{mine}", headers=headers)).status_code == 200
    assert (await http.get(f"/basiq/users/{other}", headers=headers)).status_code == 403


async def test_user_is_created_with_email_and_mobile(api: httpx.AsyncClient) -> None:
    response = await api.post("/users", json={"email": "a@b.example", "mobile": "+61491570156"})
    assert response.status_code == 201
    user = response.json()
    assert user["type"] == "user" and user["email"] == "a@b.example"
    assert user["mobile"] == "+61491570156"
    assert (await api.post("/users", json={})).status_code == 400


async def test_auth_link_preselects_the_requested_banks_on_the_consent_page(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    link = await new_link(api, user_id, [COMMBANK, NAB])
    assert link["type"] == "auth_link" and link["institutions"] == [COMMBANK, NAB]
    assert link["url"].startswith(str(http.base_url).rstrip("/") + "/basiq/consent/")
    assert (link["opened"], link["used"], link["status"]) == (False, False, "active")
    page = await http.get(link["url"])
    assert page.status_code == 200
    assert 'value="AU00101" checked' in page.text and 'value="AU00401" checked' in page.text
    assert "Commonwealth Bank of Australia" in page.text
    current = (await api.get(f"/users/{user_id}/auth_link")).json()
    assert current["opened"] is True and current["openedAt"] is not None


async def test_consent_form_connects_the_banks_with_demo_credentials(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    link = await new_link(api, user_id, [COMMBANK])
    form = {"institution": COMMBANK, f"login-{COMMBANK}": "demo", f"password-{COMMBANK}": "x"}
    refused = await http.post(link["url"], data=form)
    assert refused.status_code == 400 and "not accepted" in refused.text
    form[f"password-{COMMBANK}"] = "demo"
    done = await http.post(link["url"], data=form)
    assert done.status_code == 200 and 'id="connected"' in done.text
    [conn] = (await api.get(f"/users/{user_id}/connections")).json()["data"]
    assert conn["status"] == "active" and conn["institution"]["id"] == COMMBANK


async def test_completing_consent_creates_active_connections_and_uses_the_link(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    link = await new_link(api, user_id, [COMMBANK, NAB])
    response = await complete(http, link)
    assert response.status_code == 200, response.text
    listed = (await api.get(f"/users/{user_id}/connections")).json()
    assert listed["type"] == "list"
    assert {(c["institution"]["id"], c["status"]) for c in listed["data"]} == {
        (COMMBANK, "active"),
        (NAB, "active"),
    }
    assert all(c["createdDate"] and c["lastUsed"] for c in listed["data"])
    current = (await api.get(f"/users/{user_id}/auth_link")).json()
    assert (current["opened"], current["used"], current["status"]) == (True, True, "used")


async def test_link_is_single_use(api: httpx.AsyncClient, http: httpx.AsyncClient) -> None:
    link = await new_link(api, await new_user(api), [HOOLI])
    assert (await complete(http, link)).status_code == 200
    again = await complete(http, link)
    assert again.status_code == 410 and again.json()["reason"] == "used"
    page = await http.get(link["url"])
    assert page.status_code == 410 and "already been used" in page.text


async def test_link_expires_after_seven_days_on_the_sandbox_clock(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    link = await new_link(api, user_id, [HOOLI])
    await advance(http, SEVEN_DAYS - 60)
    assert (await http.get(link["url"])).status_code == 200
    await advance(http, 120)
    page = await http.get(link["url"])
    assert page.status_code == 410 and "expired" in page.text
    assert (await complete(http, link)).json()["reason"] == "expired"


async def test_only_the_newest_link_of_a_user_works(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    old = await new_link(api, user_id, [COMMBANK])
    new = await new_link(api, user_id, [NAB])
    page = await http.get(old["url"])
    assert page.status_code == 410 and "replaced by a newer one" in page.text
    assert (await complete(http, new)).status_code == 200
    current = (await api.get(f"/users/{user_id}/auth_link")).json()
    assert current["id"] == new["id"]


async def test_unknown_link_says_so(http: httpx.AsyncClient) -> None:
    page = await http.get("/basiq/consent/not-a-link")
    assert page.status_code == 404 and "not valid" in page.text


async def test_invalidate_marks_the_connection_invalid_and_reconnecting_restores_it(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    [conn] = (await complete(http, await new_link(api, user_id, [NAB]))).json()["connections"]
    broken = await http.post(f"/_sandbox/basiq/connections/{conn['id']}/invalidate")
    assert broken.status_code == 200 and broken.json()["status"] == "invalid"
    [listed] = (await api.get(f"/users/{user_id}/connections")).json()["data"]
    assert listed["status"] == "invalid"
    [again] = (await complete(http, await new_link(api, user_id, [NAB]))).json()["connections"]
    assert (again["id"], again["status"]) == (conn["id"], "active")


async def test_webhooks_report_created_and_invalidated_connections(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    events: list[dict[str, Any]] = []
    signed: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: Request) -> Response:
        events.append(await request.json())
        signed.append((await request.body(), dict(request.headers)))
        return Response(status_code=200)

    receiver = LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        assert (await http.post("/_sandbox/basiq/webhook", json={"url": url})).status_code == 200
        remote = await http.post("/_sandbox/basiq/webhook", json={"url": "https://x.example/"})
        assert remote.status_code == 400
        user_id = await new_user(api)
        [conn] = (await complete(http, await new_link(api, user_id, [NAB]))).json()["connections"]
        await http.post(f"/_sandbox/basiq/connections/{conn['id']}/invalidate")
        for _ in range(100):
            if len(events) == 3:
                break
            await asyncio.sleep(0.05)
        secret = (await http.get("/_sandbox/basiq/webhook")).json()["secret"]
        # Basiq v3's message: {eventTypeId, eventId, links}; the receiver follows the links.
        assert [e["eventTypeId"] for e in events] == [
            "consent.created",
            "connection.created",
            "connection.invalidated",
        ]
        for body in events:
            assert set(body) == {"eventTypeId", "eventId", "links"}
            fetched = (await api.get(body["links"]["self"])).json()
            assert fetched["id"] == body["eventId"] and fetched["userId"] == user_id
            assert (await api.get(body["links"]["eventEntity"])).status_code == 200
        assert events[2]["links"]["eventEntity"].endswith(f"/connections/{conn['id']}")
    finally:
        await receiver.stop()
    # Standard Webhooks: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
    key = base64.b64decode(secret.removeprefix("whsec_"))
    for raw, headers in signed:
        signed_content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
        digest = hmac.new(key, signed_content, hashlib.sha256).digest()
        assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


async def test_admin_lists_users_with_links_and_connections(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    user_id = await new_user(api)
    link = await new_link(api, user_id, [HOOLI])
    await complete(http, link)
    [user] = (await http.get("/_sandbox/basiq/users")).json()
    assert user["id"] == user_id and user["auth_link"]["used"] is True
    assert user["auth_link"]["opaque"] == opaque_of(link)
    assert user["connection_details"][0]["institution"]["id"] == HOOLI


async def test_basiq_faults_answer_with_basiq_errors(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    rule = {"kind": "503", "target": "banks", "count": 1}
    assert (await http.post("/_sandbox/faults", json=rule)).status_code == 201
    response = await api.get("/institutions")
    assert response.status_code == 503
    assert response.json()["data"][0]["code"] == "service-unavailable"
    assert (await api.get("/institutions")).status_code == 200
