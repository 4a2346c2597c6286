"""Accounting-software providers: their published endpoints and one adapter per kind.

- :mod:`.definitions`: what each provider publishes (endpoints, scopes, grant lifetimes,
  client authentication), with config.toml's overrides applied.
- :mod:`.adapter`: the OAuth2 adapter all providers share (authlib over httpx, PKCE S256).
- :mod:`.xero`, :mod:`.quickbooks`, :mod:`.classsuper`: each provider's tenants and
  verifying API call.
- :mod:`.results`: what answers become (tokens, organisation details, the signed-in user).
- :mod:`.errors`: the failures, final (re-authorise) or transient (retry later).
- :mod:`.http`: the HTTP library in use, and how HTTP answers become those errors.

Everything the rest of the daemon uses is importable from here.
"""

from __future__ import annotations

from typing import Any

from clientlink.daemon.providers.adapter import ProviderAdapter
from clientlink.daemon.providers.bgl import BglAdapter
from clientlink.daemon.providers.classsuper import ClassSuperAdapter
from clientlink.daemon.providers.definitions import (
    BGL,
    BUILTIN_DEFINITIONS,
    CLASS_SUPER,
    MYOB,
    QUICKBOOKS,
    XERO,
    ProviderDefinition,
    build_definition,
)
from clientlink.daemon.providers.errors import (
    AccessTokenRejected,
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
    TenantForbidden,
)
from clientlink.daemon.providers.myob import MyobAdapter
from clientlink.daemon.providers.quickbooks import QuickBooksAdapter
from clientlink.daemon.providers.results import OrganisationDetails, ProviderUser, TokenSet
from clientlink.daemon.providers.xero import CONNECTIONS_CHECK_INTERVAL, XeroAdapter

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "xero": XeroAdapter,
    "quickbooks": QuickBooksAdapter,
    "bgl": BglAdapter,
    "myob": MyobAdapter,
    "class": ClassSuperAdapter,
}

__all__ = [
    "ADAPTERS",
    "BGL",
    "BUILTIN_DEFINITIONS",
    "CLASS_SUPER",
    "CONNECTIONS_CHECK_INTERVAL",
    "MYOB",
    "QUICKBOOKS",
    "XERO",
    "AccessTokenRejected",
    "BglAdapter",
    "ClassSuperAdapter",
    "MyobAdapter",
    "OrganisationDetails",
    "ProviderAdapter",
    "ProviderDefinition",
    "ProviderError",
    "ProviderRefused",
    "ProviderUnavailable",
    "ProviderUser",
    "QuickBooksAdapter",
    "RateLimited",
    "TenantForbidden",
    "TokenSet",
    "XeroAdapter",
    "build_definition",
    "httpx",
]


def __getattr__(name: str) -> Any:
    """``httpx`` (the library authlib's client is built on), imported when first asked for."""
    if name == "httpx":
        from clientlink.daemon.providers.http import library

        return library()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
