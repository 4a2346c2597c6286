"""Firm mode with real Unix users: a group, people in it and out of it, and a real daemon.

Identity on a firm-mode daemon comes from the peer's uid (SO_PEERCRED), so these tests use
real accounts and real processes; nothing is faked. Once per session (idempotently: the
accounts may be left from an earlier run, and only ``cltest_*`` accounts are ever touched)
:func:`ensure_firm_users` makes

- the group ``cltest`` (the practice's group, as ``clientlink`` is in production);
- ``cltest_svc``, a system account (``useradd --system``) whose primary group is ``cltest``:
  the daemon runs as it, as ``clientlinkd.service`` runs as ``clientlink``;
- ``cltest_alex`` (admin), ``cltest_sam`` (staff), ``cltest_rita`` (read-only): in the group
  and on the staff list; ``cltest_newt``: in the group but not on the staff list (a new
  starter nobody has added yet); ``cltest_otto``: outside the group.

The ``firm`` fixture runs clientlinkd as ``cltest_svc`` in firm mode (``[firm] enabled``)
on a home of its own: the socket's folder is 0750 ``cltest_svc:cltest``, the socket 0660,
the vault's passphrase comes from a systemd-style credential (``$CREDENTIALS_DIRECTORY``)
and the staff list is seeded (:data:`STAFF`). ``firm_practice`` is the same with a copy of
the session's seeded practice (clients, grants) and the sandbox's world restored.

Calls are made the way a staff member makes them: ``firm.call(login, p.CLIENTS_LIST,
{...})`` runs the real ``clientlink rpc --error-json`` as that user (``setpriv --reuid``)
with ``CLIENTLINK_SOCKET`` naming the firm's socket, and returns the result (decoded JSON) or
raises the daemon's :class:`~clientlink.common.client.RpcError` (code, message, data);
``firm.cli(login, *args)`` runs any ``clientlink`` command as that user and returns its exit
code and output; ``async with firm.session(login) as sam`` holds a connection open as that
user (the real DaemonClient in a process of theirs) for calls and events
(``await sam.call(p.EVENTS_SUBSCRIBE)``, ``await sam.next_event("client.status")``).
CI runs the tests as root, which making accounts needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from clientlink.cli.demo import demo_config_text
from clientlink.common.client import RpcError
from clientlink.common.paths import SOCKET_ENV, Paths, resolve_paths
from clientlink.common.protocol import Method, Role
from clientlink.daemon.clock import Clock
from clientlink.daemon.datafiles import RESERVE_NAME
from clientlink.daemon.store import Store
from clientlink.daemon.vault import CREDENTIAL_NAME
from clientlink.sandbox.server import SandboxServer

GROUP = "cltest"
SERVICE = "cltest_svc"
ADMIN = "cltest_alex"
STAFF_MEMBER = "cltest_sam"
READ_ONLY = "cltest_rita"
NEWCOMER = "cltest_newt"
OUTSIDER = "cltest_otto"

PEOPLE = {
    ADMIN: "Alex Admin",
    STAFF_MEMBER: "Sam Staff",
    READ_ONLY: "Rita Reader",
    NEWCOMER: "Newt Newstarter",
    OUTSIDER: "Otto Outsider",
}
"""Each test account and its full name (GECOS): the staff list's display names."""
IN_GROUP = (ADMIN, STAFF_MEMBER, READ_ONLY, NEWCOMER)
STAFF: dict[str, Role] = {ADMIN: Role.ADMIN, STAFF_MEMBER: Role.STAFF, READ_ONLY: Role.READ_ONLY}
"""The staff list every firm fixture starts with."""

FIRM_PASSPHRASE = "firm test passphrase, not a secret"
_LOCK = Path("/run/cltest-accounts.lock")  # /run: only root can make a file there
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READY_SECONDS = 60
_CLI_SECONDS = 60


@dataclass(frozen=True)
class FirmUsers:
    """The test accounts as the system knows them."""

    gid: int
    uids: dict[str, int]

    def uid(self, login: str) -> int:
        return self.uids[login]


def _tool(*command: str) -> None:
    """Run an account tool; retried while another process holds /etc/passwd's lock."""
    for attempt in range(50):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return
        if "lock" not in result.stderr.lower() or attempt == 49:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
        time.sleep(0.1)


def _exists(lookup: Callable[[str], Any], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def ensure_firm_users() -> FirmUsers:
    """Make (or fix) the group and the accounts; touches only ``cltest`` and ``cltest_*``."""
    if os.getuid() != 0:
        pytest.fail("the firm-mode tests make Unix accounts: run them as root (CI does)")
    with open(_LOCK, "a") as lock:  # several test runs may share the machine
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _exists(grp.getgrnam, GROUP):
            _tool("groupadd", "--system", GROUP)
        if not _exists(pwd.getpwnam, SERVICE):
            _tool(
                "useradd", "--system", "--gid", GROUP, "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                "--comment", "clientlink test service", SERVICE,
            )  # fmt: skip
        service = pwd.getpwnam(SERVICE)
        if service.pw_gid != grp.getgrnam(GROUP).gr_gid:  # made otherwise by an earlier run
            _tool("usermod", "--gid", GROUP, SERVICE)
        for login, name in PEOPLE.items():
            if not _exists(pwd.getpwnam, login):
                _tool(
                    "useradd", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/bin/sh", "--comment", name, login,
                )  # fmt: skip
            members = grp.getgrnam(GROUP).gr_mem
            if login in IN_GROUP and login not in members:
                _tool("usermod", "--append", "--groups", GROUP, login)
            elif login not in IN_GROUP and login in members:
                _tool("gpasswd", "--delete", login, GROUP)
    return FirmUsers(
        gid=grp.getgrnam(GROUP).gr_gid,
        uids={login: pwd.getpwnam(login).pw_uid for login in (*PEOPLE, SERVICE)},
    )


@pytest.fixture(scope="session")
def firm_users() -> FirmUsers:
    """The firm's group and test accounts, made once per session."""
    return ensure_firm_users()


@dataclass
class CliResult:
    """What a ``clientlink`` command run as someone did."""

    code: int
    out: str
    err: str


class FirmDaemonExited(AssertionError):
    """The firm's clientlinkd exited instead of becoming ready: its exit code and log."""

    def __init__(self, code: int | None, log: str) -> None:
        super().__init__(f"the firm's clientlinkd did not start (exit {code}):\n{log[-4000:]}")
        self.code = code
        self.log = log


class FirmCliFailed(AssertionError):
    """``clientlink rpc`` failed without a daemon's error reply (no socket, refused...)."""

    def __init__(self, login: str, result: CliResult) -> None:
        super().__init__(f"clientlink as {login} exited {result.code}: {result.err.strip()}")
        self.result = result


def as_user(login: str) -> list[str]:
    """The command prefix that runs what follows as ``login``, with its groups."""
    return ["setpriv", f"--reuid={login}", f"--regid={pwd.getpwnam(login).pw_gid}",
            "--init-groups", "--"]  # fmt: skip


def _wire(params: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if isinstance(params, BaseModel):
        return params.model_dump(mode="json", exclude_unset=True)
    return params


@dataclass
class FirmDaemon:
    """A firm-mode clientlinkd running as ``cltest_svc``, and the means to call it as anyone."""

    home: Paths
    credentials: Path
    sandbox: SandboxServer
    users: FirmUsers
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.home.socket

    @property
    def root(self) -> Path:
        """The home's folder (``clientlinkd --home ROOT``)."""
        return self.home.config_dir.parent

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def start(self) -> None:
        """Start clientlinkd as the service account; returns once it logs ``ready``, or
        raises :class:`FirmDaemonExited`."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {
            "PATH": _SYSTEM_PATH,
            "LANG": "C.UTF-8",
            "HOME": "/nonexistent",
            "PYTHONDONTWRITEBYTECODE": "1",
            "CREDENTIALS_DIRECTORY": str(self.credentials),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *as_user(SERVICE), sys.executable, "-m", "clientlink.daemon.main",
                "--home", str(self.root), stdin=subprocess.DEVNULL, stderr=log, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b"clientlinkd: ready" in log.read():
                    return
            if self.process.returncode is not None:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 0.05)
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        with self.log_path.open("rb") as log:
            log.seek(offset)
            raise FirmDaemonExited(self.process.returncode, log.read().decode(errors="replace"))

    async def stop(self) -> int | None:
        """SIGTERM, and its exit code."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    async def cli(
        self, login: str, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> CliResult:
        """Run ``clientlink ARGS`` as ``login`` against the firm's socket."""
        process = await asyncio.create_subprocess_exec(
            *as_user(login), sys.executable, "-m", "clientlink.cli", *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={
                "PATH": _SYSTEM_PATH,
                "LANG": "C.UTF-8",
                "HOME": "/nonexistent",
                "PYTHONDONTWRITEBYTECODE": "1",
                SOCKET_ENV: str(self.socket),
                **(env or {}),
            },
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(stdin or b""), _CLI_SECONDS)
        return CliResult(process.returncode or 0, out.decode(), err.decode())

    async def call(
        self,
        login: str,
        method: Method[Any, Any],
        params: BaseModel | dict[str, Any] | None = None,
    ) -> Any:
        """Call ``method`` as ``login`` (``clientlink rpc``): the result as decoded JSON, or
        the daemon's refusal raised as :class:`RpcError` (``code``, ``message``, ``data``);
        :class:`FirmCliFailed` when there was no reply at all (the socket refused them)."""
        if not isinstance(method, Method):
            raise TypeError(f"call() takes a protocol method constant, not {method!r}")
        result = await self.cli(
            login, "rpc", "--error-json", method.name, json.dumps(_wire(params))
        )
        if result.code == 0:
            return json.loads(result.out)
        for line in reversed(result.err.splitlines()):
            with contextlib.suppress(ValueError):
                reply = json.loads(line)
                if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
                    error = reply["error"]
                    raise RpcError(error["code"], error["message"], error.get("data"), method.name)
        raise FirmCliFailed(login, result)

    def session(self, login: str) -> FirmSession:
        """``async with firm.session(login) as sam:`` a connection held open as ``login``."""
        return FirmSession(self, login)


# A staff member's long-lived connection: the real DaemonClient, run as them, relaying calls
# (one JSON line each on stdin) and their answers and events (JSON lines on stdout).
_RELAY = """
import asyncio, json, sys
from clientlink.common.client import DaemonClient, RpcError

def say(message):
    sys.stdout.write(json.dumps(message) + "\\n")
    sys.stdout.flush()

def error(exc):
    return {"code": exc.code, "message": exc.message, "data": exc.data}

async def main():
    client = DaemonClient(sys.argv[1], client_name="firm-session")
    try:
        await client.connect()
    except RpcError as exc:
        return say({"refused": error(exc)})
    except Exception as exc:
        return say({"failed": str(exc)})
    say({"ready": client.hello})
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def events():
        async for event in client.events():
            say({"event": event})

    async def answer(request):
        try:
            say({"id": request["id"], "result": await client.call_raw(
                request["method"], request["params"])})
        except RpcError as exc:
            say({"id": request["id"], "error": error(exc)})

    tasks = {asyncio.create_task(events())}
    while line := await stdin.readline():
        tasks.add(asyncio.create_task(answer(json.loads(line))))
    await client.close()

asyncio.run(main())
"""


class FirmSession:
    """One staff member's connection held open (``async with firm.session(login)``): calls
    on it, and the events the daemon pushes to it (after ``EVENTS_SUBSCRIBE``)."""

    def __init__(self, firm: FirmDaemon, login: str) -> None:
        self.firm = firm
        self.login = login
        self.hello: dict[str, Any] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._process: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = 0
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FirmSession:
        self._process = await asyncio.create_subprocess_exec(
            *as_user(self.login), sys.executable, "-c", _RELAY, str(self.firm.socket),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # its stderr: the test's output
            env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": "/nonexistent",
                 "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
        assert self._process.stdout is not None
        first = json.loads(await asyncio.wait_for(self._process.stdout.readline(), _CLI_SECONDS))
        if "refused" in first:
            await self._end()
            error = first["refused"]
            raise RpcError(error["code"], error["message"], error.get("data"), "daemon.hello")
        if "failed" in first:
            await self._end()
            raise AssertionError(f"{self.login} could not connect: {first['failed']}")
        self.hello = first["ready"]
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._end()

    async def _end(self) -> None:
        if self._process is not None and self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            message = json.loads(line)
            if "event" in message:
                self.events.put_nowait(message["event"])
                continue
            future = self._pending.pop(message["id"], None)
            if future is None or future.done():
                continue
            if "error" in message:
                error = message["error"]
                future.set_exception(RpcError(error["code"], error["message"], error.get("data")))
            else:
                future.set_result(message["result"])
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AssertionError(f"{self.login}'s connection ended"))

    async def call(
        self, method: Method[Any, Any], params: BaseModel | dict[str, Any] | None = None
    ) -> Any:
        """Like :meth:`FirmDaemon.call`, on this connection."""
        if not isinstance(method, Method):
            raise TypeError(f"call() takes a protocol method constant, not {method!r}")
        assert self._process is not None and self._process.stdin is not None
        self._ids += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = future
        request = {"id": self._ids, "method": method.name, "params": _wire(params)}
        self._process.stdin.write(json.dumps(request).encode() + b"\n")
        await self._process.stdin.drain()
        try:
            return await asyncio.wait_for(future, _CLI_SECONDS)
        except RpcError as exc:
            exc.method = method.name
            raise

    async def next_event(self, topic: str, *, within: float = 20.0, **match: Any) -> dict[str, Any]:
        """The next event with ``topic`` whose fields equal ``match`` (others are dropped)."""

        async def wait() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                if event.get("topic") == topic and all(
                    event.get(key) == value for key, value in match.items()
                ):
                    return event

        return await asyncio.wait_for(wait(), within)


def firm_config_text(sandbox: SandboxServer, extra: str = "") -> str:
    """The firm's config.toml: the sandbox's providers, firm mode, the group ``cltest``."""
    return (
        demo_config_text(sandbox.base_url, smtp_port=sandbox.smtp_port)
        + f'\n[firm]\nenabled = true\ngroup = "{GROUP}"\nfirst_admin = "{ADMIN}"\n'
        + extra
    )


async def _seed_staff(paths: Paths, staff: dict[str, Role]) -> None:
    store = await Store.open(paths.database)
    try:
        now = Clock().now()
        for login, role in staff.items():
            if await store.get_staff(login) is None:
                await store.add_staff(
                    login=login, display_name=PEOPLE.get(login, login), email=None,
                    role=role.value, now=now,
                )  # fmt: skip
    finally:
        await store.close()


def _hand_over(folder: Path, users: FirmUsers) -> None:
    """Give the home to the service account: the files private, the folder the group's."""
    service = users.uid(SERVICE)
    for path in (folder, *folder.rglob("*")):
        os.chown(path, service, users.gid, follow_symlinks=False)
    folder.chmod(0o750)  # staff reach the run/ folder in it; nothing else
    for child in folder.iterdir():
        if child.is_dir():
            child.chmod(0o700)


FirmFactory = Callable[..., Awaitable[FirmDaemon]]


@pytest.fixture
async def make_firm(
    firm_users: FirmUsers, sandbox: SandboxServer, request: pytest.FixtureRequest
) -> AsyncIterator[FirmFactory]:
    """``await make_firm(practice=False, staff=STAFF, config="", passphrase=..., start=True)``:
    a firm-mode daemon (stopped and removed at the end of the test)."""
    made: list[tuple[FirmDaemon, Path]] = []

    async def build(
        *,
        practice: bool = False,
        staff: dict[str, Role] | None = None,
        config: str = "",
        passphrase: str | None = None,
        start: bool = True,
    ) -> FirmDaemon:
        # Short (socket paths stay under 108 bytes); folders above it are root's or sticky.
        top = Path(tempfile.mkdtemp(prefix="clf-"))
        top.chmod(0o755)
        paths = resolve_paths(top / "home")
        paths.ensure()
        paths.config_file.write_text(firm_config_text(sandbox, config), encoding="utf-8")
        if practice:
            from tests.conftest import TEST_PASSPHRASE

            template = request.getfixturevalue("practice_template")
            for source, target in (
                (template.paths.data_dir, paths.data_dir),
                (template.paths.state_dir, paths.state_dir),
            ):
                for item in source.iterdir():
                    if item.is_file() and item.name != RESERVE_NAME:
                        shutil.copy2(item, target / item.name)
            sandbox.state.restore(template.world)
            passphrase = passphrase or TEST_PASSPHRASE
        await _seed_staff(paths, STAFF if staff is None else staff)
        credentials = top / "credentials"
        credentials.mkdir(mode=0o700)
        (credentials / CREDENTIAL_NAME).write_text(passphrase or FIRM_PASSPHRASE)
        _hand_over(paths.config_dir.parent, firm_users)
        for path in (credentials, credentials / CREDENTIAL_NAME):
            os.chown(path, firm_users.uid(SERVICE), firm_users.gid)
        credentials.chmod(0o500)
        (credentials / CREDENTIAL_NAME).chmod(0o400)
        firm = FirmDaemon(
            paths.shared_with(GROUP), credentials, sandbox, firm_users, top / "clientlinkd.log"
        )
        made.append((firm, top))
        if start:
            await firm.start()
        return firm

    try:
        yield build
    finally:
        for firm, top in made:
            await firm.stop()
            shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
async def firm(make_firm: FirmFactory) -> FirmDaemon:
    """A firm-mode daemon with no clients yet and the staff list :data:`STAFF`."""
    return await make_firm()


@pytest.fixture
async def firm_practice(make_firm: FirmFactory) -> FirmDaemon:
    """A firm-mode daemon holding a copy of the session's seeded practice."""
    return await make_firm(practice=True)
