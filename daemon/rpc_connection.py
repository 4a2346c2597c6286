"""One client connection on the daemon's socket: who is on the other end (SO_PEERCRED),
and its outbound queue, bounded in bytes, with the writer task that drains it.

A client that stops reading first loses its events (it sees the gap in sequence numbers),
then, if its answers pile up too, its connection; it never slows a job or another client,
and everything it held is freed when it goes.
"""

from __future__ import annotations

import asyncio
import logging
import pwd
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clientlink.common.protocol import EVENT_METHOD, Role
from clientlink.daemon.rpc_frames import encode_frame

# The name the daemon's log lines have always carried for the socket server.
log = logging.getLogger("clientlink.daemon.rpc_server")

OUTBOUND_QUEUE_BYTES = 4 * 1024 * 1024
"""Answers and events queued for one connection, at most; more answers drop the connection."""
OUTBOUND_EVENT_BYTES = OUTBOUND_QUEUE_BYTES // 2
"""Past this much queued, a connection's events are dropped (answers still have room)."""


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


@dataclass(frozen=True)
class Identity:
    """Who a caller is to the daemon: a staff member and their role, from the peer's uid
    (see :mod:`clientlink.daemon.staff`). In single-user mode the owner is the admin."""

    login: str
    display_name: str
    role: Role
    staff_id: int | None = None


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
        frame = encode_frame({"jsonrpc": "2.0", "method": EVENT_METHOD, "params": event})
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


async def write_loop(connection: Connection, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            frame = await connection.next_frame()
            if frame is None:
                return
            writer.write(frame)
            await writer.drain()
    except (ConnectionError, OSError):
        return


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    return Peer(pid=pid, uid=uid, gid=gid, user=user)
