"""JSON-RPC 2.0 over the daemon's Unix socket.

One JSON object per line, at most 1 MiB. Every connection is checked with SO_PEERCRED
and must come from the daemon's own user. Each connection has its own bounded outbound
queue and writer task, so a client that stops reading only loses its own events (it
sees the gap in sequence numbers) and never slows a job or another client. Requests on
one connection run concurrently; their answers carry their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import pwd
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from clientlink.common.errors import describe_validation_error
from clientlink.common.paths import ensure_private_dir
from clientlink.common.protocol import (
    EVENT_METHOD,
    MAX_FRAME_BYTES,
    METHODS,
    PROTOCOL_VERSION,
    ErrorCode,
)
from clientlink.daemon.rpc_errors import RpcFailure

log = logging.getLogger(__name__)

OUTBOUND_QUEUE_FRAMES = 2000
MAX_INFLIGHT_PER_CONNECTION = 64


@dataclass
class Peer:
    """Who is on the other end of a connection."""

    pid: int
    uid: int
    gid: int
    user: str
    client: str = "unknown"

    @property
    def actor(self) -> str:
        """How audit entries name this person."""
        return self.user


@dataclass
class CallContext:
    """What a handler knows about the call besides its parameters."""

    peer: Peer
    connection: Connection


Handler = Callable[[Any, CallContext], Awaitable[Any]]


@dataclass
class Connection:
    """One client connection: its peer, its outbound queue and its subscriptions."""

    peer: Peer
    outbound: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(OUTBOUND_QUEUE_FRAMES)
    )
    greeted: bool = False
    subscriptions: list[int] = field(default_factory=list)
    dropped_events: int = 0

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue an event without waiting; a full queue drops it (the seq shows the gap)."""
        frame = _encode({"jsonrpc": "2.0", "method": EVENT_METHOD, "params": event})
        try:
            self.outbound.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped_events += 1


class RpcServer:
    """Accepts connections on the socket and dispatches calls to registered handlers."""

    def __init__(self, socket_path: Path, *, allowed_uid: int | None = None) -> None:
        self.socket_path = socket_path
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self._handlers: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None
        # Only a socket file we bound is ours to remove; systemd owns one it handed over.
        self._bound_socket_file = False
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.on_disconnect: Callable[[Connection], None] | None = None

    def register(self, method: str, handler: Handler) -> None:
        """Serve ``method`` (which must be in the protocol) with ``handler``."""
        if method not in METHODS:
            raise ValueError(f"{method} is not a protocol method")
        self._handlers[method] = handler

    @property
    def methods(self) -> set[str]:
        return set(self._handlers)

    async def start(self, inherited: socket.socket | None = None) -> None:
        """Listen on the socket path, or on a socket handed over by systemd."""
        if inherited is not None:
            inherited.setblocking(False)
            # From Python 3.13 asyncio would unlink the socket file on close; systemd owns it.
            keep_file = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
            self._server = await asyncio.start_unix_server(
                self._accept, sock=inherited, limit=MAX_FRAME_BYTES + 1, **keep_file
            )
            return
        ensure_private_dir(self.socket_path.parent)
        _remove_stale_socket(self.socket_path)
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(self.socket_path), limit=MAX_FRAME_BYTES + 1
            )
        finally:
            os.umask(old_umask)
        self._bound_socket_file = True
        self.socket_path.chmod(0o600)

    async def stop(self) -> None:
        """Stop accepting, close every connection, remove the socket file if we made it."""
        if self._server is not None:
            self._server.close()
            # Closing the transports ends each connection's read loop normally; cancelling
            # their tasks instead makes asyncio log the cancellation as an error.
            for writer in list(self._writers):
                writer.close()
            if self._connections:
                await asyncio.wait(self._connections, timeout=5)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        if self._bound_socket_file:
            self._bound_socket_file = False
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        try:
            await self._serve_connection(reader, writer)
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer_of(writer)
        if peer.uid != self.allowed_uid:
            log.warning("refused a connection from uid %s (pid %s)", peer.uid, peer.pid)
            writer.write(
                _error_frame(
                    None,
                    ErrorCode.PERMISSION_DENIED,
                    f"clientlinkd serves only its own user (uid {self.allowed_uid})",
                )
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        connection = Connection(peer=peer)
        writer_task = asyncio.create_task(_write_loop(connection, writer), name="rpc-writer")
        inflight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_INFLIGHT_PER_CONNECTION)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    # The frame exceeded the limit: the stream cannot be resynchronised.
                    await connection.outbound.put(
                        _error_frame(
                            None,
                            ErrorCode.INVALID_REQUEST,
                            f"frame larger than {MAX_FRAME_BYTES} bytes; connection closed",
                        )
                    )
                    break
                except (ConnectionError, OSError):
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._handle_frame(line, connection))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            for task in inflight:
                task.cancel()
            if self.on_disconnect is not None:
                self.on_disconnect(connection)
            await connection.outbound.put(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer_task, timeout=2)
            writer.close()

    async def _handle_frame(self, line: bytes, connection: Connection) -> None:
        reply = await self.dispatch(line, connection)
        if reply is not None:
            await connection.outbound.put(reply)

    async def dispatch(self, line: bytes, connection: Connection) -> bytes | None:
        """Answer one frame; ``None`` for a notification (a request without an id)."""
        try:
            message = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error_frame(None, ErrorCode.PARSE_ERROR, f"not valid JSON: {exc}")
        request_id = message.get("id") if isinstance(message, dict) else None
        problem = _request_problem(message)
        if problem:
            return _error_frame(request_id, ErrorCode.INVALID_REQUEST, problem)
        method = message["method"]
        is_notification = "id" not in message
        try:
            result = await self._call(method, message.get("params", {}), connection)
        except RpcFailure as failure:
            if is_notification:
                return None
            return _error_frame(request_id, failure.code, failure.message, failure.data, method)
        except Exception:
            log.exception("%s failed", method)
            if is_notification:
                return None
            return _error_frame(
                request_id,
                ErrorCode.INTERNAL_ERROR,
                "clientlinkd hit an internal error; see its log (journalctl --user -u clientlinkd)",
                method=method,
            )
        if is_notification:
            return None
        frame = _encode({"jsonrpc": "2.0", "id": request_id, "result": result})
        if len(frame) > MAX_FRAME_BYTES:
            return _error_frame(
                request_id,
                ErrorCode.INVALID_PARAMS,
                "the answer would exceed 1 MiB; ask for less (offset and limit)",
                method=method,
            )
        return frame

    async def _call(self, method: str, params: Any, connection: Connection) -> Any:
        spec = METHODS.get(method)
        handler = self._handlers.get(method)
        if spec is None or handler is None:
            raise RpcFailure(
                ErrorCode.METHOD_NOT_FOUND,
                f"unknown method {method!r}; methods are: {', '.join(sorted(self._handlers))}",
            )
        if not connection.greeted and method != "daemon.hello":
            raise RpcFailure(
                ErrorCode.HELLO_REQUIRED, "call daemon.hello first to agree the protocol version"
            )
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "params must be a JSON object")
        try:
            parsed = spec.params.model_validate(params)
        except ValidationError as exc:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"bad params for {method}: {describe_validation_error(exc)}",
            ) from exc
        result = await handler(parsed, CallContext(peer=connection.peer, connection=connection))
        if method == "daemon.hello":
            connection.greeted = True
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        return result


def hello_check(protocol: int) -> None:
    """Refuse a client that speaks another major protocol version."""
    if protocol != PROTOCOL_VERSION:
        raise RpcFailure(
            ErrorCode.PROTOCOL_MISMATCH,
            f"this clientlinkd speaks protocol {PROTOCOL_VERSION}, the client speaks "
            f"{protocol}: install matching versions of clientlink and clientlinkd",
        )


async def _write_loop(connection: Connection, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            frame = await connection.outbound.get()
            if frame is None:
                return
            writer.write(frame)
            await writer.drain()
    except (ConnectionError, OSError):
        return


def _request_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "a request must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return 'a request must carry "jsonrpc": "2.0"'
    if not isinstance(message.get("method"), str):
        return 'a request must name its "method" as a string'
    if "id" in message and not isinstance(message["id"], (str, int)) and message["id"] is not None:
        return '"id" must be a string or an integer'
    return None


def _peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    return Peer(pid=pid, uid=uid, gid=gid, user=user)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse to steal a live one."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        log.info("removed a stale socket left by a daemon that is gone: %s", path)
        return
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOTSOCK):
            path.unlink(missing_ok=True)
            return
        raise
    finally:
        probe.close()
    raise DaemonAlreadyRunning(f"another clientlinkd is already serving {path}")


class DaemonAlreadyRunning(Exception):
    """A live daemon owns the socket."""


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _error_frame(
    request_id: Any,
    code: ErrorCode | int,
    message: str,
    data: Any = None,
    method: str | None = None,
) -> bytes:
    error: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None or method:
        error["data"] = {**({"method": method} if method else {}), **(data or {})}
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": error})
