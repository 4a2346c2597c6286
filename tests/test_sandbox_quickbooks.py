"""The QuickBooks Online-like sandbox over real loopback HTTP: what an OAuth client relies on."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clientlink.sandbox import SandboxServer, approve
from clientlink.sandbox.accounts import (
    DEMO_PASSWORD,
    DEMO_USER,
    QUICKBOOKS_CLIENT_ID,
    QUICKBOOKS_CLIENT_SECRET,
)
from clientlink.sandbox.seed import SeedOrg
from clientlink.sandbox.testkit import pkce_pair, quickbooks_authorize_url

REDIRECT_URI = "http://127.0.0.1:53690/qbo/callback"
AUTHORIZE = "/quickbooks/connect/oauth2"
TOKEN = "/quickbooks/oauth2/v1/tokens/bearer"
REVOKE = "/quickbooks/oauth2/v1/tokens/revoke"
HARD_EXPIRY_HEADER = {"x-include-refresh-token-hard-expires-in": "true"}
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


def basic(client_id: str = QUICKBOOKS_CLIENT_ID, secret: str = QUICKBOOKS_CLIENT_SECRET) -> dict:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def authorize(
    sandbox: SandboxServer, http: httpx.AsyncClient, org: SeedOrg | None = None, **url_args: Any
) -> dict[str, str]:
    url = quickbooks_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, **url_args)
    final = await approve(url, orgs=[org.name] if org else None, http=http)
    assert final.startswith(REDIRECT_URI + "?"), final
    return query(final)


async def exchange(
    http: httpx.AsyncClient, code: str, headers: dict | None = None, **extra: str
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    return await http.post(TOKEN, data=form | extra, headers=basic() | (headers or {}))


async def connect(
    sandbox: SandboxServer, http: httpx.AsyncClient, org: SeedOrg | None = None
) -> dict[str, Any]:
    response = await exchange(http, (await authorize(sandbox, http, org))["code"])
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(
    http: httpx.AsyncClient, refresh_token: str, headers: dict | None = None
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await http.post(TOKEN, data=form, headers=basic() | (headers or {}))


async def company_info(http: httpx.AsyncClient, access_token: str, realm_id: str) -> httpx.Response:
    return await http.get(
        f"/quickbooks/v3/company/{realm_id}/companyinfo/{realm_id}",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    assert (await http.post("/_sandbox/clock", json={"advance_seconds": seconds})).is_success


async def only_grant(http: httpx.AsyncClient) -> dict[str, Any]:
    (grant,) = (await http.get("/_sandbox/grants")).json()
    return grant


def fault_message(response: httpx.Response) -> str:
    (error,) = response.json()["Fault"]["Error"]
    return error["Message"]


# -- the code flow --------------------------------------------------------------------------


async def test_code_flow_redirects_with_realm_id_and_gives_intuit_shaped_tokens(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[4]
    params = await authorize(sandbox, http, org)
    assert params["state"] == "st-qbo"
    assert params["realmId"] == org.realm_id
    assert re.fullmatch(r"\d{16,19}", params["realmId"])

    response = await exchange(http, params["code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert set(tokens) == {
        "token_type",
        "expires_in",
        "refresh_token",
        "x_refresh_token_expires_in",
        "access_token",
    }
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    # Intuit sends 8,726,400 (101 days), not 100 days (issue 10).
    assert tokens["x_refresh_token_expires_in"] == 8_726_400
    assert (await exchange(http, params["code"])).json()["error"] == "invalid_grant"


async def test_companyinfo_describes_the_connected_company(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[2]
    tokens = await connect(sandbox, http, org)
    response = await company_info(http, tokens["access_token"], org.realm_id)
    assert response.status_code == 200
    body = response.json()
    info = body["CompanyInfo"]
    assert info["CompanyName"] == org.name
    assert info["LegalName"] == org.legal_name
    assert info["Country"] == "AU"
    assert info["Id"] == "1"
    assert {"Line1", "City", "CountrySubDivisionCode", "PostalCode"} <= set(info["CompanyAddr"])
    assert {"Name": "ABN", "Value": org.abn} in info["NameValue"]
    assert datetime.fromisoformat(body["time"])


async def test_same_seed_businesses_are_quickbooks_companies_with_stable_realm_ids(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    orgs = (await http.get("/_sandbox/orgs")).json()
    assert [o["realm_id"] for o in orgs] == [org.realm_id for org in sandbox.state.orgs]
    assert len({o["realm_id"] for o in orgs}) == len(orgs)
    assert all(re.fullmatch(r"[1-9]\d{15,18}", o["realm_id"]) for o in orgs)


async def test_company_page_offers_radio_buttons_and_accepts_exactly_one_company(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = quickbooks_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI)
    page = (await http.get(url)).text

    def txn_of(html: str) -> str:
        return re.search(r'name="txn" value="([^"]+)"', html).group(1)

    txn = txn_of(page)
    await http.post(
        AUTHORIZE + "/sign-in", data={"txn": txn, "email": DEMO_USER, "password": DEMO_PASSWORD}
    )
    code = sandbox.state.quickbooks.current_totp(DEMO_USER)
    page = (await http.post(AUTHORIZE + "/authenticator", data={"txn": txn, "code": code})).text
    assert 'type="radio"' in page and 'type="checkbox"' not in page

    two = [org.realm_id for org in sandbox.state.orgs[:2]]
    refused = await http.post(AUTHORIZE + "/companies", data={"txn": txn, "tenant": two})
    assert "Select one company" in refused.text
    chosen = await http.post(AUTHORIZE + "/companies", data={"txn": txn, "tenant": two[:1]})
    assert 'id="consent"' in chosen.text

    # approve() on a one-company page takes only the first name it is given.
    names = [org.name for org in sandbox.state.orgs[1:3]]
    final = await approve(url, orgs=names, http=http)
    assert query(final)["realmId"] == sandbox.state.orgs[1].realm_id


async def test_pkce_s256_is_optional_but_checked_when_sent_and_plain_is_refused(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    verifier, challenge = pkce_pair()
    params = await authorize(sandbox, http, code_challenge=challenge)
    wrong = await exchange(http, params["code"], code_verifier=pkce_pair()[0])
    assert wrong.json()["error"] == "invalid_grant"
    params = await authorize(sandbox, http, code_challenge=challenge)
    assert (await exchange(http, params["code"], code_verifier=verifier)).status_code == 200

    plain = quickbooks_authorize_url(
        sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge="x" * 43, method="plain"
    )
    location = (await http.get(plain)).headers["location"]
    assert query(location)["error"] == "invalid_request"


async def test_token_endpoint_wants_basic_auth_with_the_right_secret(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "x"}
    wrong = await http.post(TOKEN, data=form, headers=basic(secret="wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    in_form = await http.post(TOKEN, data=form | {"client_id": QUICKBOOKS_CLIENT_ID})
    assert in_form.status_code == 401


# -- the API's answers to bad tokens and realms -----------------------------------------------


async def test_token_for_another_realm_gets_403_application_authorization_failed(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    connected, other = sandbox.state.orgs[0], sandbox.state.orgs[1]
    tokens = await connect(sandbox, http, connected)
    response = await company_info(http, tokens["access_token"], other.realm_id)
    assert response.status_code == 403
    # Intuit's gateway answers in lower case (issue 10).
    assert response.json() == {
        "fault": {
            "error": [
                {
                    "message": "message=ApplicationAuthorizationFailed; errorCode=003100; "
                    "statusCode=403",
                    "detail": None,
                    "code": "3100",
                    "element": None,
                }
            ],
            "type": "SERVICE",
        }
    }


async def test_access_token_expires_after_one_hour_with_401_authentication_failed_fault(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[0]
    tokens = await connect(sandbox, http, org)
    await advance(http, 3599)
    assert (await company_info(http, tokens["access_token"], org.realm_id)).status_code == 200
    await advance(http, 1)
    response = await company_info(http, tokens["access_token"], org.realm_id)
    assert response.status_code == 401
    fault = response.json()["fault"]
    assert fault["type"] == "AUTHENTICATION"
    (error,) = fault["error"]
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert error["code"] == "3200"
    assert error["detail"].startswith("Token expired: ")


# -- refresh tokens: rolling 101 days, kept a day, 24-hour overlap, hard end ------------------


async def test_refresh_extends_the_rolling_window_but_never_past_the_hard_end(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    await advance(http, 90 * DAY)
    renewed = (await refresh(http, tokens["refresh_token"])).json()
    assert renewed["x_refresh_token_expires_in"] == 8_726_400
    assert renewed["refresh_token"] != tokens["refresh_token"]

    grant = await only_grant(http)
    hard_end = datetime.fromisoformat(grant["hard_expires_at"])
    ten_days_on = sandbox.state.clock.now() + timedelta(days=10)
    response = await http.post(
        f"/_sandbox/grants/{grant['grant_id']}/hard-end", json={"at": ten_days_on.isoformat()}
    )
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["hard_expires_at"]) < hard_end

    capped = (await refresh(http, renewed["refresh_token"], HARD_EXPIRY_HEADER)).json()
    assert 10 * DAY - 5 <= capped["x_refresh_token_expires_in"] <= 10 * DAY
    assert capped["x_refresh_token_hard_expires_in"] == capped["x_refresh_token_expires_in"]


async def test_refresh_after_the_hard_end_is_invalid_grant(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    grant = await only_grant(http)
    at = (sandbox.state.clock.now() + timedelta(days=10)).isoformat()
    await http.post(f"/_sandbox/grants/{grant['grant_id']}/hard-end", json={"at": at})
    await advance(http, 9 * DAY)
    tokens = (await refresh(http, tokens["refresh_token"])).json()
    await advance(http, DAY + 1)
    response = await refresh(http, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "hard expiry" in response.json()["error_description"]


async def test_previous_refresh_token_works_for_24_hours_after_rotation(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    first = await connect(sandbox, http)
    # Within a day of issue Intuit hands the same value out again (issue 10).
    again = (await refresh(http, first["refresh_token"])).json()
    assert again["refresh_token"] == first["refresh_token"]
    await advance(http, DAY)
    second = (await refresh(http, first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    await advance(http, 23 * 3600)
    assert (await refresh(http, first["refresh_token"])).status_code == 200
    await advance(http, 2 * 3600)
    late = await refresh(http, first["refresh_token"])
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"
    listed = {t["token"]: t["state"] for t in (await http.get("/_sandbox/tokens")).json()}
    assert listed[first["refresh_token"]] == "expired"
    # The recovery within the overlap was handed the current value, which stays in use.
    assert listed[second["refresh_token"]] == "active"


async def test_hard_expiry_header_adds_seconds_to_the_five_year_hard_end(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    params = await authorize(sandbox, http)
    tokens = (await exchange(http, params["code"], HARD_EXPIRY_HEADER)).json()
    assert tokens["x_refresh_token_hard_expires_in"] == (5 * 365 + 1) * DAY
    without = (await refresh(http, tokens["refresh_token"])).json()
    assert "x_refresh_token_hard_expires_in" not in without


async def test_admin_lists_quickbooks_grants_with_provider_realm_and_hard_end(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[5]
    tokens = await connect(sandbox, http, org)
    grant = await only_grant(http)
    assert grant["provider"] == "quickbooks"
    assert grant["realm_id"] == org.realm_id
    assert grant["tenant_ids"] == [org.tenant_id]
    created = datetime.fromisoformat(grant["created_at"])
    assert datetime.fromisoformat(grant["hard_expires_at"]) - created == timedelta(days=1826)
    providers = {t["provider"] for t in (await http.get("/_sandbox/tokens")).json()}
    assert providers == {"quickbooks"}

    await http.post(f"/_sandbox/grants/{grant['grant_id']}/expire-refresh")
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    await http.post(f"/_sandbox/grants/{grant['grant_id']}/revoke")
    response = await company_info(http, tokens["access_token"], org.realm_id)
    assert response.status_code == 401


# -- revoke ---------------------------------------------------------------------------------


async def test_json_revoke_disconnects_the_whole_grant(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[0]
    tokens = await connect(sandbox, http, org)
    as_form = await http.post(REVOKE, data={"token": tokens["refresh_token"]}, headers=basic())
    assert as_form.status_code == 400
    response = await http.post(REVOKE, json={"token": tokens["refresh_token"]}, headers=basic())
    assert response.status_code == 200
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await company_info(http, tokens["access_token"], org.realm_id)).status_code == 401
    assert (await only_grant(http))["revoked"] is True
    unknown = await http.post(REVOKE, json={"token": "never-issued"}, headers=basic())
    assert unknown.status_code == 200


# -- limits, faults, stats --------------------------------------------------------------------


async def test_more_than_500_calls_a_minute_to_a_realm_get_429_throttle_exceeded(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    # Start at the top of a minute so every call lands in one fixed window.
    await http.post("/_sandbox/clock", json={"set": "2026-03-02T09:00:00+00:00"})
    org = sandbox.state.orgs[0]
    tokens = await connect(sandbox, http, org)
    for _ in range(50):
        batch = [company_info(http, tokens["access_token"], org.realm_id) for _ in range(10)]
        assert {r.status_code for r in await asyncio.gather(*batch)} == {200}
    refused = await company_info(http, tokens["access_token"], org.realm_id)
    assert refused.status_code == 429
    assert fault_message(refused) == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    assert refused.json()["Fault"]["Error"][0]["code"] == "003001"
    assert "retry-after" not in refused.headers
    await advance(http, 60)
    assert (await company_info(http, tokens["access_token"], org.realm_id)).status_code == 200


async def test_eleventh_concurrent_call_to_a_realm_gets_429_throttle_exceeded(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    # Long enough that all twelve are in flight together even on a loaded machine.
    await http.post("/_sandbox/limits", json={"api_latency_seconds": 1.5})
    org = sandbox.state.orgs[0]
    tokens = await connect(sandbox, http, org)
    responses = await asyncio.gather(
        *(company_info(http, tokens["access_token"], org.realm_id) for _ in range(12))
    )
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 2
    assert {fault_message(r) for r in responses if r.status_code == 429} == {
        "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    }
    stats = (await http.get("/_sandbox/stats")).json()
    assert stats["max_concurrency"][org.realm_id] == 10
    assert stats["rate_limited"] == 2


async def test_hang_after_on_the_token_endpoint_rotates_even_though_the_client_gave_up(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    await advance(http, DAY)  # past the day in which Intuit keeps the value
    rule = {"kind": "hang_after", "delay_seconds": 1.0, "target": "token", "count": 1}
    assert (await http.post("/_sandbox/faults", json=rule)).status_code == 201
    with pytest.raises(httpx.ReadTimeout):
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        await http.post(TOKEN, data=form, headers=basic(), timeout=0.2)

    listed = (await http.get("/_sandbox/tokens")).json()
    refresh_states = [t["state"] for t in listed if t["kind"] == "refresh"]
    assert sorted(refresh_states) == ["active", "rotated"]
    old = next(t for t in listed if t["token"] == tokens["refresh_token"])
    assert old["state"] == "rotated"
    # The client recovers with the old token inside Intuit's 24-hour overlap.
    assert (await refresh(http, tokens["refresh_token"])).status_code == 200


async def test_fault_rule_restricted_to_one_provider_leaves_the_other_alone(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[0]
    tokens = await connect(sandbox, http, org)
    await http.post("/_sandbox/faults", json={"kind": "503", "target": "api", "provider": "xero"})
    assert (await company_info(http, tokens["access_token"], org.realm_id)).status_code == 200
    await http.post("/_sandbox/faults", json={"kind": "503", "provider": "quickbooks"})
    faulted = await company_info(http, tokens["access_token"], org.realm_id)
    assert faulted.status_code == 503
    assert "Fault" in faulted.json()
    bad = await http.post("/_sandbox/faults", json={"kind": "503", "provider": "sage"})
    assert bad.status_code == 400


async def test_stats_and_info_cover_quickbooks(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[0]
    tokens = await connect(sandbox, http, org)
    await refresh(http, tokens["refresh_token"])
    await company_info(http, tokens["access_token"], org.realm_id)
    calls = (await http.get("/_sandbox/stats")).json()["calls"]
    assert calls["quickbooks.authorize"] == 1
    assert calls["quickbooks.token.authorization_code"] == 1
    assert calls["quickbooks.token.refresh_token"] == 1
    assert calls["quickbooks.companyinfo"] == 1
    assert calls["quickbooks.revocation"] == 0
    assert calls["token.refresh_token"] == 0 and calls["authorize"] == 0

    info = (await http.get("/_sandbox/info")).json()["quickbooks"]
    assert info["token_url"] == sandbox.base_url + TOKEN
    assert info["revocation_url"] == sandbox.base_url + REVOKE
    (app,) = info["apps"]
    assert (app["client_id"], app["client_secret"]) == (
        QUICKBOOKS_CLIENT_ID,
        QUICKBOOKS_CLIENT_SECRET,
    )
