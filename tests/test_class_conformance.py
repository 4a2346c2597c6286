"""The Class-like sandbox against plain standards clients, as a third party would use them.

Class publishes no SDK (none on PyPI), so the wire format is proven with authlib's OAuth2
client (RFC 6749 code flow with PKCE, HTTP Basic client authentication, refresh, RFC 7009
revocation) driven from the sandbox's OpenID discovery document, and the id_token is
verified against the published JWKS with joserfc.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from clientlink.sandbox import SandboxServer, approve
from clientlink.sandbox.accounts import DEMO_USER
from clientlink.sandbox.classsuper import CLASS_CLIENT_ID, CLASS_CLIENT_SECRET

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

REDIRECT_URI = "http://127.0.0.1:53692/callback"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=5) as server:
        yield server


async def test_a_standards_client_signs_in_refreshes_and_revokes(sandbox):
    base = sandbox.base_url
    async with httpx.AsyncClient(base_url=base) as http:
        config = (await http.get("/class/.well-known/openid-configuration")).json()
        jwks = (await http.get(config["jwks_uri"].removeprefix(base))).json()
        code = (await http.get("/_sandbox/class/businesses")).json()[0]["code"]
    assert "client_secret_basic" in config["token_endpoint_auth_methods_supported"]
    client = AsyncOAuth2Client(
        client_id=CLASS_CLIENT_ID,
        client_secret=CLASS_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_basic",
        redirect_uri=REDIRECT_URI,
        scope=f"openid profile email offline_access fund.read target:b/{code}",
        code_challenge_method="S256",
    )
    verifier = "v" * 64
    url, state = client.create_authorization_url(
        config["authorization_endpoint"], code_verifier=verifier
    )
    redirect = await approve(url, user=DEMO_USER)
    assert parse_qs(urlsplit(redirect).query)["state"] == [state]
    token = await client.fetch_token(
        config["token_endpoint"], authorization_response=redirect, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer" and token["expires_in"] == 900
    assert f"target:b/{code}" in token["scope"].split()
    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(jwks))
    assert id_token.claims["iss"] == config["issuer"]
    assert id_token.claims["aud"] == CLASS_CLIENT_ID and id_token.claims["email"] == DEMO_USER

    listed = await client.get(
        f"{base}/class/api/1.0/b/{code}/fund-data/fund-list",
        headers={"Accept": "application/vnd.superip.action.v1+json"},
    )
    assert listed.status_code == 200 and len(listed.json()) == 12

    old = token["refresh_token"]
    fresh = await client.refresh_token(config["token_endpoint"], refresh_token=old)
    assert fresh["refresh_token"] != old
    await client.revoke_token(config["revocation_endpoint"], token=fresh["refresh_token"])
    with pytest.raises(OAuthError, match="invalid_grant"):
        await client.refresh_token(config["token_endpoint"], refresh_token=fresh["refresh_token"])
    await client.aclose()
