"""The daemon's adapters against the sandbox as the real providers behave (issue 10):
the provider user read from the id_token, Xero's OrganisationType values kept as sent,
Intuit's lower-case gateway faults, and Intuit's JSON revocation."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from clientlink.common import protocol as p
from clientlink.common.config import load_config
from clientlink.daemon.clock import Clock
from clientlink.daemon.providers import (
    AccessTokenRejected,
    QuickBooksAdapter,
    TokenSet,
    XeroAdapter,
    build_definition,
)
from clientlink.sandbox.accounts import DEMO_USER, QUICKBOOKS_CLIENT_SECRET
from clientlink.sandbox.oidc import user_subject
from clientlink.sandbox.xero import xero_user_id
from tests.conftest import RunningDaemon


async def _complete(daemon: RunningDaemon, provider: str, company: str) -> p.AuthCompleteResult:
    rpc = await daemon.connect()
    if provider == "quickbooks":
        await rpc.call(
            p.PROVIDERS_SET_SECRET, provider="quickbooks", client_secret=QUICKBOOKS_CLIENT_SECRET
        )
    session = await rpc.call(p.AUTH_BEGIN, provider=provider)
    redirect = await daemon.approve(session.authorize_url, [company])
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def test_xero_grant_records_the_provider_user_from_the_id_token(
    daemon: RunningDaemon,
) -> None:
    org = daemon.sandbox.state.orgs[0]
    result = await _complete(daemon, "xero", org.tenant_id)
    assert result.provider_user == {
        "sub": user_subject(DEMO_USER),
        "email": DEMO_USER,
        "name": "Demo Practice",
        "user_id": xero_user_id(DEMO_USER),
    }
    audit = await daemon.daemon.store.list_audit(None, 10)  # type: ignore[union-attr]
    created = next(entry for entry in audit if entry.action == "grant.created")
    assert created.detail["provider_user"]["email"] == DEMO_USER


async def test_quickbooks_grant_records_the_intuit_user(daemon: RunningDaemon) -> None:
    org = daemon.sandbox.state.orgs[1]
    result = await _complete(daemon, "quickbooks", org.realm_id)
    # Intuit's id_token names the user by `sub` only; the email is UserInfo's to tell,
    # and the daemon asks it (the grant keeps the answer: "as demo@... in QuickBooks").
    assert result.provider_user["sub"] == user_subject(DEMO_USER)
    assert result.provider_user["email"] == DEMO_USER
    grant = await daemon.daemon.store.get_grant(result.grant_id)  # type: ignore[union-attr]
    assert grant is not None and DEMO_USER in (grant.provider_user or "")
    assert result.tenants[0].tenant_id == org.realm_id


def _adapter(daemon: RunningDaemon, provider: str):  # type: ignore[no-untyped-def]
    config = load_config(daemon.paths.config_file).providers[provider]
    kind = {"xero": XeroAdapter, "quickbooks": QuickBooksAdapter}[provider]
    secret = QUICKBOOKS_CLIENT_SECRET if provider == "quickbooks" else None
    return kind(provider, build_definition(config), config.client_id, secret, Clock())


async def _adapter_tokens(daemon: RunningDaemon, adapter, company: str) -> TokenSet:  # type: ignore[no-untyped-def]
    redirect_uri = "http://127.0.0.1:8751/callback"
    verifier = "v" * 64
    url = adapter.authorization_url(redirect_uri=redirect_uri, state="s", code_verifier=verifier)
    redirect = await daemon.approve(url, [company])
    code = dict(parse_qsl(urlsplit(redirect).query))["code"]
    return await adapter.exchange_code(code=code, redirect_uri=redirect_uri, code_verifier=verifier)


async def test_xero_adapter_keeps_every_organisation_type_as_sent(daemon: RunningDaemon) -> None:
    adapter = _adapter(daemon, "xero")
    orgs = daemon.sandbox.state.orgs
    wanted = {"SELF_MANAGED_SUPERANNUATION_FUND", "SOLE_TRADER", "TRUST", "COMPANY"}
    picked = {org.organisation_type: org for org in orgs if org.organisation_type in wanted}
    assert set(picked) == wanted
    try:
        for kind, org in picked.items():
            # Connect each and read it back: the type arrives as Xero spells it.
            tokens = await _adapter_tokens(daemon, adapter, org.tenant_id)
            details = await adapter.fetch_organisation(tokens, org.tenant_id)
            assert details.organisation_type == kind
    finally:
        await adapter.close()


async def test_quickbooks_adapter_reads_gateway_faults_and_revokes_with_json(
    daemon: RunningDaemon,
) -> None:
    adapter = _adapter(daemon, "quickbooks")
    org = daemon.sandbox.state.orgs[2]
    try:
        tokens = await _adapter_tokens(daemon, adapter, org.realm_id)
        bogus = TokenSet("not-a-token", None, tokens.access_expires_at)
        with pytest.raises(AccessTokenRejected, match="Token invalid"):
            await adapter.fetch_organisation(bogus, org.realm_id)
        assert tokens.refresh_token is not None
        await adapter.revoke(tokens.refresh_token)
        assert all(grant.revoked for grant in daemon.sandbox.state.quickbooks.grants.values())
    finally:
        await adapter.close()
