"""A small uvicorn server on a loopback socket, run inside the caller's event loop.

The daemon serves its sign-in redirect listener with it and the sandbox its emulated
providers. Whoever runs it owns the process's signals, so uvicorn's own handling is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the embedding process owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class LoopbackServer:
    """Serves ``app`` on ``host:port`` (0 = any free port) until :meth:`stop`."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        graceful_shutdown_seconds: float | None = 2,
    ) -> None:
        self._app = app
        self.host = host
        self._requested_port = port
        self._graceful = graceful_shutdown_seconds
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        """Bind and start serving; raises ``OSError`` when the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # An explicit IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets
        # whose protocol says TCP, and without it keep-alive answers wait ~40 ms on Nagle.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=self._graceful,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="loopback-http")
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the reason serve() ended
                raise RuntimeError("the server stopped before it started listening")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving, wait for the server to finish, release the port."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None
