"""Run the sandbox in-process: uvicorn on a pre-bound socket (so port 0 works), the SMTP
server beside it, and a ticker that moves SMS deliveries along the sandbox clock."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable
from types import TracebackType

from clientlink.common.loopback import LoopbackServer
from clientlink.sandbox.accounts import SandboxApp
from clientlink.sandbox.app import build_app
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.mail import SandboxSmtp
from clientlink.sandbox.seed import DEFAULT_ORG_COUNT, DEFAULT_SEED
from clientlink.sandbox.smsf_seed import DEFAULT_ENTITY_COUNT
from clientlink.sandbox.state import SandboxState, SmtpEndpoint

# How often time-driven state is brought up to the clock (SMS status changes, callbacks).
TICK_SECONDS = 0.1


class SandboxServer:
    """The emulated providers on loopback.

    `state` is the in-memory world, available for in-process tests once constructed.
    The SMTP server listens on `host:smtp_port` (0 picks a free port; `.smtp_port` once
    started); `smtp_starttls` offers STARTTLS with a self-signed certificate.
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
        smtp_port: int = 0,
        smtp_starttls: bool = True,
        smsf_entity_count: int = DEFAULT_ENTITY_COUNT,
    ) -> None:
        self.host = host
        self.port = port
        self.smtp_port = smtp_port
        self._smtp_starttls = smtp_starttls
        self.state = SandboxState(
            org_count=org_count,
            seed=seed,
            clock=clock,
            enforce_limits=enforce_limits,
            apps=apps,
            quickbooks_apps=quickbooks_apps,
            smsf_entity_count=smsf_entity_count,
        )
        self._http: LoopbackServer | None = None
        self._smtp: SandboxSmtp | None = None
        self._ticker: asyncio.Task[None] | None = None

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
        smtp = SandboxSmtp(
            self.state.mail,
            self.state.faults,
            self.state.calls,
            self.host,
            self.smtp_port,
            starttls=self._smtp_starttls,
        )
        try:
            await smtp.start()
        except BaseException:
            await http.stop()
            raise
        self._http, self._smtp = http, smtp
        self.port, self.smtp_port = http.port, smtp.port
        self.state.smtp = SmtpEndpoint(self.host, smtp.port, smtp.certificate_pem)
        self._ticker = asyncio.create_task(self._tick_forever(), name="sandbox-ticker")

    async def _tick_forever(self) -> None:
        while True:
            self.state.tick()
            await asyncio.sleep(TICK_SECONDS)

    async def stop(self) -> None:
        """Stop serving and release the ports."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._smtp is not None:
            await self._smtp.stop()
        if self._http is not None:
            await self._http.stop()
        await self.state.callbacks.aclose()
        self._http = self._smtp = self._ticker = None
        self.state.smtp = None

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
