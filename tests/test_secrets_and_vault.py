"""Secrets never in plaintext: not in SQLite, not in the log, not in RPC results."""

from __future__ import annotations

import json
import logging
import threading

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from clientlink.common.config import load_config
from clientlink.daemon.service import Daemon
from clientlink.daemon.vault import VaultUnavailable
from clientlink.tui.demo import PASSPHRASE_ENV
from tests.helpers import sandbox_get


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
    client_id = practice.client_ids_needing_reauth[0]
    client = await rpc.call("clients.get", {"client_id": client_id})
    session = await rpc.call("auth.begin", {"provider": "xero", "client_id": client_id})
    redirect = await practice.approve(session["authorize_url"], [client["tenant_id"]])
    results = [
        session,
        await rpc.call(
            "auth.complete", {"session_id": session["session_id"], "redirect_url": redirect}
        ),
        await rpc.call("clients.list", {"limit": 1000}),
        await rpc.call("daemon.status"),
        await rpc.call("audit.list", {}),
        await rpc.call("auth.status", {"session_id": session["session_id"]}),
    ]
    await rpc.call("clients.check", {})  # refreshes and API calls, logged at DEBUG
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
    await rpc.call("providers.set_secret", {"provider": "xero", "client_secret": secret})
    providers = await rpc.call("providers.list")
    xero = next(item for item in providers["items"] if item["name"] == "xero")
    assert xero["has_secret"] is True
    assert secret not in json.dumps(providers)
    assert secret.encode() not in database_bytes(daemon.paths)


async def test_unknown_provider_secret_is_refused(rpc):
    from clientlink.common.client import RpcError

    with pytest.raises(RpcError) as caught:
        await rpc.call("providers.set_secret", {"provider": "sage", "client_secret": "x"})
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


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend that keeps entries in this process (a stand-in Secret Service)."""

    priority = 1

    def __init__(self, block: threading.Event | None = None) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.block = block

    def get_password(self, service, username):
        if self.block is not None:
            self.block.wait(30)  # a locked keyring waiting for a prompt nobody sees
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self.entries.pop((service, username), None)


@pytest.fixture
def keyring_config(home):
    home.config_file.write_text(
        home.config_file.read_text().replace('backend = "passphrase"', 'backend = "keyring"')
    )
    previous = keyring.get_keyring()
    yield home
    keyring.set_keyring(previous)


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
