"""Run the sandbox in-process with uvicorn, on a pre-bound socket so port 0 works."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from types import TracebackType

from clientlink.common.loopback import LoopbackServer
from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.app import build_app
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.seed import DEFAULT_ORG_COUNT, DEFAULT_SEED
from clientlink.sandbox.state import SandboxState


class SandboxServer:
    """The emulated providers on loopback.

    `state` is the in-memory world, available for in-process tests once constructed.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        org_count: int = DEFAULT_ORG_COUNT,
        seed: int = DEFAULT_SEED,
        clock: SandboxClock | None = None,
        enforce_limits: bool = True,
        apps: Iterable[SandboxApp] = (),
        quickbooks_apps: Iterable[SandboxApp] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.state = SandboxState(
            org_count=org_count,
            seed=seed,
            clock=clock,
            enforce_limits=enforce_limits,
            apps=apps,
            quickbooks_apps=quickbooks_apps,
        )
        self._http: LoopbackServer | None = None

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT` once started."""
        if self._http is None:
            raise RuntimeError("the sandbox is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind, start serving in the current event loop, and return once listening."""
        if self._http is not None:
            raise RuntimeError("the sandbox is already started")
        # Delay faults keep requests open; don't let them hold up shutdown for long.
        http = LoopbackServer(
            build_app(self.state), self.host, self.port, graceful_shutdown_seconds=1
        )
        await http.start()
        self._http = http
        self.port = http.port

    async def stop(self) -> None:
        """Stop serving and release the port."""
        if self._http is not None:
            await self._http.stop()
        self._http = None

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_until_signalled(
        self, on_ready: Callable[[SandboxServer], None] | None = None
    ) -> None:
        """Start (if needed), call `on_ready`, serve until SIGINT or SIGTERM, then stop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Handlers go in before `on_ready` announces the URL, so a parent that signals as soon
        # as it reads the banner still gets a clean stop.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            if self._http is None:
                await self.start()
            if on_ready is not None:
                on_ready(self)
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self.stop()

    def run_forever(self, on_ready: Callable[[SandboxServer], None] | None = None) -> None:
        """Blocking entry point for the CLI: serve until interrupted."""
        asyncio.run(self.serve_until_signalled(on_ready))
