"""The HTTP library authlib's OAuth2 client sits on, and how a provider's HTTP answers
(status codes, rate-limit headers, error bodies) become :mod:`.errors`."""

from __future__ import annotations

import functools
import sys
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clientlink.daemon.providers.errors import (
    AccessTokenRejected,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
    TenantForbidden,
)

if TYPE_CHECKING:
    import httpx


@functools.cache
def oauth_client_class() -> type:
    """authlib's ``AsyncOAuth2Client``, imported on first use: authlib and httpx (with what
    httpx pulls in) cost a waiting daemon tens of megabytes it needs only for a sign-in, a
    refresh or an API call."""
    with warnings.catch_warnings():
        # authlib prefers the httpx2 fork and warns when it falls back to httpx, which is what
        # clientlink builds on.
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client


@functools.cache
def library() -> ModuleType:
    """The HTTP library (httpx, or its httpx2 fork) authlib's OAuth2 client is built on,
    imported on first use; timeouts, auth and the errors the adapters catch come from it."""
    return _http_library(oauth_client_class())


@functools.cache
def oauth_error_class() -> type[Exception]:
    """authlib's ``OAuthError`` (what its token calls raise for an OAuth2 error answer)."""
    from authlib.integrations.base_client.errors import OAuthError

    return OAuthError


def token_default_headers() -> dict[str, str]:
    """authlib's default headers for token-endpoint calls (a copy: authlib may add to them)."""
    from authlib.oauth2.client import DEFAULT_HEADERS

    return dict(DEFAULT_HEADERS)


def _http_library(client_class: type) -> ModuleType:
    """The HTTP library (httpx, or its httpx2 fork) that ``client_class`` is built on.

    Read from the class's public bases, so timeouts, auth and the errors the adapters catch are
    always those of the library authlib really uses."""
    for base in client_class.__mro__:
        package = base.__module__.partition(".")[0]
        if base.__name__ == "AsyncClient" and package in ("httpx", "httpx2"):
            return sys.modules[package]
    raise ImportError(f"{client_class.__qualname__} is not built on an httpx AsyncClient")


def __getattr__(name: str) -> Any:
    """``httpx`` and ``AsyncOAuth2Client`` as attributes, imported when first asked for."""
    if name == "httpx":
        return library()
    if name == "AsyncOAuth2Client":
        return oauth_client_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def wire_bytes(response: httpx.Response) -> int:
    """What an answer cost in egress: its body as sent, or as read when not announced."""
    announced = response.headers.get("content-length")
    return int(announced) if announced and announced.isdigit() else len(response.content)


def raise_for_throttle(response: httpx.Response) -> httpx.Response:
    if response.status_code == 429:
        raise rate_limited(response, "the token endpoint")
    return response


def rate_limited(response: httpx.Response, display: str) -> RateLimited:
    retry_after = response.headers.get("Retry-After")
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        seconds = None
    problem = response.headers.get("X-Rate-Limit-Problem")
    return RateLimited(
        f"{display} is rate-limiting clientlink ({problem or 'too many requests'})",
        seconds,
        problem,
    )


def raise_for_api_status(response: httpx.Response, display: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = error_detail(response)
    if status == 429:
        raise rate_limited(response, display)
    if status == 401:
        raise AccessTokenRejected(f"{display} refused the access token: {detail}")
    if status == 403:
        raise TenantForbidden(
            f"{display} no longer gives access to this business ({detail}); it was "
            "disconnected from clientlink: re-authorise"
        )
    if status >= 500:
        raise ProviderUnavailable(f"{display} answered HTTP {status}; will try again")
    raise ProviderRefused(f"{display} refused the request (HTTP {status}): {detail}", str(status))


def error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no detail"
    if isinstance(body, dict):
        # MYOB: {"Errors": [{"Name", "Message", ...}]}
        myob = body.get("Errors")
        if isinstance(myob, list) and myob and isinstance(myob[0], dict):
            return str(myob[0].get("Message") or myob[0].get("Name"))
        if "Detail" in body:
            return str(body["Detail"])
        # RFC 7807 problem details (Class Super).
        if isinstance(body.get("detail"), str):
            return body["detail"]
        fault = body.get("Fault", {}).get("Error") if isinstance(body.get("Fault"), dict) else None
        if fault:
            return str(fault[0].get("Detail") or fault[0].get("Message"))
        # Intuit's gateway (401, 403) writes the same fault in lower case.
        gateway = body.get("fault")
        errors = gateway.get("error") if isinstance(gateway, dict) else None
        if errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("message"))
    return response.reason_phrase or "no detail"


def unreachable(display: str, exc: BaseException) -> str:
    """The sentence for a transport failure; some (a reset connection) carry no text, so
    the failure's kind is named instead of ending the sentence on a colon."""
    detail = str(exc).strip() or {
        "ReadError": "the connection was closed while waiting for the answer",
        "WriteError": "the connection was closed while sending",
        "ConnectError": "the connection was refused",
        "RemoteProtocolError": "the server closed the connection without answering",
    }.get(type(exc).__name__, type(exc).__name__)
    return f"cannot reach {display}: {detail}"
