"""The bank-feed aggregator (Basiq's API): institutions, users, consent links, connections."""

from __future__ import annotations

import time
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clientlink.common.config import BanksConfig

if TYPE_CHECKING:
    import httpx


def _httpx() -> ModuleType:
    """httpx, imported when the bank-feed service is first called: a waiting daemon does
    without it (and the modules it pulls in)."""
    import httpx

    return httpx


class BanksUnavailable(Exception):
    """The bank-feed service could not be used; ``str()`` says why."""


class BankFeeds:
    """A client for the aggregator's server API, with its own short-lived token."""

    def __init__(self, config: BanksConfig, api_key: str | None) -> None:
        self._config = config
        self._api_key = api_key
        self._token: tuple[str, float] | None = None
        self._institutions: list[dict[str, Any]] | None = None
        self._http_client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """One client for the daemon's life (its connections are reused between calls),
        built on the first call."""
        if self._http_client is None:
            self._http_client = _httpx().AsyncClient(
                base_url=self._config.api_base, timeout=self._config.timeout_seconds
            )
        return self._http_client

    async def close(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()

    def problem(self) -> str | None:
        if not self._api_key:
            return "the bank-feed API key is missing: run `clientlink channel set-secret banks`"
        return None

    async def _request(self, method: str, path: str, *, gone: Any = None, **kwargs: Any) -> Any:
        """One API call; a 410 Gone answers `gone` when one is given."""
        if self.problem():
            raise BanksUnavailable(self.problem() or "")
        token = await self._server_token()
        headers = {"Authorization": f"Bearer {token}", "basiq-version": "3.0"}
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except _httpx().HTTPError as exc:
            raise BanksUnavailable(f"cannot reach the bank-feed service: {exc}") from exc
        if response.status_code == 410 and gone is not None:
            return gone
        if response.status_code >= 400:
            raise BanksUnavailable(
                f"the bank-feed service refused {method} {path} (HTTP {response.status_code}: "
                f"{_detail(response)})"
            )
        return response.json() if response.content else None

    async def _server_token(self) -> str:
        if self._token and self._token[1] > time.monotonic() + 60:
            return self._token[0]
        try:
            response = await self._http.post(
                "/token",
                data={"scope": "SERVER_ACCESS"},
                headers={"Authorization": f"Basic {self._api_key}", "basiq-version": "3.0"},
            )
        except _httpx().HTTPError as exc:
            raise BanksUnavailable(f"cannot reach the bank-feed service: {exc}") from exc
        if response.status_code != 200:
            raise BanksUnavailable(
                f"the bank-feed service refused the API key (HTTP {response.status_code})"
            )
        body = response.json()
        self._token = (body["access_token"], time.monotonic() + float(body["expires_in"]))
        return self._token[0]

    async def institutions(self) -> list[dict[str, Any]]:
        """The catalogue of banks (cached for the daemon's life)."""
        if self._institutions is None:
            body = await self._request("GET", "/institutions")
            self._institutions = [
                {"id": item["id"], "name": item["name"], "short_name": item.get("shortName")}
                for item in body["data"]
            ]
        return self._institutions

    async def bank_names(self, ids: list[str]) -> list[str]:
        """Names for institution ids, refusing unknown ids."""
        by_id = {bank["id"]: bank["name"] for bank in await self.institutions()}
        unknown = [bank_id for bank_id in ids if bank_id not in by_id]
        if unknown:
            raise BanksUnavailable(f"unknown bank ids: {', '.join(unknown)}")
        return [by_id[bank_id] for bank_id in ids]

    async def create_user(self, email: str | None, mobile: str | None, name: str) -> str:
        body = await self._request(
            "POST",
            "/users",
            json={"email": email or "", "mobile": mobile or "", "businessName": name},
        )
        return str(body["id"])

    async def create_link(
        self, user_id: str, institutions: list[str], practice: str
    ) -> tuple[str, datetime]:
        """A new single-use consent link pre-selecting ``institutions`` (older ones die)."""
        body = await self._request(
            "POST",
            f"/users/{user_id}/auth_link",
            json={"institutions": institutions, "practice": practice},
        )
        return str(body["url"]), _parse_time(body["expiresAt"])

    async def link_state(self, user_id: str) -> dict[str, Any]:
        """The user's current link: ``opened``, ``used``, times.

        Basiq answers 410 Gone for an expired link: that is ``{"status": "expired"}``.
        """
        expired = {"status": "expired", "opened": False, "used": False}
        return await self._request("GET", f"/users/{user_id}/auth_link", gone=expired)

    async def connections(self, user_id: str) -> list[dict[str, Any]]:
        body = await self._request("GET", f"/users/{user_id}/connections")
        return list(body["data"])


def _parse_time(text: str) -> datetime:
    from clientlink.common.timeutil import from_iso

    moment = from_iso(text)
    assert moment is not None
    return moment


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and body.get("data"):
        first = body["data"][0]
        return str(first.get("detail") or first.get("title") or body)
    return str(body)
