"""What each accounting provider publishes: endpoints, scopes, how its grants age, and how
a confidential app authenticates at its token endpoint.

A provider is named in config.toml (``[providers.NAME]``) with a ``kind`` — ``xero`` or
``quickbooks`` — whose built-in definition here carries the real endpoints; any endpoint can
be overridden, which is how the sandbox is configured. Nothing here knows the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from clientlink.common.config import ProviderConfig


@dataclass(frozen=True)
class ProviderDefinition:
    """What a provider publishes: endpoints, scopes, and how its grants age."""

    kind: str
    display_name: str
    authorize_url: str
    token_url: str
    revoke_url: str | None
    connections_url: str | None
    api_base: str
    scopes: tuple[str, ...]
    refresh_idle_days: int | None = None
    requires_secret: bool = False
    refresh_grace_seconds: int | None = None
    """How long the previous refresh token keeps working after a rotation whose answer
    was lost (None: unknown, assume none)."""
    # How a confidential app authenticates at the token (and revocation) endpoint: the
    # method the provider documents. Xero and Intuit both document HTTP Basic
    # (provider-facts §1, §2); Xero also takes the form body, which its SDK sends.
    client_auth: str = "client_secret_basic"
    # Whether one authorisation covers one provider business (Class Super: scope
    # `target:b/<code>`), so that a sign-in names the business it is for.
    one_grant_per_business: bool = False
    # Where access tokens are short and refresh tokens long-lived and single-use (Class), the
    # watcher refreshes only to keep the refresh token alive, once this fraction of its
    # lifetime (refresh_idle_days) has passed; API calls get fresh access tokens on demand.
    # None: the watcher keeps access tokens fresh (refreshing ahead of each one's end).
    keep_alive_fraction: float | None = None
    # What one sign-in covers, as the bulk flow says it before the sign-in (lower case, no
    # full stop): the chooser's line for this software and the checklist's reminder.
    sign_in_covers: str = "one sign-in covers the organisations you choose"
    # What the provider calls a tenant's id, in sentences ("fund id changed from X to Y").
    id_name: str = "organisation id"
    # OpenID Connect UserInfo: who signed in, where the id_token does not say (Intuit's
    # id_token names the user by `sub` only).
    userinfo_url: str | None = None


XERO = ProviderDefinition(
    kind="xero",
    display_name="Xero",
    authorize_url="https://login.xero.com/identity/connect/authorize",
    token_url="https://identity.xero.com/connect/token",
    revoke_url="https://identity.xero.com/connect/revocation",
    connections_url="https://api.xero.com/connections",
    api_base="https://api.xero.com/api.xro/2.0",
    scopes=("offline_access", "openid", "profile", "email", "accounting.settings.read"),
    refresh_idle_days=60,
    refresh_grace_seconds=30 * 60,
    sign_in_covers="one sign-in covers the organisations you tick",
)

QUICKBOOKS = ProviderDefinition(
    kind="quickbooks",
    display_name="QuickBooks Online",
    authorize_url="https://appcenter.intuit.com/connect/oauth2",
    token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    revoke_url="https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    connections_url=None,
    api_base="https://quickbooks.api.intuit.com/v3/company",
    # openid: the id_token names the Intuit user who connected the company.
    scopes=("com.intuit.quickbooks.accounting", "openid", "email"),
    userinfo_url="https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
    refresh_idle_days=100,
    requires_secret=True,
    refresh_grace_seconds=24 * 3600,
    sign_in_covers="one sign-in per company",
    id_name="company id",
)

BGL = ProviderDefinition(
    kind="bgl",
    display_name="BGL Simple Fund 360",
    authorize_url="https://api.bgl360.com.au/oauth/authorize",
    token_url="https://api.bgl360.com.au/oauth/token",
    # BGL publishes no revocation endpoint: integrations are removed in SF360.
    revoke_url=None,
    connections_url=None,
    api_base="https://api.bgl360.com.au",
    scopes=("audit", "investment", "smsf_partner"),
    # Not published: the sandbox's assumption of a 30-day rolling refresh token (bgl.py).
    refresh_idle_days=30,
    requires_secret=True,
    sign_in_covers="one sign-in covers every fund of the firm",
    id_name="fund id",
)

BUILTIN_DEFINITIONS = {definition.kind: definition for definition in (XERO, QUICKBOOKS, BGL)}
MYOB = ProviderDefinition(
    kind="myob",
    display_name="MYOB",
    authorize_url="https://secure.myob.com/oauth2/account/authorize",
    # The same path name as the authorize page, as MYOB publishes it.
    token_url="https://secure.myob.com/oauth2/v1/authorize",
    revoke_url=None,
    connections_url=None,
    # A company file's cf_uri is {api_base}/{businessId}.
    api_base="https://api.myob.com/accountright",
    # Keys made after 12 March 2025: granular scopes; Company Information and the file.
    scopes=("sme-company-file", "sme-company-settings"),
    # MYOB publishes no refresh-token lifetime (see providers/myob.py).
    refresh_idle_days=None,
    requires_secret=True,
    client_auth="client_secret_post",
    sign_in_covers="one sign-in per company file",
    id_name="company file id",
)

BUILTIN_DEFINITIONS[MYOB.kind] = MYOB
CLASS_SUPER = ProviderDefinition(
    kind="class",
    display_name="Class Super",
    authorize_url="https://app.class.com.au/connect/authorize",
    token_url="https://app.class.com.au/connect/token",
    # Not published: IdentityServer's RFC 7009 endpoint beside the other two (assumed).
    revoke_url="https://app.class.com.au/connect/revocation",
    connections_url=None,
    api_base="https://api.class.com.au/api/1.0",
    # An access specifier, OpenID Connect, and offline_access for a refresh token; each
    # sign-in adds `target:b/<business code>` (provider-facts §7).
    scopes=("openid", "profile", "email", "offline_access", "fund.read"),
    refresh_idle_days=30,
    requires_secret=True,
    # "Invalid shortly after use": not published; 60 s assumed (the sandbox's grace).
    refresh_grace_seconds=60,
    one_grant_per_business=True,
    # 15-minute access tokens: refresh once a third of the 30 days has passed (every 10 days).
    keep_alive_fraction=1 / 3,
    sign_in_covers="one sign-in per Class business",
    id_name="fund id",
)

BUILTIN_DEFINITIONS[CLASS_SUPER.kind] = CLASS_SUPER


def build_definition(config: ProviderConfig) -> ProviderDefinition:
    """The built-in definition for ``config.kind`` with the config's overrides applied."""
    base = BUILTIN_DEFINITIONS[config.kind]
    overrides: dict[str, Any] = {
        name: getattr(config, name)
        for name in (
            "authorize_url",
            "token_url",
            "revoke_url",
            "connections_url",
            "api_base",
            "userinfo_url",
        )
        if getattr(config, name)
    }
    if config.display_name:
        overrides["display_name"] = config.display_name
    if config.scopes:
        overrides["scopes"] = tuple(config.scopes)
    return replace(base, **overrides)
