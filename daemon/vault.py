"""Secrets at rest: one data key, AES-GCM for every token and client secret.

The data key lives in the system keyring (Secret Service, KWallet, macOS Keychain...).
Where there is none — a headless server — the person may choose the documented
fallback in config.toml: ``[vault] backend = "passphrase"``. The data key is then
stored in the database wrapped (AES-GCM) under a key derived with scrypt from a
passphrase given in a systemd credential (``LoadCredential=``, the preferred way), a file
named by ``passphrase_file``, or an environment variable — which the daemon takes out of
its environment as soon as it starts (see :mod:`clientlink.daemon.hardening`). Nothing is
ever written in plaintext, and nothing falls back silently.

Only keyrings that encrypt or keep secrets outside the filesystem are trusted: the
Secret Service, KWallet, the macOS Keychain and the Windows Credential Locker. A
file-based backend is refused like the plaintext one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from clientlink.common.config import VaultConfig
from clientlink.daemon.store import Store

if TYPE_CHECKING:
    import keyring.backend

log = logging.getLogger(__name__)

KEYRING_SERVICE = "clientlink"
_NONCE_BYTES = 12
_CHECK_PLAINTEXT = b"clientlink vault check v1"
_SCRYPT_N = 2**15
CREDENTIAL_NAME = "clientlink-vault"

TRUSTED_KEYRINGS = frozenset(
    {
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.kwallet.DBusKeyringKWallet4",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
    }
)
"""Backends (module.Class) that hold the data key encrypted or outside the filesystem."""

_taken_passphrases: dict[str, bytes] = {}
"""Passphrases taken out of the environment at start (by :func:`take_passphrase`)."""


class VaultUnavailable(Exception):
    """The data key cannot be had; the message says exactly what the person can do."""


class Vault:
    """Encrypts and decrypts small secrets with the installation's data key."""

    def __init__(self, data_key: bytes, backend: str) -> None:
        self._aead = AESGCM(data_key)
        self.backend = backend

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        """Seal ``plaintext``; ``context`` binds it to one place (a row, a secret name)."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, sealed: bytes, context: str) -> bytes:
        """Open what :meth:`encrypt` sealed for the same ``context``."""
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, context.encode())

    @classmethod
    async def open(cls, config: VaultConfig, store: Store) -> Vault:
        """Load (or on first run create) the data key from the configured backend."""
        install_id = await store.get_meta("install_id")
        if install_id is None:
            install_id = secrets.token_hex(8)
            await store.set_meta("install_id", install_id)
        if config.backend == "keyring":
            data_key = await _data_key_from_keyring(config, store, install_id)
        else:
            data_key = await _data_key_from_passphrase(config, store)
        vault = cls(data_key, config.backend)
        await vault._check(store)
        return vault

    async def _check(self, store: Store) -> None:
        sealed = await store.get_meta("vault_check")
        if sealed is None:
            await store.set_meta(
                "vault_check", base64.b64encode(self.encrypt(_CHECK_PLAINTEXT, "check")).decode()
            )
            return
        try:
            self.decrypt(base64.b64decode(sealed), "check")
        except InvalidTag as exc:
            raise VaultUnavailable(
                "The encryption key does not open this database's secrets: the keyring entry "
                "or the passphrase is not the one this database was created with. Restore the "
                "original key, or move the database aside to start afresh (every client would "
                "need re-authorising)."
            ) from exc


async def _keyring_call(config: VaultConfig, func: Any, *args: Any) -> Any:
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(func, *args), timeout=config.keyring_timeout_seconds
        )
    except TimeoutError as exc:
        raise VaultUnavailable(
            f"The system keyring did not answer within {config.keyring_timeout_seconds:g} s "
            "(it may be locked and waiting for a password prompt nobody can see). Unlock it, "
            "or see `[vault] backend` in the README."
        ) from exc


async def _data_key_from_keyring(config: VaultConfig, store: Store, install_id: str) -> bytes:
    # Imported here: a daemon on the passphrase fallback never needs the keyring stack.
    import keyring
    import keyring.errors

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a configured backend that cannot even load
        detail = f"the keyring backend could not be loaded: {exc}"
        raise VaultUnavailable(_no_keyring_advice(config, detail)) from exc
    problem = _unusable_keyring(backend)
    if problem:
        raise VaultUnavailable(_no_keyring_advice(config, problem))
    username = f"data-key:{install_id}"
    try:
        stored = await _keyring_call(config, keyring.get_password, KEYRING_SERVICE, username)
        if stored is None:
            if await store.get_meta("vault_check") is not None:
                raise VaultUnavailable(
                    f"The keyring has no clientlink key ({KEYRING_SERVICE}/{username}) but this "
                    "database was encrypted with one. Restore the keyring, or move the "
                    "database aside to start afresh."
                )
            key = AESGCM.generate_key(bit_length=256)
            await _keyring_call(
                config,
                keyring.set_password,
                KEYRING_SERVICE,
                username,
                base64.b64encode(key).decode(),
            )
            log.info("created a new data key in the system keyring (%s)", type(backend).__name__)
            return key
        return base64.b64decode(stored)
    except keyring.errors.KeyringError as exc:
        detail = f"{type(backend).__name__}: {exc}"
        raise VaultUnavailable(_no_keyring_advice(config, detail)) from exc


def _unusable_keyring(backend: keyring.backend.KeyringBackend) -> str | None:
    """Why ``backend`` cannot hold the data key, or None when it can."""
    import keyring.backends.chainer
    import keyring.backends.fail

    kind = _kind(backend)
    if isinstance(backend, keyring.backends.fail.Keyring):
        return "no keyring backend is available"
    if kind == "keyring.backends.null.Keyring":
        return "the keyring is the null backend, which forgets everything"
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        if not backend.backends:
            return "no keyring backend is available"
        # The chainer writes to the first backend that takes it: every one must do.
        for member in backend.backends:
            problem = _unusable_keyring(member)
            if problem:
                return problem
        return None
    if kind in TRUSTED_KEYRINGS:
        return None
    if "plaintext" in kind.lower():
        return f"{kind} stores secrets unencrypted"
    return (
        f"{kind} is not a keyring clientlink trusts: it may keep the key in a file "
        "(only the Secret Service, KWallet, the macOS Keychain and the Windows Credential "
        "Locker are used)"
    )


def _kind(backend: keyring.backend.KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _no_keyring_advice(config: VaultConfig, detail: str) -> str:
    return (
        f"No usable system keyring ({detail}). clientlink keeps the key that encrypts your "
        "OAuth tokens there. Either run clientlinkd in a session with a Secret Service "
        "(GNOME Keyring or KWallet; over SSH: `gnome-keyring-daemon --unlock` inside "
        "`dbus-run-session`), or choose the passphrase fallback: set "
        '`[vault] backend = "passphrase"` in config.toml and give the passphrase in '
        f"${config.passphrase_env} or in a file named by `passphrase_file` (for systemd, "
        "LoadCredential=). Tokens are never stored unencrypted."
    )


def take_passphrase(config: VaultConfig) -> None:
    """At the daemon's start: take the passphrase variable out of the process's
    environment (and ``/proc/PID/environ``), keeping its value for :meth:`Vault.open`."""
    from clientlink.daemon.hardening import take_from_environment

    value = take_from_environment(config.passphrase_env)
    if value:
        _taken_passphrases[config.passphrase_env] = value.encode()


def _read_passphrase(config: VaultConfig) -> bytes:
    # A credential or a file first: neither is visible to other processes of the user.
    candidates = []
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        candidates.append(Path(os.environ["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME)
    if config.passphrase_file:
        candidates.append(Path(os.path.expandvars(config.passphrase_file)).expanduser())
    for path in candidates:
        if path.is_file():
            passphrase = path.read_bytes().strip()
            if passphrase:
                return passphrase
    value = os.environ.get(config.passphrase_env)
    if value:
        return value.encode()
    if _taken_passphrases.get(config.passphrase_env):
        return _taken_passphrases[config.passphrase_env]
    raise VaultUnavailable(
        '`[vault] backend = "passphrase"` is set, but no passphrase was given: pass a '
        f"systemd credential named {CREDENTIAL_NAME} (LoadCredential=), or set "
        f"`passphrase_file` in config.toml, or ${config.passphrase_env}."
    )


def _derive(passphrase: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(passphrase)


async def _data_key_from_passphrase(config: VaultConfig, store: Store) -> bytes:
    passphrase = _read_passphrase(config)
    wrapped = await store.get_meta("vault_wrapped_key")
    if wrapped is None:
        salt = os.urandom(16)
        key = AESGCM.generate_key(bit_length=256)
        kek = await asyncio.to_thread(_derive, passphrase, salt)
        nonce = os.urandom(_NONCE_BYTES)
        blob = salt + nonce + AESGCM(kek).encrypt(nonce, key, b"data-key")
        await store.set_meta("vault_wrapped_key", base64.b64encode(blob).decode())
        return key
    blob = base64.b64decode(wrapped)
    salt, nonce, ciphertext = blob[:16], blob[16:28], blob[28:]
    kek = await asyncio.to_thread(_derive, passphrase, salt)
    try:
        return AESGCM(kek).decrypt(nonce, ciphertext, b"data-key")
    except InvalidTag as exc:
        raise VaultUnavailable(
            "The vault passphrase is wrong: it does not unwrap this database's key."
        ) from exc
