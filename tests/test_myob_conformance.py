"""MYOB has no official Python SDK: pymyob, the maintained community SDK, unmodified, as a
client of the sandbox's MYOB (issue 10's conformance style).

pymyob reads its two base URLs from module constants (`myob.credentials.MYOB_PARTNER_BASE_URL`
for sign-in and tokens, `myob.managers.MYOB_BASE_URL` for the API) with no parameter, so those
two names are set with pytest's monkeypatch for the test's duration. Its calls are synchronous
(requests), so they run in a worker thread while the sandbox serves in the test's loop.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import myob.credentials
import myob.managers
import pytest
from myob.api import Myob
from myob.constants import AuthScope
from myob.credentials import PartnerCredentials
from myob.endpoints import GET
from myob.exceptions import MyobRateLimitExceeded, MyobUnauthorized
from myob.managers import Manager

from clientlink.sandbox.accounts import MYOB_CLIENT_ID, MYOB_CLIENT_SECRET
from clientlink.sandbox.approve import approve
from clientlink.sandbox.myob import business_id_of
from clientlink.sandbox.server import SandboxServer

REDIRECT = "http://127.0.0.1:8751/myob/callback"


@pytest.fixture(autouse=True)
def _pointed_at_the_sandbox(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses plain http unless told; the sandbox is http on loopback only.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    base = sandbox.base_url
    monkeypatch.setattr(myob.credentials, "MYOB_PARTNER_BASE_URL", base + "/myob/oauth2/")
    monkeypatch.setattr(myob.managers, "MYOB_BASE_URL", base + "/myob/accountright/")


async def _connected(sandbox: SandboxServer, org) -> PartnerCredentials:  # type: ignore[no-untyped-def]
    cred = PartnerCredentials(
        consumer_key=MYOB_CLIENT_ID,
        consumer_secret=MYOB_CLIENT_SECRET,
        callback_uri=REDIRECT,
        scopes=(AuthScope.COMPANY_FILE, AuthScope.COMPANY_SETTINGS),
    )
    assert "prompt=consent" in cred.url
    redirect = await approve(cred.url, orgs=[org.tenant_id])
    params = {k: v[0] for k, v in parse_qs(urlsplit(redirect).query).items()}
    assert params["businessId"] == business_id_of(org), redirect
    await asyncio.to_thread(cred.verify, params["code"], params["businessId"])
    return cred


def _company(cred: PartnerCredentials) -> Manager:
    manager = Manager("Company/", cred, raw_endpoints=[(GET, "", "")], business_id=cred.business_id)
    return manager


async def test_pymyob_signs_in_reads_the_business_and_its_company_information(sandbox):
    org = sandbox.state.orgs[2]
    cred = await _connected(sandbox, org)
    assert cred.verified and cred.oauth_token and cred.refresh_token
    business = await asyncio.to_thread(Myob(cred).business)
    assert business["Id"] == business_id_of(org)
    assert business["Name"] == org.name
    company = await asyncio.to_thread(_company(cred).get)
    assert company["CompanyName"] == org.name
    assert company["ABNOrTFN"] == sandbox.state.myob.company_file(org).abn_or_tfn


async def test_pymyob_refreshes_and_the_old_access_token_keeps_its_twenty_minutes(sandbox):
    org = sandbox.state.orgs[0]
    cred = await _connected(sandbox, org)
    first_refresh = cred.refresh_token
    await asyncio.to_thread(cred.refresh)
    assert cred.refresh_token != first_refresh
    assert (await asyncio.to_thread(_company(cred).get))["CompanyName"] == org.name
    sandbox.state.clock.advance(1201)
    with pytest.raises(MyobUnauthorized):
        await asyncio.to_thread(_company(cred).get)


async def test_pymyob_reads_developer_over_qps_as_a_rate_limit(sandbox):
    cred = await _connected(sandbox, sandbox.state.orgs[1])
    sandbox.state.faults.add({"kind": "429", "target": "api", "provider": "myob", "count": 1})
    with pytest.raises(MyobRateLimitExceeded):
        await asyncio.to_thread(_company(cred).get)
