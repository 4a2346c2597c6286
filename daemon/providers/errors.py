"""The ways a provider call fails, each saying whether the failure is final (the person
must re-authorise) or transient (retry later); ``str()`` is a sentence a person can act on."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed; ``str()`` is a sentence a person can act on."""


class ProviderRefused(ProviderError):
    """The provider refused the grant or the request: final until someone re-authorises."""

    def __init__(self, message: str, error: str = "", description: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class ProviderUnavailable(ProviderError):
    """A transient failure (network, timeout, 5xx): try again later."""


class RateLimited(ProviderUnavailable):
    """The provider said 429: wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None, problem: str | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.problem = problem


class AccessTokenRejected(ProviderError):
    """The API refused the access token (401): refresh, then try once more."""


class TenantForbidden(ProviderError):
    """The API refused this tenant (403): the business was disconnected from the app."""
