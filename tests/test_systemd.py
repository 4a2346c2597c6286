"""clientlinkd under systemd: readiness, watchdog, socket activation, and the unit files.

The daemon runs as a real process; systemd's side of each protocol is played by the test
with real sockets (a datagram socket for NOTIFY_SOCKET, a listening socket passed as fd 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientlink.cli.demo import PASSPHRASE_ENV
from clientlink.cli.service_install import SERVICE_UNIT, SOCKET_UNIT, daemon_command, render_units
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.paths import Paths
from clientlink.common.protocol import PROTOCOL_VERSION
from clientlink.daemon import systemd

# Starts its arguments with the socket given as argv[1] on fd 3 and the LISTEN_* variables
# set for its own pid, as systemd does for a socket-activated service.
ACTIVATE = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="clientlinkd.socket")
os.execv(sys.argv[2], sys.argv[2:])
"""


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket in a folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.received: list[str] = []

    async def until(self, message: str, within: float = 30.0) -> list[str]:
        """Every message received up to and including the datagram that holds ``message``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        start = len(self.received)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {message} within {within} s; got {self.received}")
            try:
                datagram = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), remaining)
            except TimeoutError:
                continue
            messages = datagram.decode().split("\n")
            self.received += messages
            if message in messages:
                return self.received[start:]

    async def collect(self, seconds: float) -> list[str]:
        """Whatever arrives in the next ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        messages: list[str] = []
        while (remaining := deadline - loop.time()) > 0:
            try:
                datagram = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), remaining)
            except TimeoutError:
                break
            messages += datagram.decode().split("\n")
        self.received += messages
        return messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_listener(short_tmp: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(short_tmp)
    yield listener
    listener.close()


def home_root(paths: Paths) -> str:
    return str(paths.config_dir.parent)


async def start_daemon(
    command: list[str], env: dict[str, str], **kwargs: object
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs
    )


async def stop_daemon(
    process: asyncio.subprocess.Process, *, terminate: bool = True
) -> tuple[int, str]:
    """SIGTERM (unless it ends by itself), then the exit code and what the daemon logged."""
    if terminate:
        process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    stderr = await asyncio.wait_for(process.stderr.read(), 30)
    return await asyncio.wait_for(process.wait(), 30), stderr.decode()


async def kill_on_failure(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


def daemon_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "WATCHDOG_"))}
    env.pop("NOTIFY_SOCKET", None)
    return {**env, **extra}


# ---------------------------------------------------------------------- sd_notify


async def test_ready_only_once_the_socket_answers_then_watchdog_pings_and_stopping(
    home: Paths, notify_listener: NotifyListener
):
    env = daemon_env(NOTIFY_SOCKET=str(notify_listener.path), WATCHDOG_USEC="200000")
    process = await start_daemon(daemon_command(home_root(home)), env)
    try:
        before_ready = await notify_listener.until("READY=1")
        # The daemon said READY: it must answer right now, without any retry.
        async with DaemonClient(home.socket, client_name="test") as client:
            assert client.hello["protocol"] == PROTOCOL_VERSION
            status = await client.call(p.DAEMON_STATUS)
        assert "STATUS=Watching 0 clients" in before_ready
        assert sum(status.clients_by_status.values()) == 0
        # 200 ms timeout: a ping every 100 ms or so.
        pings = (await notify_listener.collect(1.0)).count("WATCHDOG=1")
        assert pings >= 4, notify_listener.received
        process.send_signal(signal.SIGTERM)
        after = await notify_listener.until("STOPPING=1")
        code, log = await stop_daemon(process, terminate=False)
    finally:
        await kill_on_failure(process)
    assert code == 0, log
    assert "READY=1" not in after


async def test_a_start_failure_tells_systemd_why_and_exits_nonzero(
    home: Paths, notify_listener: NotifyListener
):
    env = daemon_env(NOTIFY_SOCKET=str(notify_listener.path))
    env.pop(PASSPHRASE_ENV)  # the vault cannot open
    process = await start_daemon(daemon_command(home_root(home)), env)
    try:
        code, log = await stop_daemon(process, terminate=False)
    finally:
        await kill_on_failure(process)
    messages = await notify_listener.collect(0.5)
    assert code == 78, log
    assert "READY=1" not in messages
    [status] = [m for m in messages if m.startswith("STATUS=")]
    assert "vault" in status and PASSPHRASE_ENV in status


async def test_watchdog_pings_come_from_the_event_loop_and_stop_while_it_is_blocked(
    notify_listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notify_listener.sock.setblocking(True)
    notify_listener.sock.settimeout(0.2)
    arrivals: list[float] = []
    done = threading.Event()

    def receive() -> None:  # a thread: arrival times are real even while the loop is blocked
        while not done.is_set():
            try:
                if notify_listener.sock.recv(64) == b"WATCHDOG=1":
                    arrivals.append(time.monotonic())
            except TimeoutError:
                continue

    receiver = threading.Thread(target=receive)
    receiver.start()
    stop = asyncio.Event()
    watchdog = asyncio.create_task(systemd.run_watchdog(stop))
    await asyncio.sleep(0.3)
    blocked_from = time.monotonic()
    time.sleep(0.5)  # a blocked event loop
    blocked_until = time.monotonic()
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(watchdog, 1)
    done.set()
    receiver.join()
    assert sum(t < blocked_from for t in arrivals) >= 3
    assert not [t for t in arrivals if blocked_from + 0.01 < t < blocked_until]
    assert sum(t > blocked_until for t in arrivals) >= 2


def test_nothing_is_sent_outside_systemd_or_to_a_dead_socket(
    monkeypatch: pytest.MonkeyPatch, short_tmp: Path
):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_tmp / "nobody-listens"))
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None  # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch):
    name = f"clientlink-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1", systemd.status_text("two\nlines"))
        assert receiver.recv(64) == b"READY=1\nSTATUS=two lines"


# ---------------------------------------------------------------------- socket activation


async def test_socket_activation_serves_the_passed_socket_and_leaves_its_file(home: Paths):
    # Like clientlinkd.socket: systemd binds the daemon's socket path and passes it as fd 3.
    # Were the fd ignored, the daemon would find this live socket and refuse to start.
    home.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(home.socket))
    listening.listen()
    command = [sys.executable, "-c", ACTIVATE, str(listening.fileno()), *daemon_command()]
    command += ["--home", home_root(home)]
    process = await start_daemon(command, daemon_env(), pass_fds=(listening.fileno(),))
    listening.close()  # the daemon holds it now, as systemd would keep its own copy
    try:
        # The kernel completes connect() on the listening socket at once; the greeting is
        # answered once the daemon serves it.
        async with DaemonClient(home.socket, client_name="test") as client:
            assert client.hello["pid"] == process.pid
            await client.call(p.DAEMON_STATUS)
        code, log = await stop_daemon(process)
    finally:
        await kill_on_failure(process)
    assert code == 0, log
    assert home.socket.is_socket(), "the socket file belongs to systemd and must stay"


def test_listen_sockets_takes_unix_stream_sockets_by_name_and_clears_the_environment(
    short_tmp: Path,
):
    script = """\
import json, os, socket, sys
from clientlink.daemon.systemd import listen_sockets
stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stream.bind(sys.argv[1])
stream.listen()
datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
os.dup2(stream.fileno(), 3)
os.dup2(datagram.fileno(), 4)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="rpc:other")
found = listen_sockets(sys.argv[2] if len(sys.argv) > 2 else None)
print(json.dumps({
    "found": [[s.fileno(), s.getsockname()] for s in found],
    "left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    "fd3_inheritable": os.get_inheritable(3),
}))
"""

    def run(*args: str) -> dict[str, object]:
        path = short_tmp / "listen.sock"
        path.unlink(missing_ok=True)
        result = subprocess.run(
            [sys.executable, "-c", script, str(path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    path = str(short_tmp / "listen.sock")
    assert run() == {"found": [[3, path]], "left": [], "fd3_inheritable": False}
    assert run("rpc")["found"] == [[3, path]]
    assert run("other")["found"] == []


def test_listen_sockets_ignores_sockets_meant_for_another_process(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd.listen_sockets() == []
    assert "LISTEN_PID" not in os.environ and "LISTEN_FDS" not in os.environ


# ---------------------------------------------------------------------- unit files


def systemd_analyze_verify(folder: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    runtime = folder / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    # A user manager of our own for verify: its runtime dir, no units of the real user's.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(folder)}
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_rendered_units_pass_systemd_analyze_verify(short_tmp: Path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    probe = short_tmp / "probe" / "clientlink-probe.service"
    probe.parent.mkdir()
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n", encoding="utf-8")
    result = systemd_analyze_verify(short_tmp, probe)
    if result.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {result.stderr.strip()}")
    for home in (None, str(short_tmp / "home with space")):
        folder = short_tmp / ("units-home" if home else "units")
        folder.mkdir()
        units = render_units(daemon_command(home), home)
        for name, text in units.items():
            (folder / name).write_text(text, encoding="utf-8")
        result = systemd_analyze_verify(short_tmp, folder / SOCKET_UNIT, folder / SERVICE_UNIT)
        assert result.returncode == 0, result.stderr
        # verify only warns (exit 0) about unknown or malformed settings: none allowed.
        assert "clientlinkd" not in result.stdout + result.stderr, result.stderr


def test_units_say_what_the_service_needs():
    service = render_units(["/opt/clientlink/bin/clientlinkd"], None)[SERVICE_UNIT]
    socket_unit = render_units(["/opt/clientlink/bin/clientlinkd"], None)[SOCKET_UNIT]
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/opt/clientlink/bin/clientlinkd",
        "WatchdogSec=30",
        "Restart=on-failure",
        "TimeoutStopSec=30",
        "ProtectSystem=strict",
        "MemoryDenyWriteExecute=yes",
        "#LoadCredential=clientlink-vault:%h/.config/clientlink/vault-passphrase",
    ):
        assert line in service.splitlines()
    for line in (
        "ListenStream=%t/clientlink/clientlinkd.sock",
        "SocketMode=0600",
        "DirectoryMode=0700",
    ):
        assert line in socket_unit.splitlines()


def test_exec_start_quotes_a_home_with_spaces_and_escapes_specifiers(tmp_path: Path):
    home = tmp_path / "odd 100% $HOME"
    service = render_units(["/usr/bin/clientlinkd", "--home", str(home)], str(home))[SERVICE_UNIT]
    escaped = str(home).replace("%", "%%").replace("$", "$$")
    assert f'ExecStart=/usr/bin/clientlinkd --home "{escaped}"' in service.splitlines()


# ---------------------------------------------------------------------- the CLI


def clientlink(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clientlink.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_service_install_uninstall_and_status_without_a_running_daemon(short_tmp: Path):
    config_home = short_tmp / "config"
    home = short_tmp / "home"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    unit_dir = config_home / "systemd" / "user"

    installed = clientlink("--home", str(home), "service", "install", "--no-start", env=env)
    assert installed.returncode == 0, installed.stderr
    service = (unit_dir / SERVICE_UNIT).read_text(encoding="utf-8")
    socket_unit = (unit_dir / SOCKET_UNIT).read_text(encoding="utf-8")
    exec_start = " ".join([*daemon_command(), "--home", str(home.resolve())])
    assert f"ExecStart={exec_start}" in service.splitlines()
    assert f"ListenStream={home.resolve()}/run/clientlinkd.sock" in socket_unit.splitlines()
    assert str(unit_dir / SERVICE_UNIT) in installed.stdout

    status = clientlink("--home", str(home), "service", "status", "--json", env=env)
    assert status.returncode == 3, status.stderr
    report = json.loads(status.stdout)
    assert report["unit_files"] == {SOCKET_UNIT: True, SERVICE_UNIT: True}
    assert report["daemon"]["answers"] is False

    removed = clientlink("service", "uninstall", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not (unit_dir / SERVICE_UNIT).exists() and not (unit_dir / SOCKET_UNIT).exists()
    status = clientlink("--home", str(home), "service", "status", env=env)
    assert status.returncode == 3
    assert "not installed" in status.stdout


async def test_service_status_exits_0_when_the_daemon_answers(daemon, short_tmp: Path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(short_tmp / "config")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        "--home",
        home_root(daemon.paths),
        "service",
        "status",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert "answering on" in stdout.decode()
