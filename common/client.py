"""The one async client for the daemon's socket, used by the TUI, CLI, tests and benchmarks.

async with DaemonClient(paths.socket) as daemon:
    clients = await daemon.call("clients.list", {"filter": {"status": "needs_reauth"}})
    await daemon.subscribe(["client.status_changed"])
    async for event in daemon.events():
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pwd
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from clientlink.common.protocol import (
    EVENT_METHOD,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    ErrorCode,
)

_READ_LIMIT = MAX_FRAME_BYTES + 1


class DaemonUnavailable(Exception):
    """The daemon is not running, or the connection to it was lost."""


class DaemonImpostor(DaemonUnavailable):
    """The socket is served by another user: nothing may be sent to it."""


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_server_uid(sock: socket.socket, socket_path: Path) -> None:
    """Refuse a socket whose server runs as another user (SO_PEERCRED), before any byte."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid == os.getuid():
        return
    raise DaemonImpostor(
        f"{socket_path} is served by {_user_name(uid)} (uid {uid}, pid {pid}), not by you "
        f"({_user_name(os.getuid())}, uid {os.getuid()}); clientlink sends nothing to it. "
        "Stop that process or point clientlink at your own daemon (--home or CLIENTLINK_HOME)."
    )


class RpcError(Exception):
    """The daemon answered a call with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None, method: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.method = method

    @property
    def error_code(self) -> ErrorCode | int:
        """The code as an :class:`ErrorCode` when it is one of ours."""
        try:
            return ErrorCode(self.code)
        except ValueError:
            return self.code

    def __str__(self) -> str:
        return f"{self.method}: {self.message} (error {self.code})"


class DaemonClient:
    """A connection to ``clientlinkd``: calls, and the events it pushes."""

    def __init__(self, socket_path: str | os.PathLike[str], *, client_name: str = "clientlink"):
        self.socket_path = Path(socket_path)
        self.client_name = client_name
        self.hello: dict[str, Any] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._read_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.closed = asyncio.Event()

    async def __aenter__(self) -> DaemonClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and greet the daemon; raises :class:`DaemonUnavailable`."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=_READ_LIMIT
            )
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnavailable(
                f"clientlinkd is not running (no daemon at {self.socket_path})"
            ) from exc
        except PermissionError as exc:
            raise DaemonUnavailable(f"not allowed to open {self.socket_path}: {exc}") from exc
        try:
            check_server_uid(self._writer.get_extra_info("socket"), self.socket_path)
        except DaemonImpostor:
            self._writer.transport.abort()
            self._reader = self._writer = None
            raise
        self._read_task = asyncio.create_task(self._read_loop(), name="daemon-client-reader")
        self.hello = await self.call(
            "daemon.hello", {"protocol": PROTOCOL_VERSION, "client": self.client_name}
        )

    async def close(self) -> None:
        """Close the connection; pending calls fail with :class:`DaemonUnavailable`."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        self._fail_pending()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call ``method`` and return its result; raises :class:`RpcError` on an error reply."""
        if self._writer is None or self.closed.is_set():
            raise DaemonUnavailable("not connected to clientlinkd")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        frame = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        try:
            async with self._write_lock:
                self._writer.write(json.dumps(frame).encode() + b"\n")
                await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._pending.pop(request_id, None)
            raise DaemonUnavailable(f"lost the connection to clientlinkd: {exc}") from exc
        try:
            return await future
        except RpcError as exc:
            exc.method = method
            raise

    async def subscribe(
        self, topics: list[str] | None = None, since_seq: int | None = None
    ) -> dict[str, Any]:
        """Ask for events on this connection; read them with :meth:`events`."""
        params: dict[str, Any] = {}
        if topics is not None:
            params["topics"] = topics
        if since_seq is not None:
            params["since_seq"] = since_seq
        return await self.call("events.subscribe", params)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield event params (``topic``, ``seq``, ...) until the connection ends."""
        while True:
            event = await self._events.get()
            if event is None:
                raise DaemonUnavailable("the connection to clientlinkd ended")
            yield event

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                self._dispatch(json.loads(line))
        except (ConnectionError, OSError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            self.closed.set()
            self._fail_pending()
            self._events.put_nowait(None)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("method") == EVENT_METHOD:
            self._events.put_nowait(message.get("params") or {})
            return
        future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in message:
            error = message["error"]
            future.set_exception(
                RpcError(error.get("code", 0), error.get("message", ""), error.get("data"))
            )
        else:
            future.set_result(message.get("result"))

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DaemonUnavailable("the connection to clientlinkd ended"))
        self._pending.clear()
