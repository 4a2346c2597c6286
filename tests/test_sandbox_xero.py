"""The Xero-like sandbox over real loopback HTTP: the behaviour an OAuth client relies on."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clientlink.sandbox import ApproveError, SandboxServer, approve
from clientlink.sandbox.accounts import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    TOTP_SECRET,
)
from clientlink.sandbox.testkit import DEFAULT_SCOPE, authorize_url, pkce_pair

REDIRECT_URI = "http://127.0.0.1:53682/callback"
TOKEN = "/xero/identity/connect/token"
REVOCATION = "/xero/identity/connect/revocation"
CONNECTIONS = "/xero/connections"
ORGANISATION = "/xero/api.xro/2.0/Organisation"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=30) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


@dataclass
class Authorized:
    """The result of one sign-in: the code redirect plus what is needed to exchange it."""

    code: str
    verifier: str
    redirect_uri: str
    params: dict[str, str]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def sign_in(
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    *,
    orgs: list[str] | None = None,
    scope: str = DEFAULT_SCOPE,
    client_id: str = PUBLIC_CLIENT_ID,
    redirect_uri: str = REDIRECT_URI,
    user: str = "demo@practice.example",
) -> Authorized:
    verifier, challenge = pkce_pair()
    url = authorize_url(
        sandbox.base_url,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        client_id=client_id,
        scope=scope,
    )
    # The page lists by name; these tests mean the seed's first organisation by default.
    chosen = orgs if orgs is not None else [sandbox.state.orgs[0].tenant_id]
    final = await approve(url, orgs=chosen, user=user, http=http)
    params = query(final)
    assert final.startswith(redirect_uri + "?")
    return Authorized(params["code"], verifier, redirect_uri, params)


async def exchange(http: httpx.AsyncClient, auth: Authorized, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": PUBLIC_CLIENT_ID,
        "code": auth.code,
        "redirect_uri": auth.redirect_uri,
        "code_verifier": auth.verifier,
    } | overrides
    return await http.post(TOKEN, data=form)


async def refresh(http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": PUBLIC_CLIENT_ID,
        "refresh_token": refresh_token,
    }
    return await http.post(TOKEN, data=form)


async def connect(
    sandbox: SandboxServer, http: httpx.AsyncClient, orgs: list[str] | None = None
) -> dict[str, Any]:
    response = await exchange(http, await sign_in(sandbox, http, orgs=orgs))
    assert response.status_code == 200, response.text
    return response.json()


async def get_org(
    http: httpx.AsyncClient, access_token: str, tenant_id: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    if tenant_id is not None:
        headers["xero-tenant-id"] = tenant_id
    return await http.get(ORGANISATION, headers=headers)


async def get_connections(
    http: httpx.AsyncClient, access_token: str, **params: str
) -> httpx.Response:
    return await http.get(
        CONNECTIONS, params=params, headers={"Authorization": f"Bearer {access_token}"}
    )


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    response = await http.post("/_sandbox/clock", json={"advance_seconds": seconds})
    assert response.status_code == 200


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# -- the whole flow -----------------------------------------------------------------------


async def test_pkce_code_flow_gives_tokens_connections_and_organisation(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org = sandbox.state.orgs[3]
    auth = await sign_in(sandbox, http, orgs=[org.name])
    assert auth.params["state"] == "st-123"

    response = await exchange(http, auth)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert tokens["scope"] == DEFAULT_SCOPE
    assert tokens["access_token"] != tokens["refresh_token"]
    assert len(tokens["access_token"]) >= 43

    connections = (await get_connections(http, tokens["access_token"])).json()
    assert [c["tenantId"] for c in connections] == [org.tenant_id]
    conn = connections[0]
    assert conn["tenantType"] == "ORGANISATION"
    assert conn["tenantName"] == org.name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", conn["createdDateUtc"])

    response = await get_org(http, tokens["access_token"], org.tenant_id)
    assert response.status_code == 200
    body = response.json()
    assert body["Status"] == "OK"
    assert re.fullmatch(r"/Date\(\d+\)/", body["DateTimeUTC"])
    (organisation,) = body["Organisations"]
    assert organisation["OrganisationID"] == org.tenant_id
    assert organisation["Name"] == org.name
    assert organisation["RegistrationNumber"] == org.abn
    assert organisation["CountryCode"] == "AU"
    assert organisation["OrganisationType"] == org.organisation_type
    for header in ("X-DayLimit-Remaining", "X-MinLimit-Remaining", "X-AppMinLimit-Remaining"):
        assert header in response.headers


async def test_one_consent_for_several_orgs_shares_one_auth_event_id(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    orgs = sandbox.state.orgs[:3]
    first = await connect(sandbox, http, [org.tenant_id for org in orgs])
    connections = (await get_connections(http, first["access_token"])).json()
    assert {c["tenantId"] for c in connections} == {org.tenant_id for org in orgs}
    assert len({c["authEventId"] for c in connections}) == 1

    # Re-consenting one tenant keeps its connection id but moves authEventId and updatedDateUtc.
    await advance(http, 60)
    second = await connect(sandbox, http, [orgs[0].name.upper()])
    after = (await get_connections(http, second["access_token"])).json()
    before_by_tenant = {c["tenantId"]: c for c in connections}
    again = next(c for c in after if c["tenantId"] == orgs[0].tenant_id)
    assert again["id"] == before_by_tenant[orgs[0].tenant_id]["id"]
    assert again["authEventId"] != before_by_tenant[orgs[0].tenant_id]["authEventId"]
    assert again["updatedDateUtc"] > again["createdDateUtc"]

    only_new = await get_connections(http, second["access_token"], authEventId=again["authEventId"])
    assert [c["tenantId"] for c in only_new.json()] == [orgs[0].tenant_id]


# -- authorize request validation --------------------------------------------------------


@pytest.mark.parametrize(
    ("challenge", "method"),
    [(None, "S256"), ("x" * 43, "plain"), ("x" * 43, None)],
    ids=["missing-challenge", "plain", "method-omitted-means-plain"],
)
async def test_authorize_without_s256_pkce_redirects_invalid_request(
    sandbox: SandboxServer, http: httpx.AsyncClient, challenge: str | None, method: str | None
) -> None:
    url = authorize_url(
        sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=challenge, method=method
    )
    response = await http.get(url)
    assert response.status_code == 302
    params = query(response.headers["location"])
    assert params["error"] == "invalid_request"
    assert "PKCE S256 is required" in params["error_description"]
    assert params["state"] == "st-123"


async def test_authorize_with_wrong_response_type_redirects_unsupported_response_type(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = authorize_url(
        sandbox.base_url,
        redirect_uri=REDIRECT_URI,
        code_challenge=pkce_pair()[1],
        response_type="token",
    )
    response = await http.get(url)
    assert response.status_code == 302
    assert query(response.headers["location"])["error"] == "unsupported_response_type"


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("no-such-app", REDIRECT_URI),
        (PUBLIC_CLIENT_ID, "http://localhost:53682/callback"),
        (PUBLIC_CLIENT_ID, "https://evil.example/callback"),
        (CONFIDENTIAL_CLIENT_ID, "http://127.0.0.1:8749/other"),
    ],
    ids=["unknown-client", "localhost", "remote-host", "unregistered-path"],
)
async def test_authorize_with_bad_client_or_redirect_shows_error_page_and_never_redirects(
    sandbox: SandboxServer, http: httpx.AsyncClient, client_id: str, redirect_uri: str
) -> None:
    url = authorize_url(
        sandbox.base_url,
        redirect_uri=redirect_uri,
        code_challenge=pkce_pair()[1],
        client_id=client_id,
    )
    response = await http.get(url)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert 'id="error"' in response.text


async def test_confidential_client_accepts_any_loopback_port_and_basic_auth(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(
        sandbox,
        http,
        client_id=CONFIDENTIAL_CLIENT_ID,
        redirect_uri="http://127.0.0.1:40001/callback",
    )
    form = {
        "grant_type": "authorization_code",
        "code": auth.code,
        "redirect_uri": auth.redirect_uri,
        "code_verifier": auth.verifier,
    }
    response = await http.post(
        TOKEN, data=form, headers=basic(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET)
    )
    assert response.status_code == 200, response.text
    assert "refresh_token" in response.json()


# -- the authorization_code grant ------------------------------------------------------


async def test_code_is_single_use_and_a_replay_revokes_the_tokens_it_issued(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(sandbox, http)
    tokens = (await exchange(http, auth)).json()

    replay = await exchange(http, auth)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"

    org_response = await get_org(http, tokens["access_token"], sandbox.state.orgs[0].tenant_id)
    assert org_response.status_code == 401
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_wrong_code_verifier_is_invalid_grant(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(sandbox, http)
    response = await exchange(http, auth, code_verifier=pkce_pair()[0])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_rfc7636_test_vector_verifier_matches_its_challenge() -> None:
    from clientlink.sandbox.oauth import s256_challenge

    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_redirect_uri_mismatch_at_token_endpoint_is_invalid_grant(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(sandbox, http)
    response = await exchange(http, auth, redirect_uri="http://127.0.0.1:53682/other")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_code_expires_after_ten_minutes(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(sandbox, http)
    await advance(http, 10 * 60 + 1)
    response = await exchange(http, auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_missing_token_parameters_are_invalid_request(http: httpx.AsyncClient) -> None:
    response = await http.post(
        TOKEN, data={"grant_type": "authorization_code", "client_id": PUBLIC_CLIENT_ID}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_unsupported_grant_type(http: httpx.AsyncClient) -> None:
    response = await http.post(
        TOKEN, data={"grant_type": "password", "client_id": PUBLIC_CLIENT_ID}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_bad_basic_secret_is_invalid_client_401_with_www_authenticate(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=basic(CONFIDENTIAL_CLIENT_ID, "wrong"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_unknown_public_client_is_invalid_client(http: httpx.AsyncClient) -> None:
    response = await http.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "nope"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_scope_without_offline_access_issues_no_refresh_token(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(sandbox, http, scope="openid accounting.settings")
    body = (await exchange(http, auth)).json()
    assert "refresh_token" not in body
    assert body["scope"] == "openid accounting.settings"


# -- refresh -----------------------------------------------------------------------------


async def test_refresh_rotates_and_previous_token_works_only_within_30_minute_grace(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    first = await connect(sandbox, http)
    second = (await refresh(http, first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    await advance(http, 29 * 60)
    in_grace = await refresh(http, first["refresh_token"])
    assert in_grace.status_code == 200
    assert in_grace.json()["refresh_token"] not in (
        first["refresh_token"],
        second["refresh_token"],
    )

    await advance(http, 2 * 60)
    late = await refresh(http, first["refresh_token"])
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"
    assert (await refresh(http, in_grace.json()["refresh_token"])).status_code == 200


async def test_refresh_token_expires_after_60_days_unused(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    await advance(http, 59 * 86400)
    kept_alive = (await refresh(http, tokens["refresh_token"])).json()
    await advance(http, 60 * 86400 + 1)
    response = await refresh(http, kept_alive["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_admin_expire_refresh_makes_the_next_refresh_invalid_grant(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    (grant,) = (await http.get("/_sandbox/grants")).json()
    assert grant["refresh_expires_at"] is not None
    await http.post(f"/_sandbox/grants/{grant['grant_id']}/expire-refresh")
    response = await refresh(http, tokens["refresh_token"])
    assert response.json()["error"] == "invalid_grant"


# -- the API's answers to bad tokens and tenants --------------------------------------------


async def test_expired_access_token_gets_xero_token_expired_problem(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    await advance(http, 1800)
    response = await get_org(http, tokens["access_token"], sandbox.state.orgs[0].tenant_id)
    assert response.status_code == 401
    body = response.json()
    assert body["Title"] == "Unauthorized"
    assert body["Status"] == 401
    assert body["Type"] is None
    assert body["Extensions"] == {}
    assert re.fullmatch(
        r"TokenExpired: token expired at \d\d/\d\d/\d{4} \d\d:\d\d:\d\d", body["Detail"]
    )


async def test_unknown_bearer_token_gets_401_authentication_unsuccessful(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    response = await get_org(http, "not-a-token", sandbox.state.orgs[0].tenant_id)
    assert response.status_code == 401
    assert "AuthenticationUnsuccessful" in response.json()["Detail"]


async def test_tenant_not_connected_or_missing_header_gets_403(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    connected, other = sandbox.state.orgs[0], sandbox.state.orgs[1]
    tokens = await connect(sandbox, http, [connected.tenant_id])
    for tenant in (other.tenant_id, None):
        response = await get_org(http, tokens["access_token"], tenant)
        assert response.status_code == 403
        assert response.json()["Detail"] == "AuthenticationUnsuccessful"

    await http.post("/_sandbox/connections/disconnect", json={"tenant_id": connected.tenant_id})
    response = await get_org(http, tokens["access_token"], connected.tenant_id)
    assert response.status_code == 403


async def test_delete_connection_answers_204_then_404(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    (conn,) = (await get_connections(http, tokens["access_token"])).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    first = await http.delete(f"{CONNECTIONS}/{conn['id']}", headers=headers)
    second = await http.delete(f"{CONNECTIONS}/{conn['id']}", headers=headers)
    assert (first.status_code, second.status_code) == (204, 404)
    assert (await get_connections(http, tokens["access_token"])).json() == []


# -- revocation ---------------------------------------------------------------------------


async def test_revoking_refresh_token_kills_grant_tokens_and_removes_connections(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http, [o.tenant_id for o in sandbox.state.orgs[:2]])
    response = await http.post(
        REVOCATION,
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": PUBLIC_CLIENT_ID,
        },
    )
    assert response.status_code == 200
    assert (await get_connections(http, tokens["access_token"])).status_code == 401
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert sandbox.state.xero.connections == {}
    states = {t["state"] for t in (await http.get("/_sandbox/tokens")).json()}
    assert states == {"revoked"}


async def test_revoking_an_unknown_token_still_answers_200(http: httpx.AsyncClient) -> None:
    response = await http.post(
        REVOCATION, data={"token": "never-issued", "client_id": PUBLIC_CLIENT_ID}
    )
    assert response.status_code == 200


async def test_admin_revoke_grant_acts_like_the_user_revoking_the_app(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    (grant,) = (await http.get("/_sandbox/grants")).json()
    await http.post(f"/_sandbox/grants/{grant['grant_id']}/revoke")
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await get_connections(http, tokens["access_token"])).status_code == 401
    (grant,) = (await http.get("/_sandbox/grants")).json()
    assert grant["revoked"] is True


async def test_connections_belong_to_the_user_who_consented(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    demo = await connect(sandbox, http, [sandbox.state.orgs[0].tenant_id])
    alex_auth = await sign_in(
        sandbox, http, orgs=[sandbox.state.orgs[1].tenant_id], user="alex@practice.example"
    )
    alex = (await exchange(http, alex_auth)).json()
    for tokens, org in ((demo, sandbox.state.orgs[0]), (alex, sandbox.state.orgs[1])):
        listed = (await get_connections(http, tokens["access_token"])).json()
        assert [c["tenantId"] for c in listed] == [org.tenant_id]


# -- the approve helper ----------------------------------------------------------------


async def test_approve_with_deny_ends_in_access_denied_with_state(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    final = await approve(url, deny=True, http=http)
    params = query(final)
    assert params["error"] == "access_denied"
    assert params["state"] == "st-123"
    assert "code" not in params


async def test_approve_with_an_unknown_org_names_it(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    with pytest.raises(ApproveError, match="'Nonexistent Pty Ltd' is not available"):
        await approve(url, orgs=["Nonexistent Pty Ltd"], http=http)


async def test_approve_with_a_wrong_password_reports_the_page_error(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    with pytest.raises(ApproveError, match="email or password is incorrect"):
        await approve(url, password="wrong", http=http)


async def test_wrong_authenticator_code_is_refused(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    with pytest.raises(ApproveError, match="authenticator code failed"):
        await approve(url, totp_secret="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http=http)


async def test_approve_works_after_the_sandbox_clock_moves(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    # A code valid in real time would be wrong two hours ahead; approve must follow the sandbox.
    await advance(http, 2 * 3600)
    tokens = await connect(sandbox, http)
    assert "access_token" in tokens


async def test_authorize_url_error_redirect_is_returned_by_approve(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = authorize_url(
        sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=None, method=None
    )
    assert query(await approve(url, http=http))["error"] == "invalid_request"


async def test_info_lists_credentials_apps_and_endpoints(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    info = (await http.get("/_sandbox/info")).json()
    assert info["totp_secret"] == TOTP_SECRET
    assert "demo@practice.example" in info["users"]
    assert {app["client_id"] for app in info["apps"]} == {
        PUBLIC_CLIENT_ID,
        CONFIDENTIAL_CLIENT_ID,
    }
    assert info["xero"]["token_url"] == sandbox.base_url + TOKEN
    assert info["org_count"] == 30


async def test_tokens_admin_shows_rotated_and_active_states(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    await refresh(http, tokens["refresh_token"])
    listed = {t["token"]: t for t in (await http.get("/_sandbox/tokens")).json()}
    assert listed[tokens["refresh_token"]]["state"] == "rotated"
    assert listed[tokens["access_token"]]["state"] == "active"
    assert {t["kind"] for t in listed.values()} == {"access", "refresh"}


# -- faults, limits and stats -----------------------------------------------------------


async def test_fault_429_hits_exactly_the_next_n_api_calls(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    tenant = sandbox.state.orgs[0].tenant_id
    rule = {"kind": "429", "count": 2, "target": "api", "retry_after": 7}
    assert (await http.post("/_sandbox/faults", json=rule)).status_code == 201
    statuses = []
    for _ in range(3):
        response = await get_org(http, tokens["access_token"], tenant)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "7"
            assert response.headers["X-Rate-Limit-Problem"] == "minute"
    assert statuses == [429, 429, 200]
    assert (await http.get("/_sandbox/faults")).json() == []
    assert (await http.get("/_sandbox/stats")).json()["rate_limited"] == 2


async def test_token_endpoint_fault_does_not_consume_the_code(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    auth = await sign_in(sandbox, http)
    await http.post("/_sandbox/faults", json={"kind": "503", "count": 1, "target": "token"})
    assert (await exchange(http, auth)).status_code == 503
    assert (await exchange(http, auth)).status_code == 200


async def test_delay_fault_lets_a_client_time_out(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await http.post(
        "/_sandbox/faults",
        json={"kind": "delay", "delay_seconds": 1.0, "count": 1, "target": "connections"},
    )
    with pytest.raises(httpx.ReadTimeout):
        await http.get(CONNECTIONS, headers={"Authorization": "Bearer x"}, timeout=0.2)


async def test_hang_after_fault_rotates_the_refresh_token_before_holding_the_answer(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    rule = {"kind": "hang_after", "delay_seconds": 0.5, "target": "token", "provider": "xero"}
    await http.post("/_sandbox/faults", json=rule | {"count": 1})
    with pytest.raises(httpx.ReadTimeout):
        form = {
            "grant_type": "refresh_token",
            "client_id": PUBLIC_CLIENT_ID,
            "refresh_token": tokens["refresh_token"],
        }
        await http.post(TOKEN, data=form, timeout=0.1)
    listed = {t["token"]: t for t in (await http.get("/_sandbox/tokens")).json()}
    assert listed[tokens["refresh_token"]]["state"] == "rotated"
    assert sum(t["state"] == "active" and t["kind"] == "refresh" for t in listed.values()) == 1


async def test_fault_rule_with_bad_fields_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/_sandbox/faults", json={"kind": "418"})
    assert response.status_code == 400
    assert "kind must be one of" in response.json()["error"]


async def test_per_tenant_minute_limit_answers_429_minute_until_the_window_ends(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    # Start at the top of a minute so all 61 calls land in one fixed window.
    await http.post("/_sandbox/clock", json={"set": "2026-03-02T09:00:00+00:00"})
    tokens = await connect(sandbox, http)
    tenant = sandbox.state.orgs[0].tenant_id
    responses = [await get_org(http, tokens["access_token"], tenant) for _ in range(60)]
    assert {r.status_code for r in responses} == {200}
    assert responses[0].headers["X-MinLimit-Remaining"] == "59"
    assert responses[-1].headers["X-MinLimit-Remaining"] == "0"
    assert responses[-1].headers["X-DayLimit-Remaining"] == "4940"

    refused = await get_org(http, tokens["access_token"], tenant)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60

    await advance(http, int(refused.headers["Retry-After"]))
    assert (await get_org(http, tokens["access_token"], tenant)).status_code == 200


async def test_limits_can_be_switched_off(sandbox: SandboxServer, http: httpx.AsyncClient) -> None:
    await http.post("/_sandbox/clock", json={"set": "2026-03-02T09:00:00+00:00"})
    await http.post("/_sandbox/limits", json={"enforce": False})
    tokens = await connect(sandbox, http)
    tenant = sandbox.state.orgs[0].tenant_id
    responses = [await get_org(http, tokens["access_token"], tenant) for _ in range(65)]
    assert {r.status_code for r in responses} == {200}
    assert responses[-1].headers["X-MinLimit-Remaining"] == "0"


async def test_sixth_concurrent_call_to_a_tenant_gets_429_concurrent(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await http.post("/_sandbox/limits", json={"api_latency_seconds": 0.3})
    tokens = await connect(sandbox, http)
    tenant = sandbox.state.orgs[0].tenant_id
    responses = await asyncio.gather(
        *(get_org(http, tokens["access_token"], tenant) for _ in range(7))
    )
    refused = [r for r in responses if r.status_code == 429]
    assert sum(r.status_code == 200 for r in responses) == 5
    assert {r.headers["X-Rate-Limit-Problem"] for r in refused} == {"concurrent"}
    stats = (await http.get("/_sandbox/stats")).json()
    assert stats["max_concurrency"][tenant] == 5


async def test_stats_count_calls_by_endpoint_kind(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sandbox, http)
    await refresh(http, tokens["refresh_token"])
    await get_connections(http, tokens["access_token"])
    await get_org(http, tokens["access_token"], sandbox.state.orgs[0].tenant_id)
    calls = (await http.get("/_sandbox/stats")).json()["calls"]
    assert calls["authorize"] == 1
    assert calls["token.authorization_code"] == 1
    assert calls["token.refresh_token"] == 1
    assert calls["connections"] == 1
    assert calls["organisation"] == 1
    assert calls["revocation"] == 0


async def test_the_admin_call_changes_a_business_details_in_every_provider(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    org, other = sandbox.state.orgs[2], sandbox.state.orgs[3]
    spaced = f"{other.abn[:2]} {other.abn[2:5]} {other.abn[5:8]} {other.abn[8:]}"
    body = {"legal_name": "Harbour Lights Pty Ltd", "abn": spaced, "email": "a@b.example"}
    changed = await http.post(f"/_sandbox/orgs/{org.tenant_id}", json=body | {"type": "TRUST"})
    assert changed.status_code == 200, changed.text
    now = sandbox.state.orgs[2]
    assert (now.name, now.legal_name, now.abn, now.email, now.organisation_type) == (
        org.name,
        "Harbour Lights Pty Ltd",
        other.abn,
        "a@b.example",
        "TRUST",
    )
    assert (
        sandbox.state.quickbooks.orgs[org.tenant_id]
        == now
        == sandbox.state.xero.orgs[org.tenant_id]
    )
    for refused in ({"abn": "12 345 678 901"}, {"colour": "red"}, {}, {"name": 5}):
        response = await http.post(f"/_sandbox/orgs/{org.tenant_id}", json=refused)
        assert response.status_code == 400, refused
    assert sandbox.state.orgs[2] == now
