"""The sandbox's BGL Simple Fund 360 over real HTTP, as a plain OAuth client would use it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from clientlink.sandbox.accounts import BGL_CLIENT_ID, BGL_CLIENT_SECRET
from clientlink.sandbox.approve import approve
from clientlink.sandbox.bgl_identity import TOKEN_PATH
from clientlink.sandbox.seed import abn_is_valid
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.testkit import bgl_authorize_url

REDIRECT = "http://127.0.0.1:8749/callback"
BASIC = (BGL_CLIENT_ID, BGL_CLIENT_SECRET)


@pytest.fixture
async def bgl():
    async with SandboxServer(org_count=5, smsf_entity_count=10) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            yield server, http


async def _code(server: SandboxServer) -> str:
    redirect = await approve(bgl_authorize_url(server.base_url, redirect_uri=REDIRECT))
    query = parse_qs(urlsplit(redirect).query)
    assert query["state"] == ["st-bgl"]
    return query["code"][0]


def _token_url(**params: str) -> str:
    return f"{TOKEN_PATH}?{urlencode(params)}"


async def test_code_exchange_takes_the_query_string_and_basic_auth_only(bgl):
    server, http = bgl
    code = await _code(server)
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    in_body = await http.post(TOKEN_PATH, data=grant, auth=BASIC)
    assert in_body.status_code == 400
    assert "query string" in in_body.json()["error_description"]
    no_basic = await http.post(_token_url(**grant, client_id=BGL_CLIENT_ID))
    assert no_basic.status_code == 401 and no_basic.json()["error"] == "invalid_client"
    # Neither refusal burnt the code.
    answer = await http.post(_token_url(**grant, scope="audit"), auth=BASIC)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 7 * 24 * 3600
    assert len(body["access_token"]) == len(body["refresh_token"]) == 36  # UUIDs
    again = await http.post(_token_url(**grant), auth=BASIC)
    assert again.json()["error"] == "invalid_grant"


async def test_fund_list_and_details_in_bgls_shape(bgl):
    server, http = bgl
    code = await _code(server)
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    tokens = (await http.post(_token_url(**grant), auth=BASIC)).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    funds = (await http.get("/bgl/fund/list", headers=bearer)).json()["funds"]
    assert len(funds) == 10
    keys = {"fundID", "fundCode", "fundName", "entityType", "code", "sfCode", "ABN"}
    assert all(keys | {"firmName", "firm", "fundEmail"} == set(f) for f in funds)
    assert all(abn_is_valid(f["ABN"]) for f in funds)
    one = funds[0]
    details = (await http.get(f"/bgl/sf/funds/{one['fundID']}", headers=bearer)).json()
    assert (details["name"], details["abn"], details["entityType"], details["fundCode"]) == (
        one["fundName"],
        one["ABN"],
        one["entityType"],
        one["fundCode"],
    )
    missing = await http.get("/bgl/sf/funds/nope", headers=bearer)
    assert missing.status_code == 404
    bad = await http.get("/bgl/fund/list", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"

    # The firm clears an email and its ABN: the list shows null and "".
    changed = await http.post(
        f"/_sandbox/bgl/funds/{one['fundID']}", json={"email": None, "abn": ""}
    )
    assert changed.status_code == 200
    again = (await http.get("/bgl/fund/list", headers=bearer)).json()["funds"][0]
    assert (again["fundEmail"], again["ABN"]) == (None, "")
    refused = await http.post(f"/_sandbox/bgl/funds/{one['fundID']}", json={"abn": "123"})
    assert refused.status_code == 400 and "ABN" in refused.json()["error"]


async def test_refresh_rotates_and_refusals_say_removed_or_expired(bgl):
    server, http = bgl
    code = await _code(server)
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    first = (await http.post(_token_url(**grant), auth=BASIC)).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = (await http.post(_token_url(**refresh), auth=BASIC)).json()
    assert second["refresh_token"] != first["refresh_token"]
    reused = (await http.post(_token_url(**refresh), auth=BASIC)).json()
    assert reused == {"error": "invalid_grant", "error_description": "Invalid refresh token"}

    await http.post("/_sandbox/clock", json={"advance_seconds": 31 * 24 * 3600})
    expired = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    answer = (await http.post(_token_url(**expired), auth=BASIC)).json()
    assert answer["error_description"] == "Invalid refresh token (expired)"
