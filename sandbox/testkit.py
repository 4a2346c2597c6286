"""Small helpers for code that drives the sandbox as an OAuth client (tests, benchmarks)."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from clientlink.sandbox import classsuper_identity, quickbooks_identity, xero_identity
from clientlink.sandbox.accounts import PUBLIC_CLIENT_ID, QUICKBOOKS_CLIENT_ID
from clientlink.sandbox.classsuper import BUSINESS_SCOPE_PREFIX, CLASS_CLIENT_ID
from clientlink.sandbox.oauth import s256_challenge

DEFAULT_SCOPE = "openid profile email accounting.settings accounting.contacts offline_access"
QUICKBOOKS_SCOPE = "com.intuit.quickbooks.accounting"
CLASS_SCOPE = "openid profile email offline_access fund.read"


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, S256 code_challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256_challenge(verifier)


def authorize_url(
    base_url: str,
    *,
    redirect_uri: str,
    code_challenge: str | None,
    client_id: str = PUBLIC_CLIENT_ID,
    scope: str = DEFAULT_SCOPE,
    state: str = "st-123",
    method: str | None = "S256",
    response_type: str = "code",
) -> str:
    """Build a sandbox Xero authorize URL; None for `code_challenge`/`method` leaves them out."""
    params = {
        "response_type": response_type,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
    if method is not None:
        params["code_challenge_method"] = method
    return f"{base_url}{xero_identity.AUTHORIZE_PATH}?{urlencode(params)}"


def quickbooks_authorize_url(
    base_url: str,
    *,
    redirect_uri: str,
    code_challenge: str | None = None,
    client_id: str = QUICKBOOKS_CLIENT_ID,
    scope: str = QUICKBOOKS_SCOPE,
    state: str = "st-qbo",
    method: str | None = None,
) -> str:
    """Build a sandbox QuickBooks authorize URL (no PKCE unless a challenge is given)."""
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": scope,
        "redirect_uri": redirect_uri,
        "state": state,
    }
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = method or "S256"
    elif method is not None:
        params["code_challenge_method"] = method
    return f"{base_url}{quickbooks_identity.AUTHORIZE_PATH}?{urlencode(params)}"


def class_authorize_url(
    base_url: str,
    *,
    redirect_uri: str,
    business: str | None = None,
    code_challenge: str | None = None,
    client_id: str = CLASS_CLIENT_ID,
    scope: str = CLASS_SCOPE,
    state: str = "st-class",
) -> str:
    """Build a sandbox Class authorize URL; `business` adds `target:b/<code>` to the scope
    (None leaves the choice to the business selection page)."""
    if business is not None:
        scope = f"{scope} {BUSINESS_SCOPE_PREFIX}{business}"
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    return f"{base_url}{classsuper_identity.AUTHORIZE_PATH}?{urlencode(params)}"
