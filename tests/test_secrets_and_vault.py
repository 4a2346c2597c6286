"""Secrets never in plaintext: not in SQLite, not in the log, not in RPC results."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from clientlink.cli.demo import PASSPHRASE_ENV
from clientlink.common import protocol as p
from clientlink.common.config import load_config
from clientlink.daemon.service import Daemon
from clientlink.daemon.vault import VaultUnavailable
from tests.helpers import MemoryKeyring, sandbox_get, wait_until


def database_bytes(paths) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        candidate = paths.database.with_name(paths.database.name + suffix)
        if candidate.exists():
            data += candidate.read_bytes()
    return data


async def test_issued_tokens_appear_nowhere_on_disk_in_the_log_or_in_results(
    practice, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    rpc = await practice.connect()

    async def wire(method: p.Method, **params: Any) -> Any:
        """An answer as it came over the wire, unknown fields too: no token may be in it."""
        return await rpc.call_raw(method.name, params)

    client_id = practice.client_ids_needing_reauth[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    session = await wire(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    redirect = await practice.approve(session["authorize_url"], [client.tenant_id])
    results = [
        session,
        await wire(p.AUTH_COMPLETE, session_id=session["session_id"], redirect_url=redirect),
        await wire(p.CLIENTS_LIST, limit=1000),
        await wire(p.DAEMON_STATUS),
        await wire(p.AUDIT_LIST),
        await wire(p.AUTH_STATUS, session_id=session["session_id"]),
    ]
    await rpc.call(p.CLIENTS_CHECK)  # refreshes and API calls, logged at DEBUG
    issued = [t["token"] for t in await sandbox_get(practice.sandbox.base_url, "/_sandbox/tokens")]
    assert len(issued) >= 8
    on_disk = database_bytes(practice.paths)
    log_text = caplog.text
    answers = json.dumps(results)
    for token in issued:
        assert token.encode() not in on_disk
        assert token not in log_text
        assert token not in answers


async def test_provider_secret_is_sealed_and_never_returned(daemon, rpc):
    secret = "app-secret-that-must-not-leak-7c1d"
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="xero", client_secret=secret)
    providers = await rpc.call_raw(p.PROVIDERS_LIST.name)  # as on the wire: no secret in it
    xero = next(item for item in providers["items"] if item["name"] == "xero")
    assert xero["has_secret"] is True
    assert secret not in json.dumps(providers)
    assert secret.encode() not in database_bytes(daemon.paths)


async def test_unknown_provider_secret_is_refused(rpc):
    from clientlink.common.client import RpcError

    with pytest.raises(RpcError) as caught:
        await rpc.call(p.PROVIDERS_SET_SECRET, provider="sage", client_secret="x")
    assert "sage" in caught.value.message


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


async def test_without_a_keyring_the_daemon_refuses_and_says_what_to_do(home, no_keyring):
    home.config_file.write_text(
        home.config_file.read_text().replace('backend = "passphrase"', 'backend = "keyring"')
    )
    daemon = Daemon(home, load_config(home.config_file))
    with pytest.raises(VaultUnavailable) as caught:
        await daemon.start()
    message = str(caught.value)
    assert "No usable system keyring" in message
    assert 'backend = "passphrase"' in message
    assert not home.socket.exists()


async def test_wrong_passphrase_is_refused_without_touching_secrets(
    home, monkeypatch: pytest.MonkeyPatch
):
    first = Daemon(home, load_config(home.config_file))
    await first.start()
    await first.stop()
    before = database_bytes(home)
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase")
    second = Daemon(home, load_config(home.config_file))
    with pytest.raises(VaultUnavailable) as caught:
        await second.start()
    assert "passphrase is wrong" in str(caught.value)
    assert b"vault_wrapped_key" in before


async def test_keyring_holds_the_data_key_across_restarts(keyring_config):
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    first = Daemon(keyring_config, load_config(keyring_config.config_file))
    await first.start()
    await first.stop()
    keys = {name: value for (_, name), value in backend.entries.items() if "data-key" in name}
    assert len(keys) == 1
    (stored,) = keys.values()
    assert stored.encode() not in database_bytes(keyring_config)
    second = Daemon(keyring_config, load_config(keyring_config.config_file))
    await second.start()  # the same key opens the vault check written by the first
    assert second.vault is not None and second.vault.backend == "keyring"
    await second.stop()


async def test_a_keyring_that_never_answers_times_out_with_advice(keyring_config):
    release = threading.Event()
    keyring.set_keyring(MemoryKeyring(block=release))
    text = keyring_config.config_file.read_text()
    keyring_config.config_file.write_text(
        text.replace('backend = "keyring"', 'backend = "keyring"\nkeyring_timeout_seconds = 0.2')
    )
    daemon = Daemon(keyring_config, load_config(keyring_config.config_file))
    try:
        with pytest.raises(VaultUnavailable) as caught:
            await daemon.start()
    finally:
        release.set()
    assert "did not answer within 0.2 s" in str(caught.value)


NOBODY = 65534


async def start_daemon_process(home, env: dict[str, str], *, group: int | None = None):
    """clientlinkd as a child on ``home`` (in ``group`` when given); its log file's path."""
    log = home.state_dir / "clientlinkd.log"
    with log.open("a") as stream:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clientlink.daemon.main",
            "--home",
            str(home.config_dir.parent),
            stderr=stream,
            env=env,
            group=group,
        )
    return process, log


async def stop_process(process) -> None:
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_the_daemon_cannot_be_dumped_and_hides_the_env_passphrase(home):
    passphrase = "env-passphrase-that-must-vanish-5e1b"
    env = {**os.environ, PASSPHRASE_ENV: passphrase, "HOME": str(home.config_dir.parent)}
    # /proc/PID files belong to the process's uid and gid, and to root's once it is not
    # dumpable. Root may read them anyway, so as root the daemon runs in another group.
    group = NOBODY if os.geteuid() == 0 else None
    process, log = await start_daemon_process(home, env, group=group)
    try:
        await wait_until(
            lambda: process.returncode is not None or b" ready" in log.read_bytes(),
            within=30,
            what="clientlinkd to be ready",
        )
        assert process.returncode is None, log.read_text()
        proc = Path(f"/proc/{process.pid}")
        limits = (proc / "limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"]
        status = (proc / "status").read_text()
        gid = next(line.split()[1] for line in status.splitlines() if line.startswith("Gid:"))
        owner = (proc / "environ").stat()
        if group is not None:
            assert int(gid) == NOBODY
            assert owner.st_gid == 0 and (proc / "mem").stat().st_gid == 0
        else:
            assert owner.st_uid == 0 and (proc / "mem").stat().st_uid == 0
        environ = (proc / "environ").read_bytes()
        assert passphrase.encode() not in environ
        assert f"{PASSPHRASE_ENV}=".encode() not in environ
        assert f"HOME={home.config_dir.parent}".encode() in environ
    finally:
        await stop_process(process)
    assert passphrase not in log.read_text()


@pytest.mark.parametrize("backend", ["PlaintextKeyring", "EncryptedKeyring"])
async def test_a_file_keyring_backend_is_refused_like_plaintext(home, backend):
    home.config_file.write_text(
        home.config_file.read_text().replace('backend = "passphrase"', 'backend = "keyring"')
    )
    data_home = home.config_dir.parent / "xdg-data"
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": f"keyrings.alt.file.{backend}",
        "XDG_DATA_HOME": str(data_home),
    }
    env.pop(PASSPHRASE_ENV, None)
    process, log = await start_daemon_process(home, env)
    try:
        assert await asyncio.wait_for(process.wait(), 60) == 78  # EX_CONFIG
    finally:
        await stop_process(process)
    text = log.read_text()
    assert "No usable system keyring" in text and backend in text
    assert 'backend = "passphrase"' in text
    assert "Traceback" not in text
    assert not data_home.exists() or not any(data_home.rglob("*.cfg"))  # no key written
    assert not home.socket.exists()


async def test_a_systemd_credential_is_preferred_to_the_environment(
    home, short_tmp, monkeypatch: pytest.MonkeyPatch
):
    first = Daemon(home, load_config(home.config_file))
    await first.start()
    await first.stop()
    credentials = short_tmp / "credentials"
    credentials.mkdir()
    (credentials / "clientlink-vault").write_text(os.environ[PASSPHRASE_ENV] + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv(PASSPHRASE_ENV, "a stale passphrase left in the environment")
    second = Daemon(home, load_config(home.config_file))
    await second.start()  # the credential's passphrase opens the vault
    await second.stop()
