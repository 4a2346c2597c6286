"""The providers' own client libraries, unmodified, as clients of the sandbox (issue 10).

Each test makes the calls a practice's integration would make with the official SDK, with
only the base URL pointed at the sandbox on 127.0.0.1, and checks that the results
deserialise into the SDK's models. The SDKs are synchronous (requests / urllib3), so their
calls run in a worker thread while the sandbox serves in the test's event loop.

How each SDK is pointed at the sandbox, read from its source:
- xero-python: `IdentityApi(api_client, base_url=...)` and `AccountingApi(api_client,
  base_url=...)` take the API host as a parameter. The token and revocation URLs are class
  attributes of `xero_python.api_client.oauth2.TokenApi` with no parameter, so those two
  attributes are set (with pytest's monkeypatch) for the test's duration.
- intuit-oauth: `AuthClient(environment=...)` treats any value other than sandbox/production
  as the discovery document's URL (`intuitlib.utils.get_discovery_doc`): a parameter.
- python-quickbooks: `QuickBooks.api_url` reads the attribute `api_url_v3`; it is set on the
  instance (no module constant is changed).
- twilio: the `api` domain's `base_url` attribute is set on the client's instance.
- requests-oauthlib: takes every endpoint as a parameter.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import smtplib
import ssl
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from requests_oauthlib import OAuth2Session

from clientlink.sandbox import quickbooks_identity, twilio_api, xero_api, xero_identity
from clientlink.sandbox.accounts import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    DEMO_USER,
    PUBLIC_CLIENT_ID,
    QUICKBOOKS_CLIENT_ID,
    QUICKBOOKS_CLIENT_SECRET,
)
from clientlink.sandbox.approve import approve
from clientlink.sandbox.mail import SMTP_PASSWORD, SMTP_USER
from clientlink.sandbox.seed import SeedOrg
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.sms import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

XERO_REDIRECT = "http://127.0.0.1:8749/callback"
XERO_SCOPES = ["openid", "profile", "email", "offline_access", "accounting.settings"]


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses plain http unless told; the sandbox is http on loopback only.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def _xero_consent(
    sandbox: SandboxServer, *, include_client_id: bool | None, orgs: list[str] | None = None
) -> dict[str, Any]:
    """A confidential app's standard code flow (no PKCE) with requests-oauthlib."""
    base = sandbox.base_url
    session = OAuth2Session(CONFIDENTIAL_CLIENT_ID, redirect_uri=XERO_REDIRECT, scope=XERO_SCOPES)
    url, _state = session.authorization_url(base + xero_identity.AUTHORIZE_PATH)
    tenants = orgs or [org.tenant_id for org in sandbox.state.orgs]
    redirect = await approve(url, orgs=tenants)
    assert "code=" in redirect, redirect
    return await asyncio.to_thread(
        session.fetch_token,
        base + xero_identity.TOKEN_PATH,
        authorization_response=redirect,
        client_secret=CONFIDENTIAL_CLIENT_SECRET,
        include_client_id=include_client_id,
    )


@pytest.mark.parametrize("client_auth", ["basic", "form"])
async def test_xero_confidential_code_flow_without_pkce_gives_an_id_token(
    sandbox: SandboxServer, client_auth: str
) -> None:
    # requests-oauthlib sends HTTP Basic by default and the form body with include_client_id.
    token = await _xero_consent(
        sandbox, include_client_id=True if client_auth == "form" else None, orgs=None
    )
    assert token["token_type"] == "Bearer" and token["expires_in"] == 1800
    assert token["refresh_token"]
    # openid was granted, so an OpenID Connect id_token names the user.
    claims = _claims(token["id_token"])
    assert claims["email"] == DEMO_USER
    assert claims["aud"] == CONFIDENTIAL_CLIENT_ID
    assert claims["sub"] and claims["xero_userid"]


def _xero_client(token: dict[str, Any], monkeypatch: pytest.MonkeyPatch, base: str):  # type: ignore[no-untyped-def]
    from xero_python.api_client import ApiClient
    from xero_python.api_client.configuration import Configuration
    from xero_python.api_client.oauth2 import OAuth2Token, TokenApi

    monkeypatch.setattr(TokenApi, "refresh_token_url", base + xero_identity.TOKEN_PATH)
    monkeypatch.setattr(TokenApi, "revoke_token_url", base + xero_identity.REVOCATION_PATH)
    store = {"token": dict(token)}
    config = Configuration(
        oauth2_token=OAuth2Token(
            client_id=CONFIDENTIAL_CLIENT_ID, client_secret=CONFIDENTIAL_CLIENT_SECRET
        )
    )
    client = ApiClient(
        config,
        oauth2_token_getter=lambda: store["token"],
        oauth2_token_saver=lambda new: store.update(token=new),
    )
    return client, store


async def test_xero_python_loads_connections_and_every_organisation(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xero_python.accounting import AccountingApi
    from xero_python.identity import IdentityApi

    base = sandbox.base_url
    token = await _xero_consent(sandbox, include_client_id=None)
    client, _store = _xero_client(token, monkeypatch, base)
    identity = IdentityApi(client, base_url=base + "/xero")
    accounting = AccountingApi(client, base_url=base + xero_api.ORGANISATION_PATH.rsplit("/", 1)[0])

    connections = await asyncio.to_thread(identity.get_connections)
    assert len(connections) == len(sandbox.state.orgs)
    assert all(conn.tenant_type == "ORGANISATION" for conn in connections)
    assert connections[0].created_date_utc is not None

    types = set()
    for conn in connections:
        result = await asyncio.to_thread(accounting.get_organisations, conn.tenant_id)
        (organisation,) = result.organisations
        assert str(organisation.organisation_id) == conn.tenant_id
        assert organisation.name == conn.tenant_name
        assert organisation.created_date_utc is not None
        assert organisation.organisation_entity_type == organisation.organisation_type
        assert organisation.addresses and organisation.addresses[0].address_type == "POBOX"
        assert organisation.phones and organisation.external_links is not None
        types.add(organisation.organisation_type)
    assert "SELF_MANAGED_SUPERANNUATION_FUND" in types and "SOLE_TRADER" in types


async def test_xero_python_refreshes_deletes_a_connection_and_revokes(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xero_python.identity import IdentityApi

    base = sandbox.base_url
    orgs = [org.tenant_id for org in sandbox.state.orgs[:3]]
    token = await _xero_consent(sandbox, include_client_id=None, orgs=orgs)
    client, store = _xero_client(token, monkeypatch, base)
    identity = IdentityApi(client, base_url=base + "/xero")

    # The SDK refreshes and revokes with client_id and client_secret in the form body.
    refreshed = await asyncio.to_thread(client.refresh_oauth2_token)
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert store["token"]["access_token"] != token["access_token"]

    connections = await asyncio.to_thread(identity.get_connections)
    await asyncio.to_thread(identity.delete_connection, connections[0].id)
    left = await asyncio.to_thread(identity.get_connections)
    assert [conn.id for conn in left] == [conn.id for conn in connections[1:]]

    await asyncio.to_thread(client.revoke_oauth2_token)
    assert store["token"]["refresh_token"] is None
    assert sandbox.state.xero.connections == {}


async def test_xero_public_app_still_needs_pkce(sandbox: SandboxServer) -> None:
    session = OAuth2Session(PUBLIC_CLIENT_ID, redirect_uri=XERO_REDIRECT, scope=XERO_SCOPES)
    url, _state = session.authorization_url(sandbox.base_url + xero_identity.AUTHORIZE_PATH)
    redirect = await approve(url)
    assert "error=invalid_request" in redirect


# --------------------------------------------------------------------------- QuickBooks

QBO_REDIRECT = "http://127.0.0.1:8750/callback"


async def _intuit_client(sandbox: SandboxServer):  # type: ignore[no-untyped-def]
    """intuit-oauth's AuthClient, its discovery document the sandbox's."""
    from intuitlib.client import AuthClient

    return await asyncio.to_thread(
        AuthClient,
        QUICKBOOKS_CLIENT_ID,
        QUICKBOOKS_CLIENT_SECRET,
        QBO_REDIRECT,
        sandbox.base_url + quickbooks_identity.DISCOVERY_PATH,
    )


async def _intuit_consent(sandbox: SandboxServer, org: SeedOrg):  # type: ignore[no-untyped-def]
    from intuitlib.enums import Scopes

    auth = await _intuit_client(sandbox)
    scopes = [Scopes.ACCOUNTING, Scopes.OPENID, Scopes.EMAIL, Scopes.PROFILE]
    url = auth.get_authorization_url(scopes)
    redirect = await approve(url, orgs=[org.realm_id])
    params = dict(parse_qsl(urlsplit(redirect).query))
    assert params["state"] == auth.state_token and params["realmId"] == org.realm_id
    await asyncio.to_thread(auth.get_bearer_token, params["code"], realm_id=params["realmId"])
    return auth


async def test_intuit_oauth_code_flow_id_token_user_info_refresh_and_revoke(
    sandbox: SandboxServer,
) -> None:
    org = sandbox.state.orgs[0]
    auth = await _intuit_consent(sandbox, org)
    assert auth.expires_in == 3600
    assert auth.x_refresh_token_expires_in == 8_726_400
    # The SDK keeps the id_token only after checking its signature against the JWKS.
    assert auth.id_token is not None
    assert _claims(auth.id_token)["realmid"] == org.realm_id
    info = (await asyncio.to_thread(auth.get_user_info)).json()
    assert info["email"] == DEMO_USER and info["sub"] == _claims(auth.id_token)["sub"]

    # Intuit keeps the refresh token's value for about a day; after that it rotates.
    first = auth.refresh_token
    await asyncio.to_thread(auth.refresh)
    assert auth.refresh_token == first
    sandbox.state.clock.advance(25 * 3600)
    await asyncio.to_thread(auth.refresh)
    assert auth.refresh_token != first

    assert await asyncio.to_thread(auth.revoke) is True
    assert all(grant.revoked for grant in sandbox.state.quickbooks.grants.values())


async def test_python_quickbooks_reads_company_info_and_raises_its_own_exceptions(
    sandbox: SandboxServer,
) -> None:
    from quickbooks import QuickBooks
    from quickbooks.exceptions import AuthorizationException, ObjectNotFoundException
    from quickbooks.objects.company_info import CompanyInfo
    from quickbooks.objects.customer import Customer

    org = sandbox.state.orgs[1]
    auth = await _intuit_consent(sandbox, org)
    qb = QuickBooks(
        auth_client=auth,
        refresh_token=auth.refresh_token,
        company_id=org.realm_id,
        minorversion=75,
    )
    qb.api_url_v3 = sandbox.base_url + "/quickbooks/v3"

    (listed,) = await asyncio.to_thread(CompanyInfo.all, qb=qb)
    assert listed.CompanyName == org.name and listed.LegalName == org.legal_name
    single = await asyncio.to_thread(CompanyInfo.get, org.realm_id, qb=qb)
    assert single.CompanyName == org.name
    assert await asyncio.to_thread(Customer.all, qb=qb) == []

    with pytest.raises(ObjectNotFoundException):
        await asyncio.to_thread(CompanyInfo.get, "999", qb=qb)
    await asyncio.to_thread(auth.revoke)
    with pytest.raises(AuthorizationException):
        await asyncio.to_thread(CompanyInfo.all, qb=qb)


async def test_quickbooks_gateway_faults_are_lower_case(sandbox: SandboxServer) -> None:
    org, other = sandbox.state.orgs[2], sandbox.state.orgs[3]
    auth = await _intuit_consent(sandbox, org)
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        headers = {"Authorization": f"Bearer {auth.access_token}", "Accept": "application/json"}
        forbidden = await http.get(
            f"/quickbooks/v3/company/{other.realm_id}/companyinfo/{other.realm_id}",
            headers=headers,
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["fault"]["error"][0]["code"] == "3100"
        headers["Authorization"] = "Bearer not-a-token"
        refused = await http.get(
            f"/quickbooks/v3/company/{org.realm_id}/companyinfo/{org.realm_id}", headers=headers
        )
        assert refused.status_code == 401
        assert refused.json()["fault"]["type"] == "AUTHENTICATION"


# --------------------------------------------------------------------------- Twilio


async def test_twilio_client_creates_fetches_and_lists_messages(sandbox: SandboxServer) -> None:
    from twilio.rest import Client

    client = Client(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
    client.api.base_url = sandbox.base_url + twilio_api.API_BASE_PATH
    sent = []
    for index in range(3):
        message = await asyncio.to_thread(
            client.messages.create,
            to=f"+6149157000{index}",
            from_="+61491570999",
            body=f"Hello {index}",
        )
        assert message.sid.startswith("SM") and message.status == "queued"
        sent.append(message.sid)
    fetched = await asyncio.to_thread(client.messages(sent[0]).fetch)
    assert fetched.body == "Hello 0"

    # list() follows next_page_uri across pages of two.
    listed = await asyncio.to_thread(client.messages.list, page_size=2)
    assert [message.sid for message in listed] == sent[::-1]
    only = await asyncio.to_thread(client.messages.list, to="+61491570001")
    assert [message.sid for message in only] == [sent[1]]


# --------------------------------------------------------------------------- SMTP


def _submit_with_smtplib(port: int, certificate_pem: str) -> dict[str, Any]:
    """What a mail client sees on the submission port: before and after STARTTLS."""
    seen: dict[str, Any] = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        seen["before_tls"] = set(smtp.esmtp_features)
        seen["auth_in_clear"] = smtp.docmd("AUTH", "PLAIN")
        context = ssl.create_default_context(cadata=certificate_pem)
        context.check_hostname = False
        smtp.starttls(context=context)
        smtp.ehlo("client.example")
        seen["after_tls"] = set(smtp.esmtp_features)
        seen["login"] = smtp.login(SMTP_USER, SMTP_PASSWORD)
        seen["mail"] = smtp.mail("office@practice.example")
        seen["rcpt"] = smtp.rcpt("client@business.example")
        seen["data"] = smtp.data(b"Subject: hello\r\n\r\nA test.\r\n")
        seen["rset"] = smtp.rset()
    return seen


async def test_smtp_submission_advertises_pipelining_and_enhanced_codes_and_auth_after_tls(
    sandbox: SandboxServer,
) -> None:
    assert sandbox.state.smtp is not None and sandbox.state.smtp.certificate_pem
    seen = await asyncio.to_thread(
        _submit_with_smtplib, sandbox.smtp_port, sandbox.state.smtp.certificate_pem
    )
    assert {"pipelining", "enhancedstatuscodes", "starttls"} <= seen["before_tls"]
    assert "auth" not in seen["before_tls"]
    assert seen["auth_in_clear"][0] == 538  # RFC 4954: encryption required
    assert {"pipelining", "enhancedstatuscodes", "auth"} <= seen["after_tls"]
    assert "starttls" not in seen["after_tls"]
    for step in ("login", "mail", "rcpt", "data", "rset"):
        code, text = seen[step]
        assert 200 <= code < 300
        assert re.match(rb"2\.\d{1,3}\.\d{1,3} ", text), (step, text)
    assert len(sandbox.state.mail.messages) == 1


# --------------------------------------------------------------------------- client auth


async def test_xero_token_endpoints_take_either_client_auth_method_but_not_both(
    sandbox: SandboxServer,
) -> None:
    token = await _xero_consent(sandbox, include_client_id=None, orgs=None)
    creds = {"client_id": CONFIDENTIAL_CLIENT_ID, "client_secret": CONFIDENTIAL_CLIENT_SECRET}
    basic = httpx.BasicAuth(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET)
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        both = await http.post(xero_identity.TOKEN_PATH, data=refresh | creds, auth=basic)
        assert both.status_code == 400 and both.json()["error"] == "invalid_request"
        wrong = await http.post(
            xero_identity.TOKEN_PATH, data=refresh | creds | {"client_secret": "guess"}
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        by_basic = await http.post(xero_identity.TOKEN_PATH, data=refresh, auth=basic)
        assert by_basic.status_code == 200
        rotated = by_basic.json()["refresh_token"]
        revoked = await http.post(
            xero_identity.REVOCATION_PATH, data={"token": rotated}, auth=basic
        )
        assert revoked.status_code == 200
    assert sandbox.state.xero.connections == {}
