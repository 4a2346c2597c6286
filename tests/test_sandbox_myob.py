"""The MYOB Business-like sandbox over real loopback HTTP: what an OAuth client relies on."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clientlink.sandbox import SandboxServer, approve
from clientlink.sandbox.accounts import (
    DEMO_PASSWORD,
    DEMO_USER,
    MYOB_CLIENT_ID,
    MYOB_CLIENT_SECRET,
)
from clientlink.sandbox.myob import business_id_of
from clientlink.sandbox.testkit import myob_authorize_url

REDIRECT_URI = "http://127.0.0.1:53691/myob/callback"
TOKEN = "/myob/oauth2/v1/authorize"
API = "/myob/accountright"
DAY = 86400


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=12) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def consent(sandbox, http, org=None, **url_args: Any) -> dict[str, str]:
    org = org or sandbox.state.orgs[0]
    url = myob_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, **url_args)
    final = await approve(url, orgs=[org.tenant_id], http=http)
    assert final.startswith(REDIRECT_URI + "?"), final
    return query(final)


async def exchange(http, code: str) -> httpx.Response:
    return await http.post(
        TOKEN,
        data={
            "client_id": MYOB_CLIENT_ID,
            "client_secret": MYOB_CLIENT_SECRET,
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "grant_type": "authorization_code",
        },
    )


async def refresh(http, refresh_token: str) -> httpx.Response:
    return await http.post(
        TOKEN,
        data={
            "client_id": MYOB_CLIENT_ID,
            "client_secret": MYOB_CLIENT_SECRET,
            "refresh_token": refresh_token,
            "grant_type": "refresh_token",
        },
    )


def api_headers(access_token: str, **override: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {access_token}",
        "x-myobapi-key": MYOB_CLIENT_ID,
        "x-myobapi-version": "v2",
    }
    return {k: v for k, v in (headers | override).items() if v}


async def test_the_token_answer_is_myobs_with_expires_in_as_a_string(sandbox, http):
    params = await consent(sandbox, http)
    response = await exchange(http, params["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == "1200"
    assert body["scope"] == "sme-company-file sme-company-settings"
    assert body["user"]["username"] == DEMO_USER
    assert re.fullmatch(r"[0-9a-f-]{36}", body["user"]["uid"])
    again = await exchange(http, params["code"])
    assert again.json()["error"] == "invalid_grant"  # codes are single-use


async def test_the_redirect_names_the_file_only_when_consent_was_prompted(sandbox, http):
    org = sandbox.state.orgs[3]
    prompted = await consent(sandbox, http, org)
    assert prompted["businessId"] == business_id_of(org)
    assert prompted["businessName"] == org.name
    assert prompted["state"] == "st-myob"
    plain = await consent(sandbox, http, org, prompt=None)
    assert "code" in plain and "businessId" not in plain and "businessName" not in plain


async def test_the_file_page_offers_one_file_by_radio_button_sorted_by_name(sandbox, http):
    url = myob_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI)
    page = await http.get(url)
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    await http.post(
        "/myob/oauth2/account/authorize/sign-in",
        data={"txn": txn, "email": DEMO_USER, "password": DEMO_PASSWORD},
    )
    code = sandbox.state.myob.current_totp(DEMO_USER)
    files = await http.post(
        "/myob/oauth2/account/authorize/authenticator", data={"txn": txn, "code": code}
    )
    radios = re.findall(r'type="radio"[^>]*data-name="([^"]*)"', files.text)
    assert 'type="checkbox"' not in files.text
    names = sorted(org.name for org in sandbox.state.orgs)
    assert [html.unescape(name) for name in radios] == sorted(names, key=str.casefold)
    two = [business_id_of(org) for org in sandbox.state.orgs[:2]]
    refused = await http.post(
        "/myob/oauth2/account/authorize/company-files", data={"txn": txn, "tenant": two}
    )
    assert "Select one company" in refused.text


async def test_legacy_and_unknown_scopes_are_refused_for_a_new_key(sandbox, http):
    for scope, needle in (("CompanyFile la.global", "12 March 2025"), ("sme-nothing", "Unknown")):
        url = myob_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, scope=scope)
        response = await http.get(url)
        assert response.status_code == 302
        params = query(response.headers["location"])
        assert params["error"] == "invalid_scope" and needle in params["error_description"]


async def test_codes_live_three_minutes(sandbox, http):
    params = await consent(sandbox, http)
    sandbox.state.clock.advance(181)
    response = await exchange(http, params["code"])
    assert response.json()["error"] == "invalid_grant"


async def test_refresh_rotates_and_the_previous_token_stops_at_once(sandbox, http):
    params = await consent(sandbox, http)
    first = (await exchange(http, params["code"])).json()
    second = await refresh(http, first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["expires_in"] == "1200"
    replay = await refresh(http, first["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"


async def test_a_grant_ends_a_year_after_consent_whatever_the_refreshes(sandbox, http):
    params = await consent(sandbox, http)
    token = (await exchange(http, params["code"])).json()["refresh_token"]
    for _ in range(3):  # refreshed every 120 days: still, the year is the end
        sandbox.state.clock.advance(120 * DAY)
        response = await refresh(http, token)
        assert response.status_code == 200
        token = response.json()["refresh_token"]
    sandbox.state.clock.advance(6 * DAY)
    response = await refresh(http, token)
    assert response.status_code == 400
    assert "hard expiry" in response.json()["error_description"]


async def test_company_information_needs_the_key_the_version_and_the_consented_file(sandbox, http):
    org, other = sandbox.state.orgs[:2]
    params = await consent(sandbox, http, org)
    access = (await exchange(http, params["code"])).json()["access_token"]
    cf_uri = f"{API}/{params['businessId']}"
    ok = await http.get(cf_uri + "/Company", headers=api_headers(access))
    assert ok.status_code == 200
    company = ok.json()
    assert company["CompanyName"] == org.name
    assert company["ABNOrTFN"] == sandbox.state.myob.company_file(org).abn_or_tfn
    assert set(company) >= {"SerialNumber", "ABNBranch", "ACN", "EmailAddress"}
    assert company["SerialNumber"].startswith("61")
    file = await http.get(cf_uri + "/", headers=api_headers(access))
    assert file.json()["CompanyFile"]["Id"] == params["businessId"]
    listing = await http.get(API + "/", headers=api_headers(access))
    assert listing.json() == []  # new keys: no file list

    no_key = await http.get(
        cf_uri + "/Company", headers=api_headers(access, **{"x-myobapi-key": ""})
    )
    assert (no_key.status_code, no_key.json()["Errors"][0]["Name"]) == (403, "DeveloperInactive")
    old = await http.get(
        cf_uri + "/Company", headers=api_headers(access, **{"x-myobapi-version": "v1"})
    )
    assert old.status_code == 400
    elsewhere = await http.get(
        f"{API}/{business_id_of(other)}/Company", headers=api_headers(access)
    )
    assert (elsewhere.status_code, elsewhere.json()["Errors"][0]["Name"]) == (403, "AccessDenied")
    bad = await http.get(cf_uri + "/Company", headers=api_headers("nope"))
    assert bad.status_code == 401


async def test_calls_over_the_quoted_eight_a_second_get_developer_over_qps(sandbox, http):
    params = await consent(sandbox, http)
    access = (await exchange(http, params["code"])).json()["access_token"]
    url = f"{API}/{params['businessId']}/Company"
    moment = sandbox.state.clock.now().replace(microsecond=0)
    answers = []
    for _ in range(9):  # all inside one second of the sandbox's clock
        sandbox.state.clock.set(moment)
        answers.append(await http.get(url, headers=api_headers(access)))
    assert [a.status_code for a in answers[:8]] == [200] * 8
    assert answers[8].status_code == 403
    assert answers[8].json()["Errors"][0] == answers[8].json()["Errors"][0] | {
        "Name": "RateLimitError",
        "Message": "Developer Over Qps",
    }


async def test_a_fault_rule_for_myob_answers_in_myobs_shape(sandbox, http):
    params = await consent(sandbox, http)
    access = (await exchange(http, params["code"])).json()["access_token"]
    rule = await http.post(
        "/_sandbox/faults", json={"kind": "503", "target": "api", "provider": "myob", "count": 1}
    )
    assert rule.status_code == 201
    response = await http.get(f"{API}/{params['businessId']}/Company", headers=api_headers(access))
    assert response.status_code == 503
    assert response.json()["Errors"][0]["Name"] == "ServiceUnavailable"


async def test_admin_edits_change_the_company_information(sandbox, http):
    org = sandbox.state.orgs[0]
    business_id = business_id_of(org)
    edited = await http.post(
        f"/_sandbox/myob/companies/{business_id}", json={"company_name": "Marsh Super Fund"}
    )
    assert edited.json()["CompanyName"] == "Marsh Super Fund"
    bad = await http.post(f"/_sandbox/myob/companies/{business_id}", json={"type": "SMSF"})
    assert bad.status_code == 400 and "unknown company fields" in bad.json()["error"]
    unknown = await http.post("/_sandbox/myob/companies/nope", json={"company_name": "x"})
    assert unknown.status_code == 404
    files = (await http.get("/_sandbox/myob/companies")).json()
    assert {f["business_id"]: f["CompanyName"] for f in files}[business_id] == "Marsh Super Fund"
