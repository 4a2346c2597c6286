"""The Class Super-like sandbox over real loopback HTTP: what an OAuth client relies on."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clientlink.sandbox import SandboxServer, approve
from clientlink.sandbox.accounts import DEMO_PASSWORD, DEMO_USER, TOTP_SECRET
from clientlink.sandbox.approve import ApproveError, _parse, _sandbox_now_totp
from clientlink.sandbox.classsuper import CLASS_CLIENT_ID, CLASS_CLIENT_SECRET, LIMITED_USER
from clientlink.sandbox.seed import abn_is_valid
from clientlink.sandbox.testkit import CLASS_SCOPE, class_authorize_url, pkce_pair

REDIRECT_URI = "http://127.0.0.1:53691/class/callback"
TOKEN = "/class/connect/token"
REVOKE = "/class/connect/revocation"
API = "/class/api/1.0"
ACCEPT = {"Accept": "application/vnd.superip.action.v1+json"}


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=5) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def basic(client_id: str = CLASS_CLIENT_ID, secret: str = CLASS_CLIENT_SECRET) -> dict:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def businesses(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await http.get("/_sandbox/class/businesses")).json()


async def connect(
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    business: str | None,
    *,
    choose: str | None = None,
    user: str = DEMO_USER,
) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    url = class_authorize_url(
        sandbox.base_url, redirect_uri=REDIRECT_URI, business=business, code_challenge=challenge
    )
    final = await approve(url, orgs=[choose] if choose else None, user=user, http=http)
    params = query(final)
    assert params.get("state") == "st-class" and "code" in params, final
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    response = await http.post(TOKEN, data=form, headers=basic())
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await http.post(TOKEN, data=form, headers=basic())


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    await http.post("/_sandbox/clock", json={"advance_seconds": seconds})


async def test_the_practice_has_three_businesses_of_valid_australian_funds(http):
    found = await businesses(http)
    assert [len(b["funds"]) for b in found] == [12, 7, 4]
    funds = [fund for b in found for fund in b["funds"]]
    assert all(abn_is_valid(fund["abn"]) for fund in funds)
    assert len({fund["id"] for fund in funds}) == len(funds)
    assert {fund["entityType"] for fund in funds} >= {"SMSF"}
    assert any("Super" in fund["name"] or "Fund" in fund["name"] for fund in funds)
    info = (await http.get("/_sandbox/info")).json()["class"]
    assert info["access"][LIMITED_USER] == [found[0]["code"]]
    assert info["access"][DEMO_USER] is None


async def test_a_sign_in_naming_a_business_grants_it_with_class_lifetimes(sandbox, http):
    code = (await businesses(http))[1]["code"]
    body = await connect(sandbox, http, code)
    assert body["expires_in"] == 900 and body["token_type"] == "Bearer"
    assert f"target:b/{code}" in body["scope"].split()
    who = claims(body["id_token"])
    assert who["email"] == DEMO_USER and who["name"] and who["sub"]
    assert who["aud"] == CLASS_CLIENT_ID
    grant = next(g for g in (await http.get("/_sandbox/grants")).json() if g["provider"] == "class")
    assert grant["realm_id"] == code
    # 30 days for the refresh token.
    assert grant["refresh_expires_at"] > grant["created_at"]


async def test_without_a_business_the_person_chooses_one_and_the_scope_names_it(sandbox, http):
    found = await businesses(http)
    chosen = found[2]
    body = await connect(sandbox, http, None, choose=chosen["name"])
    assert f"target:b/{chosen['code']}" in body["scope"].split()


async def offered_businesses(sandbox, http, user: str) -> list[str]:
    """Walk to the business selection page as `user`; the names its radio buttons offer."""
    url = class_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI)
    page = await http.get(url)
    form = _parse(page, "sign-in", "authorize")
    page = await http.post(
        form.action, data=form.fields | {"email": user, "password": DEMO_PASSWORD}
    )
    form = _parse(page, "authenticator", "sign-in")
    code = await _sandbox_now_totp(http, sandbox.base_url, TOTP_SECRET)
    page = await http.post(form.action, data=form.fields | {"code": code})
    form = _parse(page, "select-organisations", "authenticator")
    assert form.single_choice  # one business per authorisation: radio buttons
    return [choice.name for choice in form.choices]


async def test_the_selection_page_offers_reachable_businesses_sorted(sandbox, http):
    found = await businesses(http)
    everyone = await offered_businesses(sandbox, http, DEMO_USER)
    assert everyone == sorted((b["name"] for b in found), key=str.casefold)
    assert await offered_businesses(sandbox, http, LIMITED_USER) == [found[0]["name"]]
    url = class_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI)
    with pytest.raises(ApproveError, match="not available"):
        await approve(url, orgs=[found[1]["name"]], user=LIMITED_USER, http=http)


async def test_a_business_the_person_cannot_reach_is_refused_with_a_clear_page(sandbox, http):
    other = (await businesses(http))[1]["code"]
    url = class_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, business=other)
    with pytest.raises(ApproveError, match="don't have access to the Class business"):
        await approve(url, user=LIMITED_USER, http=http)


async def test_bad_scopes_are_refused_on_the_redirect(sandbox, http):
    for scope, why in (
        ("openid offline_access", "access specifier"),
        ("offline_access fund.read", "openid is required"),
        (f"{CLASS_SCOPE} target:b/A target:b/B", "one business"),
        (f"{CLASS_SCOPE} accounting.settings", "Unknown scope"),
    ):
        url = class_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, scope=scope)
        response = await http.get(url)
        assert response.status_code == 302
        params = query(response.headers["location"])
        assert params["error"] == "invalid_scope" and why in params["error_description"]


async def test_refresh_tokens_are_single_use_with_a_short_grace(sandbox, http):
    code = (await businesses(http))[0]["code"]
    first = (await connect(sandbox, http, code))["refresh_token"]
    second = await refresh(http, first)
    assert second.status_code == 200 and second.json()["refresh_token"] != first
    assert f"target:b/{code}" in second.json()["scope"]
    # Within the grace (60 s) the old one still answers: a lost answer can be recovered.
    await advance(http, 30)
    again = await refresh(http, first)
    assert again.status_code == 200
    await advance(http, 31)
    late = await refresh(http, first)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert (await refresh(http, again.json()["refresh_token"])).status_code == 200


async def test_a_refresh_token_dies_after_30_days(sandbox, http):
    code = (await businesses(http))[0]["code"]
    token = (await connect(sandbox, http, code))["refresh_token"]
    await advance(http, 30 * 86400 - 60)
    fresh = await refresh(http, token)
    assert fresh.status_code == 200
    await advance(http, 30 * 86400 + 1)
    dead = await refresh(http, fresh.json()["refresh_token"])
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"


async def test_without_offline_access_there_is_no_refresh_token(sandbox, http):
    verifier, challenge = pkce_pair()
    code = (await businesses(http))[0]["code"]
    url = class_authorize_url(
        sandbox.base_url,
        redirect_uri=REDIRECT_URI,
        business=code,
        scope="openid fund.read",
        code_challenge=challenge,
    )
    params = query(await approve(url, http=http))
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    body = (await http.post(TOKEN, data=form, headers=basic())).json()
    assert "refresh_token" not in body and body["access_token"]


async def test_the_api_lists_the_granted_business_funds_only(sandbox, http):
    found = await businesses(http)
    code = found[1]["code"]
    access = (await connect(sandbox, http, code))["access_token"]
    bearer = {"Authorization": f"Bearer {access}"} | ACCEPT
    listed = await http.get(f"{API}/b/{code}/fund-data/fund-list", headers=bearer)
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith("application/vnd.superip.action.v1+json")
    names = [fund["name"] for fund in listed.json()]
    assert sorted(names, key=str.casefold) == names and len(names) == 7
    fund = listed.json()[0]
    detail = await http.get(f"{API}/b/{code}/fund-data/fund-detail/{fund['id']}", headers=bearer)
    assert detail.json() == fund
    other = found[0]["code"]
    forbidden = await http.get(f"{API}/b/{other}/fund-data/fund-list", headers=bearer)
    assert forbidden.status_code == 403 and forbidden.json()["status"] == 403
    missing = await http.get(f"{API}/b/{code}/fund-data/fund-detail/nope", headers=bearer)
    assert missing.status_code == 404
    xml = await http.get(f"{API}/b/{code}/fund-data/fund-list", headers={"Accept": "text/xml"})
    assert xml.status_code == 406 and "Accept" in xml.json()["detail"]
    await advance(http, 15 * 60)
    expired = await http.get(f"{API}/b/{code}/fund-data/fund-list", headers=bearer)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


async def test_revocation_and_admin_revoke_end_the_grant(sandbox, http):
    code = (await businesses(http))[0]["code"]
    body = await connect(sandbox, http, code)
    response = await http.post(REVOKE, data={"token": body["refresh_token"]}, headers=basic())
    assert response.status_code == 200
    assert (await refresh(http, body["refresh_token"])).status_code == 400
    second = await connect(sandbox, http, code)
    grants = [g for g in (await http.get("/_sandbox/grants")).json() if not g["revoked"]]
    await http.post(f"/_sandbox/grants/{grants[0]['grant_id']}/revoke")
    assert (await refresh(http, second["refresh_token"])).json()["error"] == "invalid_grant"


async def test_admin_changes_a_fund_and_the_api_shows_it(sandbox, http):
    business = (await businesses(http))[0]
    fund = business["funds"][0]
    changed = await http.post(
        f"/_sandbox/class/funds/{fund['id']}",
        json={"name": "Harper Retirement Fund", "entity_type": "Trust"},
    )
    assert changed.status_code == 200
    access = (await connect(sandbox, http, business["code"]))["access_token"]
    bearer = {"Authorization": f"Bearer {access}"} | ACCEPT
    url = f"{API}/b/{business['code']}/fund-data/fund-detail/{fund['id']}"
    shown = (await http.get(url, headers=bearer)).json()
    assert shown["name"] == "Harper Retirement Fund" and shown["entityType"] == "Trust"
    bad = await http.post(f"/_sandbox/class/funds/{fund['id']}", json={"colour": "red"})
    assert bad.status_code == 400
    unknown = await http.post("/_sandbox/class/funds/nope", json={"name": "x"})
    assert unknown.status_code == 404


async def test_faults_answer_in_class_shape(sandbox, http):
    rule = {"kind": "503", "target": "token", "provider": "class", "count": 1}
    assert (await http.post("/_sandbox/faults", json=rule)).status_code == 201
    response = await refresh(http, "whatever")
    assert response.status_code == 503 and response.json()["status"] == 503
    assert (await refresh(http, "whatever")).status_code == 400
