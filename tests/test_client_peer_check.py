"""The client side of SO_PEERCRED: a socket served by another user gets nothing, secrets least.

In firm mode the one exception: a firm's socket (in a folder its system account owns, that
only root could have made) is served by that account, and the staff's clients accept it.

CI runs as root, so a real server runs here as ``nobody`` (uid 65534) on the socket path a
home names; the root client must refuse it with a sentence before sending a single byte.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from clientlink.common.client import DaemonClient, DaemonImpostor, check_server_uid
from clientlink.common.paths import resolve_paths
from tests.firm import SERVICE, FirmUsers

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="serving as another uid needs root")

SERVER = textwrap.dedent(
    """
    import os, socket, sys
    uid = int(sys.argv[2]) if len(sys.argv) > 2 else 65534
    os.setgroups([]); os.setgid(65534); os.setuid(uid)  # started as root, serves as nobody
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sys.argv[1])
    server.listen(1)
    print("ready", flush=True)
    connection, _ = server.accept()
    connection.settimeout(10)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except OSError:
        pass
    print(len(received), flush=True)
    """
)


@pytest.fixture
async def impostor(short_tmp):
    """A home whose socket is served by a process running as ``nobody``."""
    paths = resolve_paths(short_tmp / "home")
    for folder in (short_tmp, short_tmp / "home"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
    paths.runtime_dir.mkdir()
    os.chown(paths.runtime_dir, NOBODY, NOBODY)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(paths.socket),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 20) == b"ready\n"
    try:
        yield paths, process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def bytes_received(process) -> int:
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    return int(out)


async def test_the_client_refuses_a_socket_served_by_another_user(impostor):
    paths, process = impostor
    client = DaemonClient(paths.socket)
    with pytest.raises(DaemonImpostor) as refused:
        await client.connect()
    message = str(refused.value)
    assert "served by nobody (uid 65534" in message
    assert "not by you" in message and "sends nothing" in message
    assert await bytes_received(process) == 0


async def test_the_cli_sends_no_secret_to_another_users_socket(impostor):
    paths, process = impostor
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        "--home",
        str(paths.config_dir.parent),
        "provider",
        "set-secret",
        "xero",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(cli.communicate(b"app-secret-for-nobody\n"), 60)
    assert cli.returncode != 0
    assert b"served by nobody" in err and b"Traceback" not in err
    assert b"Start it with" not in err  # it is not that the daemon is missing
    assert await bytes_received(process) == 0


# --------------------------------------------------------------------------- firm mode


async def serve_as(uid: int, socket_path) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(socket_path), str(uid),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 20) == b"ready\n"
    return process


def firm_folder(short_tmp, users: FirmUsers, server_uid: int):
    """A firm's socket folder (0750, the service account's, shared with its group), in
    which a process running as ``server_uid`` listens (made by root, as systemd would)."""
    short_tmp.chmod(0o755)
    folder = short_tmp / "run"
    folder.mkdir()
    os.chown(folder, server_uid, users.gid)  # so that server can bind in it...
    return folder


def hand_to_service(folder, users: FirmUsers) -> None:
    os.chown(folder, users.uid(SERVICE), users.gid)  # ...then the folder is the service's
    folder.chmod(0o750)


async def test_a_firm_socket_served_by_another_account_than_its_service_is_refused(
    short_tmp, firm_users
):
    folder = firm_folder(short_tmp, firm_users, NOBODY)
    process = await serve_as(NOBODY, folder / "clientlinkd.sock")
    hand_to_service(folder, firm_users)
    try:
        with pytest.raises(DaemonImpostor) as refused:
            await DaemonClient(folder / "clientlinkd.sock").connect()
        message = str(refused.value)
        assert "served by nobody (uid 65534" in message
        assert f"not by the firm's service account {SERVICE}" in message
        assert await bytes_received(process) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_firm_socket_served_by_its_service_account_is_accepted(short_tmp, firm_users):
    folder = firm_folder(short_tmp, firm_users, firm_users.uid(SERVICE))
    path = folder / "clientlinkd.sock"
    process = await serve_as(firm_users.uid(SERVICE), path)
    hand_to_service(folder, firm_users)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            check_server_uid(sock, path)  # root trusts the firm's daemon: no refusal
            sock.sendall(b"hello")
        assert await bytes_received(process) == 5
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_socket_in_a_folder_others_may_write_is_not_a_firms(short_tmp, firm_users):
    folder = firm_folder(short_tmp, firm_users, firm_users.uid(SERVICE))
    path = folder / "clientlinkd.sock"
    process = await serve_as(firm_users.uid(SERVICE), path)
    hand_to_service(folder, firm_users)
    folder.chmod(0o770)  # the group could have planted the socket
    try:
        with pytest.raises(DaemonImpostor, match=f"served by {SERVICE}.*not by you"):
            await DaemonClient(path).connect()
        assert await bytes_received(process) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
