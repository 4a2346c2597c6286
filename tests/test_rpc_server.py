"""The daemon's socket: greeting, framing, errors, isolation between clients, ownership."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from clientlink.common.client import DaemonClient, RpcError
from clientlink.common.protocol import (
    MAX_FRAME_BYTES,
    METHODS,
    ErrorCode,
    NotificationEvent,
    NotificationKind,
)
from clientlink.daemon.rpc_server import DaemonAlreadyRunning, RpcServer


async def raw_connection(daemon):
    reader, writer = await asyncio.open_unix_connection(
        str(daemon.socket_path), limit=4 * MAX_FRAME_BYTES
    )
    return reader, writer


async def send(reader, writer, payload: bytes) -> dict:
    writer.write(payload)
    await writer.drain()
    return json.loads(await asyncio.wait_for(reader.readline(), 10))


def frame(method: str, params: dict | None = None, request_id: int = 1) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    return json.dumps(body).encode() + b"\n"


HELLO = frame("daemon.hello", {"protocol": 1, "client": "raw"})


async def test_hello_reports_protocol_daemon_version_and_user(rpc):
    assert rpc.hello["protocol"] == 1
    assert rpc.hello["daemon_version"]
    assert rpc.hello["user"]


async def test_every_protocol_method_is_served(daemon):
    assert daemon.daemon.rpc.methods == set(METHODS)


async def test_calls_before_hello_are_refused(daemon):
    reader, writer = await raw_connection(daemon)
    reply = await send(reader, writer, frame("clients.list"))
    assert reply["error"]["code"] == ErrorCode.HELLO_REQUIRED
    assert "daemon.hello" in reply["error"]["message"]
    writer.close()


async def test_other_protocol_version_is_refused_with_advice(daemon):
    reader, writer = await raw_connection(daemon)
    reply = await send(reader, writer, frame("daemon.hello", {"protocol": 99}))
    assert reply["error"]["code"] == ErrorCode.PROTOCOL_MISMATCH
    assert "matching versions" in reply["error"]["message"]
    writer.close()


async def test_malformed_frames_get_clear_errors_and_the_connection_survives(daemon):
    reader, writer = await raw_connection(daemon)
    await send(reader, writer, HELLO)
    reply = await send(reader, writer, b"{not json\n")
    assert reply["error"]["code"] == ErrorCode.PARSE_ERROR
    reply = await send(reader, writer, b"[1, 2]\n")
    assert reply["error"]["code"] == ErrorCode.INVALID_REQUEST
    reply = await send(reader, writer, b'{"id": 4, "method": "daemon.status"}\n')
    assert reply["error"]["code"] == ErrorCode.INVALID_REQUEST
    assert "jsonrpc" in reply["error"]["message"]
    reply = await send(reader, writer, frame("daemon.status", request_id=5))
    assert reply["id"] == 5 and "result" in reply
    writer.close()


async def test_unknown_method_and_bad_params_say_what_is_wrong(rpc):
    with pytest.raises(RpcError) as caught:
        await rpc.call_raw("clients.frobnicate")
    assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
    assert "clients.list" in caught.value.message
    with pytest.raises(RpcError) as caught:
        await rpc.call_raw("clients.list", {"filter": {"status": "sleepy"}})
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    assert "filter.status" in caught.value.message
    with pytest.raises(RpcError) as caught:
        await rpc.call_raw("clients.get", {"client_id": "seven"})
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    with pytest.raises(RpcError) as caught:
        await rpc.call_raw("clients.get", {"client_id": 7})
    assert caught.value.code == ErrorCode.NOT_FOUND


async def test_oversize_frame_closes_only_that_connection(daemon, rpc):
    reader, writer = await raw_connection(daemon)
    await send(reader, writer, HELLO)
    writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "' + b"x" * MAX_FRAME_BYTES + b'"}\n')
    await writer.drain()
    reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
    assert reply["error"]["code"] == ErrorCode.INVALID_REQUEST
    assert "larger than" in reply["error"]["message"]
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
    assert (await rpc.call_raw("daemon.status"))["version"]


def notification_event(number: int, title: str) -> NotificationEvent:
    """A notification event as the daemon builds one (the client reads only its title)."""
    return NotificationEvent(
        id=number,
        kind=NotificationKind.DIGEST,
        title=title,
        body="",
        client_ids=[],
        unread=number,
    )


async def test_a_client_that_never_reads_does_not_slow_another(daemon, rpc):
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stalled, str(daemon.socket_path))
    stalled.sendall(HELLO + frame("events.subscribe", request_id=2))
    await asyncio.sleep(0.1)
    for number in range(20000):
        daemon.daemon.events.publish(notification_event(number, "x" * 200))
    status = await asyncio.wait_for(rpc.call_raw("daemon.status"), 5)
    assert status["version"]
    stalled.close()


async def test_events_after_a_sequence_number_are_replayed(daemon):
    first = await daemon.connect()
    await first.subscribe()
    daemon.daemon.events.publish(notification_event(1, "one"))
    seen = await anext(first.events())
    daemon.daemon.events.publish(notification_event(2, "two"))
    second = await daemon.connect()
    result = await second.subscribe(since_seq=seen["seq"])
    assert result["replayed"] == 1 and not result["gap"]
    replayed = await anext(second.events())
    assert replayed["title"] == "two" and replayed["seq"] == seen["seq"] + 1


async def test_socket_is_private_to_the_user(daemon):
    folder = daemon.socket_path.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon.socket_path.stat().st_mode) == 0o600


async def test_a_live_socket_is_never_stolen(daemon):
    second = RpcServer(daemon.socket_path)
    with pytest.raises(DaemonAlreadyRunning):
        await second.start()
    async with DaemonClient(daemon.socket_path) as client:
        assert await client.call_raw("daemon.status")


async def test_a_stale_socket_from_a_dead_daemon_is_replaced(short_tmp):
    path = short_tmp / "run" / "clientlinkd.sock"
    path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays; nothing listens
    server = RpcServer(path)
    await server.start()
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.close()
    finally:
        await server.stop()


@pytest.mark.skipif(os.getuid() != 0, reason="dropping to another uid needs root")
async def test_a_peer_with_another_uid_is_refused(daemon):
    # Open the folder and socket to everyone so only the daemon's own check stands.
    for folder in list(daemon.socket_path.parents)[:3]:  # run/, home/, the temp folder
        folder.chmod(0o755)
    daemon.socket_path.chmod(0o666)
    script = textwrap.dedent(
        f"""
        import json, os, socket
        os.setgid(65534); os.setuid(65534)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect({str(daemon.socket_path)!r})
        print(s.makefile().readline(), end="")
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()
    reply = json.loads(stdout)
    assert reply["error"]["code"] == ErrorCode.PERMISSION_DENIED
