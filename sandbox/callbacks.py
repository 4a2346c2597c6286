"""Outbound HTTP callbacks (Twilio status callbacks, Basiq webhooks), to loopback only.

One queue and one worker keep callbacks in the order they happened, as a receiver that
applies `sent` after `delivered` would go backwards. The sandbox never calls out of the
machine: a URL that is not loopback is refused where it is registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from clientlink.sandbox.clock import SandboxClock

LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})
CALLBACK_TIMEOUT_SECONDS = 5.0


def is_loopback_url(url: str) -> bool:
    """Whether `url` is http(s) to 127.0.0.1, [::1] or localhost."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_NAMES


@dataclass
class Callback:
    """One POST to make: a form (`form`), a JSON body (`json`) or exact bytes (`content`,
    for a body whose signature covers its bytes), with extra headers."""

    url: str
    form: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


class CallbackSender:
    """Delivers callbacks in order from a background task; records every attempt."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._queue: asyncio.Queue[Callback] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self.deliveries: list[dict[str, Any]] = []

    def send(self, callback: Callback) -> None:
        """Queue `callback`; call from inside the running event loop."""
        if not is_loopback_url(callback.url):
            raise ValueError(f"callbacks go to loopback addresses only, not {callback.url}")
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(
                self._deliver_forever(self._queue), name="sandbox-callbacks"
            )
        self._queue.put_nowait(callback)

    async def drain(self) -> None:
        """Wait until every queued callback has been attempted."""
        if self._queue is not None:
            await self._queue.join()

    async def _deliver_forever(self, queue: asyncio.Queue[Callback]) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS)
        while True:
            callback = await queue.get()
            try:
                await self._deliver(self._http, callback)
            finally:
                queue.task_done()

    async def _deliver(self, http: httpx.AsyncClient, callback: Callback) -> None:
        record: dict[str, Any] = {
            "url": callback.url,
            "at": self._clock.now().isoformat(),
            "payload": callback.form if callback.form is not None else callback.json,
        }
        if callback.content is not None:
            record["payload"] = json.loads(callback.content)
            record["headers"] = dict(callback.headers)
        try:
            if callback.content is not None:
                response = await http.post(
                    callback.url, content=callback.content, headers=callback.headers
                )
            else:
                response = await http.post(
                    callback.url, data=callback.form, json=callback.json, headers=callback.headers
                )
            record["status_code"] = response.status_code
        except httpx.HTTPError as exc:
            # A receiver that is down loses the callback, as with the real providers.
            record["error"] = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(record)

    def clear(self) -> None:
        """Forget the delivery record (queued callbacks still go out)."""
        self.deliveries.clear()

    async def aclose(self) -> None:
        """Stop the worker (dropping what is still queued) and close the HTTP client."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._http is not None:
            await self._http.aclose()
        self._queue = self._worker = self._http = None
