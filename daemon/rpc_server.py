"""JSON-RPC 2.0 over the daemon's Unix socket.

One JSON object per line, at most 1 MiB, nested at most ``MAX_JSON_DEPTH`` deep, with
integer literals of at most ``MAX_INT_DIGITS`` digits: all checked before or while decoding,
so no frame can make the decoder throw. Every connection is checked with SO_PEERCRED
and must come from the daemon's own user. Each connection has its own outbound queue,
bounded in bytes, and writer task: a client that stops reading first loses its events (it
sees the gap in sequence numbers), then, if its answers pile up too, its connection; it
never slows a job or another client, and everything it held is freed when it goes.
Requests on one connection run concurrently, at most ``MAX_INFLIGHT_PER_CONNECTION`` at a
time, so a flooding client waits for its own work and not others for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import itertools
import json
import logging
import os
import pwd
import re
import socket
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from clientlink.common.errors import describe_validation_error
from clientlink.common.paths import ensure_private_dir
from clientlink.common.protocol import (
    EVENT_METHOD,
    MAX_FRAME_BYTES,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    METHODS,
    PROTOCOL_VERSION,
    ErrorCode,
    value_problem,
)
from clientlink.daemon.rpc_errors import RpcFailure

log = logging.getLogger(__name__)

OUTBOUND_QUEUE_BYTES = 4 * 1024 * 1024
"""Answers and events queued for one connection, at most; more answers drop the connection."""
OUTBOUND_EVENT_BYTES = OUTBOUND_QUEUE_BYTES // 2
"""Past this much queued, a connection's events are dropped (answers still have room)."""
MAX_INFLIGHT_PER_CONNECTION = 4
RUNNING_CALLS = 1
"""Calls using the loop at once across all connections; the rest wait their turn (FairGate)."""
CALL_PATIENCE_SECONDS = 0.05
"""A call running longer waits on something outside, and lets the next call run."""
MAX_ID_CHARS = 200
FLUSH_SECONDS = 2.0
"""How long a closing connection's queued answers may take to leave."""


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
    """One client connection: its peer, its outbound queue and its subscriptions.

    The queue is bounded in bytes. Nothing that queues a frame ever waits: an event that
    does not fit is dropped (the client sees the gap in ``seq``), and an answer that does not
    fit means the client stopped reading, so the connection is dropped (``on_overflow``).
    """

    peer: Peer
    greeted: bool = False
    subscriptions: list[int] = field(default_factory=list)
    dropped_events: int = 0
    queued_bytes: int = 0
    on_overflow: Callable[[], None] | None = None
    _frames: deque[bytes] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _ending: bool = False
    inflight: int = 0
    """Calls read from this connection and not yet answered (waiting or running)."""

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue an event without waiting; a full queue drops it (the seq shows the gap)."""
        if self._ending:
            return
        frame = _encode({"jsonrpc": "2.0", "method": EVENT_METHOD, "params": event})
        if self._frames and self.queued_bytes + len(frame) > OUTBOUND_EVENT_BYTES:
            self.dropped_events += 1
            return
        self._push(frame)

    def send_reply(self, frame: bytes) -> None:
        """Queue an answer without waiting; a client too far behind loses its connection."""
        if self._ending:
            return
        if self._frames and self.queued_bytes + len(frame) > OUTBOUND_QUEUE_BYTES:
            log.warning(
                "dropped the connection of %s (pid %s): it left %d bytes of answers unread",
                self.peer.client,
                self.peer.pid,
                self.queued_bytes,
            )
            self.end(discard=True)
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self._push(frame)

    @property
    def ended(self) -> bool:
        """Whether the connection queues nothing more (it ended, or was dropped)."""
        return self._ending

    def _push(self, frame: bytes) -> None:
        self._frames.append(frame)
        self.queued_bytes += len(frame)
        self._ready.set()

    async def next_frame(self) -> bytes | None:
        """The next frame to write; ``None`` once the connection is ending and drained."""
        while not self._frames:
            if self._ending:
                return None
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        self.queued_bytes -= len(frame)
        return frame

    def end(self, *, discard: bool = False) -> None:
        """Queue nothing more; with ``discard``, free what is still queued."""
        self._ending = True
        if discard:
            self._frames.clear()
            self.queued_bytes = 0
        self._ready.set()


class FairGate:
    """Admits calls to run, ``capacity`` at a time, the least busy connection's first.

    A waiting call is ranked by how many calls its connection had in flight when it
    arrived, then by arrival: a client making one call at a time goes ahead of a client
    with a pipeline full, so a flood waits for itself and not others for it. A call still
    running after ``patience`` seconds is waiting on something outside (a provider, the
    disk) rather than using the loop, so it gives its turn on without being stopped.
    """

    def __init__(self, capacity: int, patience: float) -> None:
        self.capacity = max(1, capacity)
        self.patience = patience
        self.running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, load: int) -> AsyncIterator[None]:
        """Hold a turn for the body (a call of a connection with ``load`` calls in flight)."""
        await self._acquire(load)
        held = [True]

        def give_on() -> None:
            if held[0]:
                held[0] = False
                self._release()

        timer = asyncio.get_running_loop().call_later(self.patience, give_on)
        try:
            yield
        finally:
            timer.cancel()
            give_on()

    async def _acquire(self, load: int) -> None:
        if self.running < self.capacity and not self._waiting:
            self.running += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (load, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # admitted and cancelled at once: pass the turn on
            raise

    def _release(self) -> None:
        self.running -= 1
        while self._waiting and self.running < self.capacity:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                self.running += 1
                turn.set_result(None)


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
        self._gate = FairGate(RUNNING_CALLS, CALL_PATIENCE_SECONDS)

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
        connection = Connection(peer=peer, on_overflow=writer.transport.abort)
        writer_task = asyncio.create_task(_write_loop(connection, writer), name="rpc-writer")
        inflight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_INFLIGHT_PER_CONNECTION)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    # The frame exceeded the limit: the stream cannot be resynchronised.
                    connection.send_reply(
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
                if connection.ended:
                    slots.release()
                    break  # dropped while it waited: what it sent after is not read
                task = asyncio.create_task(self._handle_frame(line, connection))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            for task in inflight:
                task.cancel()
            if self.on_disconnect is not None:
                self.on_disconnect(connection)
            # Let what is queued leave (never blocks), then free whatever could not.
            connection.end()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer_task, timeout=FLUSH_SECONDS)
            connection.end(discard=True)
            if not writer_task.done():
                writer.transport.abort()
                writer_task.cancel()
            writer.close()

    async def _handle_frame(self, line: bytes, connection: Connection) -> None:
        connection.inflight += 1
        try:
            async with self._gate.turn(connection.inflight):
                reply = await self.dispatch(line, connection)
        finally:
            connection.inflight -= 1
        if reply is not None:
            connection.send_reply(reply)

    async def dispatch(self, line: bytes, connection: Connection) -> bytes | None:
        """Answer one frame; ``None`` for a notification (a request without an id)."""
        try:
            message = _decode(line)
        except _FrameRefused as refused:
            return _error_frame(None, ErrorCode.PARSE_ERROR, str(refused))
        request_id = message.get("id") if isinstance(message, dict) else None
        if _id_problem(message):
            request_id = None
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
            frame = await connection.next_frame()
            if frame is None:
                return
            writer.write(frame)
            await writer.drain()
    except (ConnectionError, OSError):
        return


class _FrameRefused(Exception):
    """A frame that is not JSON clientlink can decode; the message says why."""


# A JSON string: quotes around anything but quotes and backslashes, or escapes.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _byte in b"[{":
    _DEPTH_STEP[_byte] = 1
for _byte in b"]}":
    _DEPTH_STEP[_byte] = -1


def _too_deep(line: bytes) -> bool:
    """Whether arrays and objects nest deeper than ``MAX_JSON_DEPTH`` (outside strings)."""
    if line.count(b"[") + line.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_JSON_DEPTH:
        return False
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > MAX_JSON_DEPTH


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise _FrameRefused(
            f"an integer of {len(literal.lstrip('-'))} digits; integers in clientlink have "
            f"at most 19 digits (SQLite's 64-bit range)"
        )
    return int(literal)


def _refuse_constant(name: str) -> Any:
    raise _FrameRefused(f"{name} is not a JSON number; send a finite number")


def _decode(line: bytes) -> Any:
    """Decode one frame; raises :class:`_FrameRefused` with a sentence, and nothing else."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _FrameRefused(
            f"a frame must be UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    if _too_deep(line):
        raise _FrameRefused(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except _FrameRefused:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise _FrameRefused(f"not valid JSON: {exc}") from None


def _id_problem(message: Any) -> str | None:
    """What is wrong with a request's id (``None`` when it can be echoed in the answer)."""
    if not isinstance(message, dict) or "id" not in message or message["id"] is None:
        return None
    request_id = message["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return '"id" must be a string or an integer'
    if isinstance(request_id, str) and len(request_id) > MAX_ID_CHARS:
        return f'"id" must be at most {MAX_ID_CHARS} characters'
    problem = value_problem(request_id)
    return f'"id" {problem}' if problem else None


def _request_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "a request must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return 'a request must carry "jsonrpc": "2.0"'
    if not isinstance(message.get("method"), str):
        return 'a request must name its "method" as a string'
    method_problem = value_problem(message["method"])
    if method_problem:
        return f'"method" {method_problem}'
    return _id_problem(message)


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
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # Stored text holding a lone surrogate: escaped, the frame is still valid UTF-8.
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"


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
