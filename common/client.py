"""The one async client for the daemon's socket, used by the TUI, CLI, tests and benchmarks.

async with DaemonClient(paths.socket) as daemon:
    listed = await daemon.call(p.CLIENTS_LIST, filter={"status": "needs_reauth"})
    listed.items[0].name                      # a ClientsListResult, validated on arrival
    await daemon.subscribe()
    async for update in daemon.updates():     # protocol.Event models, and Resync markers
        ...

``call(method, ...)`` takes a method constant of ``common/protocol.py`` (``p.CLIENTS_LIST``)
and returns its result model; ``call_raw(name, params)`` sends any name and dict and returns
the decoded JSON (``clientlink rpc``, the fuzz tests). Events are numbered (``seq``): a client
subscribed to every topic notices a gap (events the daemon dropped for a slow reader, or
no longer buffered for a replay) and a daemon restart (``daemon.hello``'s ``epoch``), and says
so with a :class:`Resync` in :meth:`DaemonClient.updates`: whatever it shows must be read
again from a snapshot (``clients.list``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import itertools
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clientlink.common.paths import firm_service_uid, first_uid, user_name
from clientlink.common.protocol import (
    DAEMON_HELLO,
    EVENT_METHOD,
    EVENT_MODELS,
    EVENTS_SUBSCRIBE,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    ErrorCode,
    Event,
    HelloResult,
    Method,
)

log = logging.getLogger(__name__)

_READ_LIMIT = MAX_FRAME_BYTES + 1
_REFUSAL_READ_SECONDS = 2.0

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class EventCursor:
    """Where a client stood in a daemon's events: that daemon start and the last seq seen."""

    epoch: str | None
    seq: int


@dataclass(frozen=True)
class Resync:
    """Events were missed: what a client shows must be read again from a snapshot."""

    reason: str
    after_seq: int | None = None
    """The last event seen before the gap (``None`` after a daemon restart)."""


LOST_EVENTS = "events were lost (the connection fell behind)"
NOT_BUFFERED = "events since the last one seen are no longer buffered"
DAEMON_RESTARTED = "clientlinkd restarted"


def _wire(value: Any) -> Any:
    """Call parameters as JSON: models as their set fields, enums as their values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_wire(item) for item in value]
    return value


class DaemonUnavailable(Exception):
    """The daemon is not running, or the connection to it was lost."""


class DaemonImpostor(DaemonUnavailable):
    """The socket is served by another user: nothing may be sent to it."""


class DaemonRefused(DaemonUnavailable):
    """The socket exists but this user may not open it (not in the firm's group)."""


def check_server_uid(sock: socket.socket, socket_path: Path) -> None:
    """Refuse a socket whose server runs as another user (SO_PEERCRED), before any byte.

    A firm's socket (:func:`~clientlink.common.paths.firm_service_uid`) may be served by
    its service account, or by root (systemd, which listens on it for the service).
    """
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid == os.getuid():
        return
    service = firm_service_uid(socket_path)
    if service is not None and uid in (service, 0):
        return
    if service is not None:
        raise DaemonImpostor(
            f"{socket_path} is served by {user_name(uid)} (uid {uid}, pid {pid}), not by "
            f"the firm's service account {user_name(service)} that owns its folder; "
            "clientlink sends nothing to it. Tell the practice's administrator."
        )
    raise DaemonImpostor(
        f"{socket_path} is served by {user_name(uid)} (uid {uid}, pid {pid}), not by you "
        f"({user_name(os.getuid())}, uid {os.getuid()}); clientlink sends nothing to it. "
        "Stop that process or point clientlink at your own daemon (--home or CLIENTLINK_HOME)."
    )


def _not_allowed(socket_path: Path, exc: OSError) -> DaemonRefused:
    """Why this user may not open ``socket_path``, and who can change that: the folder on
    the way that keeps them out, when a system account (a firm's service) shares it with a
    group they are not in."""
    me = user_name(os.getuid())
    for folder in (*reversed(socket_path.parents), socket_path):
        if os.access(folder, os.X_OK if folder != socket_path else os.W_OK):
            continue
        try:
            info = os.stat(folder)
            group = grp.getgrgid(info.st_gid).gr_name
        except (KeyError, OSError):
            break
        if info.st_uid < first_uid() and info.st_mode & 0o070:
            return DaemonRefused(
                f"you ({me}) may not open the firm's clientlink socket {socket_path}: only "
                f"members of the {group} group may. Ask an admin to run "
                f"`sudo usermod -aG {group} {me}`, then log in again."
            )
        break
    return DaemonRefused(f"you ({me}) may not open {socket_path} ({exc.strerror}).")


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
        self.last_seq: int | None = None
        """The seq of the newest event this connection received (or was told of)."""
        self._watch_gaps = False
        self._subscribe_ids: set[int] = set()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[dict[str, Any] | Resync | None] = asyncio.Queue()
        self._read_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.closed = asyncio.Event()
        # The daemon's sentence when it refused this connection (who we are), kept for every
        # call, even one made after the connection closed.
        self._refused: RpcError | None = None

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
            raise _not_allowed(self.socket_path, exc) from exc
        try:
            check_server_uid(self._writer.get_extra_info("socket"), self.socket_path)
        except DaemonImpostor:
            self._writer.transport.abort()
            self._reader = self._writer = None
            raise
        self._read_task = asyncio.create_task(self._read_loop(), name="daemon-client-reader")
        # Only fields every daemon of this major knows: an older one refuses unknown fields.
        self.hello = await self.call_raw(
            DAEMON_HELLO.name, {"protocol": PROTOCOL_VERSION, "client": self.client_name}
        )

    @property
    def greeting(self) -> HelloResult:
        """``daemon.hello``'s answer, typed (``minor`` 0 and no ``epoch`` from older daemons)."""
        return HelloResult.model_validate(self.hello)

    @property
    def epoch(self) -> str | None:
        """This daemon start's id; ``None`` from a daemon older than protocol minor 1."""
        epoch = self.hello.get("epoch")
        return epoch if isinstance(epoch, str) else None

    @property
    def cursor(self) -> EventCursor | None:
        """Where this connection stands in the daemon's events, to resume from elsewhere."""
        if self.last_seq is None:
            return None
        return EventCursor(self.epoch, self.last_seq)

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

    async def call(self, method: Method[P, R], params: P | None = None, /, **fields: Any) -> R:
        """Call a protocol method and return its result model, validated on arrival.

        Parameters come as the method's params model or as its fields by name
        (``call(p.CLIENTS_LIST, filter={"text": "acme"}, limit=5)``); the daemon validates
        them (so a person's bad input gets the daemon's sentence). Unknown fields in the
        answer are ignored: a newer daemon's additions do not break this client. Where a
        method's name is data (``clientlink rpc``, wire-level tests), use :meth:`call_raw`.
        """
        if not isinstance(method, Method):
            raise TypeError(
                f"call() takes a protocol method constant (such as protocol.CLIENTS_LIST), "
                f"not {method!r}; use call_raw(name, params) where the name is data"
            )
        if params is not None and fields:
            raise TypeError(f"{method.name}: pass a params model or fields by name, not both")
        if params is not None and not isinstance(params, method.params):
            raise TypeError(
                f"{method.name} takes {method.params.__name__}, not {type(params).__name__}"
            )
        unknown = set(fields) - set(method.params.model_fields)
        if unknown:
            raise TypeError(
                f"{method.name} has no parameter {', '.join(sorted(unknown))}; "
                f"its parameters are: {', '.join(method.params.model_fields) or 'none'}"
            )
        wire = _wire(params) if params is not None else _wire(fields)
        result = await self._request(method.name, wire)
        return method.result.model_validate(self._clean(method.name, result))

    async def call_raw(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call any method name with a params dict and return the decoded JSON result.

        For callers whose method is data (``clientlink rpc METHOD JSON``, the fuzz tests);
        raises :class:`RpcError` on an error reply.
        """
        return self._clean(method, await self._request(method, params))

    def _clean(self, method: str, value: Any) -> Any:
        """A result or event as it arrives, before any model reads it (the TUI's makes its
        text safe to show); ``method`` is the call's, or ``"event"``."""
        return value

    async def _request(self, method: str, params: dict[str, Any] | None) -> Any:
        """Send one call and wait for its answer, as decoded JSON."""
        if self._refused is not None:
            raise self._refused
        if self._writer is None or self.closed.is_set():
            raise DaemonUnavailable("not connected to clientlinkd")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if method == EVENTS_SUBSCRIBE.name:
            self._subscribe_ids.add(request_id)
        frame = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        try:
            async with self._write_lock:
                self._writer.write(json.dumps(frame).encode() + b"\n")
                await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._pending.pop(request_id, None)
            # A daemon that refused us wrote why before it closed: read that first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), _REFUSAL_READ_SECONDS)
            if self._refused is not None:
                raise self._refused from exc
            raise DaemonUnavailable(f"lost the connection to clientlinkd: {exc}") from exc
        try:
            return await future
        except RpcError as exc:
            exc.method = method
            raise

    async def subscribe(
        self,
        topics: list[str] | None = None,
        since_seq: int | None = None,
        *,
        resume: EventCursor | None = None,
    ) -> dict[str, Any]:
        """Ask for events on this connection; read them with :meth:`events` or :meth:`updates`.

        Subscribed to every topic (``topics`` absent), the client watches ``seq`` for gaps.
        ``resume`` (another connection's :attr:`cursor`) replays what that one missed: from
        the same daemon start, the buffered events after its seq; after a restart, nothing,
        and a :class:`Resync` says so.
        """
        params: dict[str, Any] = {}
        if topics is not None:
            params["topics"] = topics
        if resume is not None:
            if resume.epoch is not None and resume.epoch == self.epoch:
                since_seq = resume.seq
            else:
                self._events.put_nowait(Resync(DAEMON_RESTARTED))
        if since_seq is not None:
            params["since_seq"] = since_seq
        self._watch_gaps = topics is None
        return await self.call_raw(EVENTS_SUBSCRIBE.name, params)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield event params (``topic``, ``seq``, ...) until the connection ends."""
        while True:
            event = await self._events.get()
            if event is None:
                raise DaemonUnavailable("the connection to clientlinkd ended")
            if isinstance(event, Resync):
                continue
            yield self._clean(EVENT_METHOD, event)

    async def updates(self) -> AsyncIterator[Event | Resync]:
        """Yield events as their protocol models, and a :class:`Resync` where some were missed.

        Topics this client does not know (a newer daemon's) and malformed events are skipped.
        """
        while True:
            event = await self._events.get()
            if event is None:
                raise DaemonUnavailable("the connection to clientlinkd ended")
            if isinstance(event, Resync):
                yield event
                continue
            topic = event.get("topic")
            model = EVENT_MODELS.get(topic) if isinstance(topic, str) else None  # type: ignore[call-overload]
            if model is None:
                continue  # a topic from a newer daemon
            try:
                parsed = model.model_validate(self._clean(EVENT_METHOD, event))
            except ValidationError as exc:
                log.warning("ignoring a malformed %s event: %s", topic, exc)
                continue
            yield parsed

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
            self._fail_pending(self._refused)
            self._events.put_nowait(None)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("method") == EVENT_METHOD:
            event = message.get("params") or {}
            self._note_seq(event.get("seq"))
            self._events.put_nowait(event)
            return
        request_id = message.get("id")
        if request_id is None and isinstance(message.get("error"), dict):
            # The daemon refused this connection (who we are): every call gets its sentence.
            self._refused = self._error(message["error"])
            self._refused.method = DAEMON_HELLO.name
            self._fail_pending(self._refused)
            return
        if request_id in self._subscribe_ids:
            self._subscribe_ids.discard(request_id)  # type: ignore[arg-type]
            self._note_subscribed(message.get("result"))
        future = self._pending.pop(request_id, None)  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in message:
            future.set_exception(self._error(message["error"]))
        else:
            future.set_result(message.get("result"))

    def _note_seq(self, seq: Any) -> None:
        """Follow the event numbers; a jump means the daemon dropped some for us."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        last = self.last_seq
        if self._watch_gaps and last is not None and seq > last + 1:
            self._events.put_nowait(Resync(LOST_EVENTS, after_seq=last))
        if last is None or seq > last:
            self.last_seq = seq

    def _note_subscribed(self, result: Any) -> None:
        """A subscription's answer: where the numbers stand, and whether a replay fell short."""
        if not isinstance(result, dict):
            return
        seq = result.get("seq")
        if result.get("gap"):
            self._events.put_nowait(Resync(NOT_BUFFERED, after_seq=self.last_seq))
        if isinstance(seq, int) and (self.last_seq is None or seq > self.last_seq):
            self.last_seq = seq

    @staticmethod
    def _error(error: Any) -> RpcError:
        if not isinstance(error, dict):
            return RpcError(0, str(error))
        return RpcError(error.get("code", 0), str(error.get("message", "")), error.get("data"))

    def _fail_pending(self, reason: Exception | None = None) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    reason or DaemonUnavailable("the connection to clientlinkd ended")
                )
        self._pending.clear()
