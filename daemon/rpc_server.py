"""JSON-RPC 2.0 over the daemon's Unix socket: accepting connections and dispatching calls.

Frames are decoded within their limits by :mod:`clientlink.daemon.rpc_frames`. Every
connection is checked with SO_PEERCRED: its uid decides who is calling (an :class:`Identity`,
by the ``identify`` policy: the daemon's own user in single-user mode, the practice's staff in
firm mode), and every call is checked against the method's least role; each has
its own outbound queue and writer task (:mod:`clientlink.daemon.rpc_connection`).
Requests on one connection run concurrently, at most ``MAX_INFLIGHT_PER_CONNECTION`` at a
time, and take turns on the loop through a :class:`~clientlink.daemon.rpc_gate.FairGate`,
so a flooding client waits for its own work and not others for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from clientlink.common.errors import describe_validation_error
from clientlink.common.paths import ensure_group_dir, ensure_private_dir, group_id
from clientlink.common.protocol import (
    MAX_FRAME_BYTES,
    METHODS,
    PROTOCOL_VERSION,
    ErrorCode,
    Role,
)
from clientlink.daemon.rpc_connection import Connection, Identity, Peer, peer_of, write_loop
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_frames import (
    FrameRefused,
    decode_frame,
    encode_frame,
    error_frame,
    id_problem,
    request_problem,
)
from clientlink.daemon.rpc_gate import FairGate

log = logging.getLogger(__name__)

__all__ = [
    "CallContext",
    "Connection",
    "DaemonAlreadyRunning",
    "Handler",
    "Identify",
    "Identity",
    "Peer",
    "RpcServer",
    "hello_check",
]

MAX_INFLIGHT_PER_CONNECTION = 4
RUNNING_CALLS = 1
"""Calls using the loop at once across all connections; the rest wait their turn (FairGate)."""
CALL_PATIENCE_SECONDS = 0.05
"""A call running longer waits on something outside, and lets the next call run."""
FLUSH_SECONDS = 2.0
"""How long a closing connection's queued answers may take to leave."""
REFUSAL_LINGER_SECONDS = 1.0
"""How long a refused connection is kept open for the client's first frame."""


@dataclass
class CallContext:
    """What a handler knows about the call besides its parameters."""

    peer: Peer
    connection: Connection
    identity: Identity


Handler = Callable[[Any, CallContext], Awaitable[Any]]
Identify = Callable[[Peer], Awaitable[Identity]]
"""Who a peer is, or an :class:`RpcFailure` (PERMISSION_DENIED) saying why it is refused."""


def owner_only(uid: int) -> Identify:
    """Single-user mode: only the daemon's own user, who is its admin."""

    async def identify(peer: Peer) -> Identity:
        if peer.uid != uid:
            raise RpcFailure(
                ErrorCode.PERMISSION_DENIED, f"clientlinkd serves only its own user (uid {uid})"
            )
        return Identity(login=peer.user, display_name=peer.user, role=Role.ADMIN)

    return identify


class RpcServer:
    """Accepts connections on the socket and dispatches calls to registered handlers."""

    def __init__(
        self, socket_path: Path, *, allowed_uid: int | None = None, group: str | None = None
    ) -> None:
        self.socket_path = socket_path
        # Firm mode: the socket's folder (0750) and the socket (0660) are the group's too.
        self.group = group
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        # Who may connect and as whom; firm mode replaces it with the staff directory's.
        self.identify: Identify = owner_only(self.allowed_uid)
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
        if self.group:
            ensure_group_dir(self.socket_path.parent, self.group)
        else:
            ensure_private_dir(self.socket_path.parent)
        _remove_stale_socket(self.socket_path)
        # Bound with no access for others (nor, yet, the group): opened up only once chowned.
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(self.socket_path), limit=MAX_FRAME_BYTES + 1
            )
        finally:
            os.umask(old_umask)
        self._bound_socket_file = True
        if self.group:
            os.chown(self.socket_path, -1, group_id(self.group), follow_symlinks=False)
            self.socket_path.chmod(0o660)
        else:
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
        peer = peer_of(writer)
        try:
            await self.identify(peer)
        except RpcFailure as refusal:
            log.warning("refused a connection from uid %s (pid %s)", peer.uid, peer.pid)
            writer.write(error_frame(None, refusal.code, refusal.message))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            # Closing over the client's unread greeting would reset the connection before
            # it read why: take that first frame (briefly), then close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readline(), REFUSAL_LINGER_SECONDS)
            writer.close()
            return
        connection = Connection(peer=peer, on_overflow=writer.transport.abort)
        writer_task = asyncio.create_task(write_loop(connection, writer), name="rpc-writer")
        inflight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_INFLIGHT_PER_CONNECTION)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    # The frame exceeded the limit: the stream cannot be resynchronised.
                    connection.send_reply(
                        error_frame(
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
            message = decode_frame(line)
        except FrameRefused as refused:
            return error_frame(None, ErrorCode.PARSE_ERROR, str(refused))
        request_id = message.get("id") if isinstance(message, dict) else None
        if id_problem(message):
            request_id = None
        problem = request_problem(message)
        if problem:
            return error_frame(request_id, ErrorCode.INVALID_REQUEST, problem)
        method = message["method"]
        is_notification = "id" not in message
        try:
            result = await self._call(method, message.get("params", {}), connection)
        except RpcFailure as failure:
            if is_notification:
                return None
            return error_frame(request_id, failure.code, failure.message, failure.data, method)
        except Exception:
            log.exception("%s failed", method)
            if is_notification:
                return None
            return error_frame(
                request_id,
                ErrorCode.INTERNAL_ERROR,
                "clientlinkd hit an internal error; see its log (journalctl --user -u clientlinkd)",
                method=method,
            )
        if is_notification:
            return None
        frame = encode_frame({"jsonrpc": "2.0", "id": request_id, "result": result})
        if len(frame) > MAX_FRAME_BYTES:
            return error_frame(
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
        # Asked on every call: a role can change, and a person can leave, while connected.
        identity = await self.identify(connection.peer)
        if not identity.role.allows(spec.role):
            raise RpcFailure(
                ErrorCode.ROLE_REQUIRED,
                f"{method} needs the {spec.role.value} role; {identity.login} is "
                f"{identity.role.value}. Nothing was changed: ask an admin to change your role "
                f"(`clientlink staff update {identity.login} --role {spec.role.value}`)",
                {"role_needed": spec.role.value, "role": identity.role.value},
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
        result = await handler(
            parsed, CallContext(peer=connection.peer, connection=connection, identity=identity)
        )
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
