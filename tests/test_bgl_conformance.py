"""BGL has no official Python SDK on PyPI, so the sandbox's wire format is proved with a
plain standards client, as a third party following BGL's guide would write it:
requests-oauthlib builds the authorize address and carries the bearer token; the token call
is a `requests` POST with the parameters in the query string and HTTP Basic."""

from __future__ import annotations

import asyncio

import requests
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from clientlink.sandbox.accounts import BGL_CLIENT_ID, BGL_CLIENT_SECRET
from clientlink.sandbox.approve import approve
from clientlink.sandbox.bgl_api import FUND_LIST_PATH
from clientlink.sandbox.bgl_identity import AUTHORIZE_PATH, TOKEN_PATH

REDIRECT = "http://127.0.0.1:8749/callback"


async def test_a_standards_client_signs_in_refreshes_and_lists_the_firms_funds(
    sandbox, monkeypatch
):
    # The sandbox serves plain HTTP on loopback; oauthlib insists on https otherwise.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    base = sandbox.base_url
    session = OAuth2Session(BGL_CLIENT_ID, redirect_uri=REDIRECT, scope=["audit", "investment"])
    url, state = session.authorization_url(base + AUTHORIZE_PATH)
    redirect = await approve(url)
    basic = HTTPBasicAuth(BGL_CLIENT_ID, BGL_CLIENT_SECRET)

    def exchange_and_list() -> tuple[dict, list, dict]:
        code = session._client.parse_request_uri_response(redirect, state=state)["code"]
        params = {
            "grant_type": "authorization_code",
            "code": code,
            "scope": "audit investment",
            "redirect_uri": REDIRECT,
        }
        token = requests.post(base + TOKEN_PATH, params=params, auth=basic, timeout=30)
        token.raise_for_status()
        authorised = OAuth2Session(BGL_CLIENT_ID, token=token.json())
        funds = authorised.get(base + FUND_LIST_PATH, timeout=30)
        funds.raise_for_status()
        refresh = {"grant_type": "refresh_token", "refresh_token": token.json()["refresh_token"]}
        refreshed = requests.post(base + TOKEN_PATH, params=refresh, auth=basic, timeout=30)
        refreshed.raise_for_status()
        return token.json(), funds.json()["funds"], refreshed.json()

    token, funds, refreshed = await asyncio.to_thread(exchange_and_list)
    assert token["token_type"] == "bearer" and token["scope"] == "audit investment"
    assert funds and all(fund["fundID"] and fund["fundCode"] for fund in funds)
    assert refreshed["refresh_token"] != token["refresh_token"]
