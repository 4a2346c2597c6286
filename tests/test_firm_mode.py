"""Firm mode: one clientlinkd for the practice, reached by its staff over the group socket.

Every call here is made by a real Unix user (``tests/firm.py``): the daemon knows who is
calling only from the peer's uid on the socket.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clientlink.cli.service_install import SERVICE_UNIT, SOCKET_UNIT
from clientlink.common import paths as paths_module
from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.config import load_config
from clientlink.common.paths import HOME_ENV, SOCKET_ENV, client_socket, resolve_paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.vault import CREDENTIAL_NAME
from tests.firm import (
    ADMIN,
    GROUP,
    NEWCOMER,
    OUTSIDER,
    READ_ONLY,
    SERVICE,
    STAFF_MEMBER,
    FirmCliFailed,
    FirmDaemonExited,
    as_user,
)


async def test_staff_admin_and_read_only_each_reach_the_daemon_over_the_group_socket(firm):
    for login in (ADMIN, STAFF_MEMBER, READ_ONLY):
        status = await firm.call(login, p.DAEMON_STATUS)
        assert status["version"]
        listed = await firm.call(login, p.CLIENTS_LIST, {"limit": 5})
        assert listed["total"] == 0


async def test_a_user_outside_the_group_cannot_open_the_socket_and_is_told_why(firm):
    result = await firm.cli(OUTSIDER, "status")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert f"you ({OUTSIDER}) may not open the firm's clientlink socket" in result.err
    assert f"only members of the {GROUP} group may" in result.err
    assert f"sudo usermod -aG {GROUP} {OUTSIDER}" in result.err
    assert "Start it with" not in result.err  # the daemon is running; they may not reach it
    with pytest.raises(FirmCliFailed):
        await firm.call(OUTSIDER, p.DAEMON_STATUS)


async def test_a_group_member_not_on_the_staff_list_is_told_who_can_add_them(firm):
    with pytest.raises(RpcError) as refused:
        await firm.call(NEWCOMER, p.CLIENTS_LIST)
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    assert f"{NEWCOMER} is not on this practice's clientlink staff list" in refused.value.message
    assert f"`clientlink staff add {NEWCOMER}`" in refused.value.message
    assert ADMIN in refused.value.message  # who can do it
    result = await firm.cli(NEWCOMER, "clients")
    assert result.code == 2 and "Traceback" not in result.err
    assert f"clientlink staff add {NEWCOMER}" in result.err


async def test_a_write_is_audited_under_the_real_login_of_who_made_it(firm_practice):
    client_id = (await firm_practice.call(STAFF_MEMBER, p.CLIENTS_LIST, {"limit": 1}))["items"][0][
        "id"
    ]
    updated = await firm_practice.call(
        STAFF_MEMBER, p.CLIENTS_UPDATE, {"client_id": client_id, "email": "books@example.com"}
    )
    assert updated["email"] == "books@example.com"
    audit = await firm_practice.call(ADMIN, p.AUDIT_LIST, {"client_id": client_id, "limit": 5})
    newest = audit["items"][0]
    assert newest["actor"] == STAFF_MEMBER
    assert newest["client_id"] == client_id


async def test_a_read_only_users_write_is_refused_and_changes_nothing(firm_practice):
    client = (await firm_practice.call(READ_ONLY, p.CLIENTS_LIST, {"limit": 1}))["items"][0]
    with pytest.raises(RpcError) as refused:
        await firm_practice.call(
            READ_ONLY, p.CLIENTS_UPDATE, {"client_id": client["id"], "email": "x@example.com"}
        )
    assert refused.value.code == ErrorCode.ROLE_REQUIRED
    assert f"{READ_ONLY} is read-only" in refused.value.message
    assert "Nothing was changed" in refused.value.message
    again = await firm_practice.call(READ_ONLY, p.CLIENTS_GET, {"client_id": client["id"]})
    assert again["email"] == client["email"]
    audit = await firm_practice.call(ADMIN, p.AUDIT_LIST, {"client_id": client["id"]})
    assert all(entry["actor"] != READ_ONLY for entry in audit["items"])


async def test_the_socket_is_the_groups_and_no_one_elses(firm):
    folder, sock = os.stat(firm.socket.parent), os.stat(firm.socket)
    assert (folder.st_uid, folder.st_gid) == (firm.users.uid(SERVICE), firm.users.gid)
    assert stat.S_IMODE(folder.st_mode) == 0o750
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o660
    assert sock.st_gid == firm.users.gid


# --------------------------------------------------------------------------- the vault


async def test_the_vault_opens_with_the_passphrase_from_the_systemd_credential(make_firm):
    firm = await make_firm()  # its only passphrase is $CREDENTIALS_DIRECTORY's
    stored = await firm.cli(ADMIN, "provider", "set-secret", "xero", stdin=b"app-secret\n")
    assert stored.code == 0, stored.err
    assert await firm.stop() == 0
    credential = firm.credentials / CREDENTIAL_NAME
    right = credential.read_text()
    credential.chmod(0o600)
    credential.write_text("not the practice's passphrase")
    with pytest.raises(FirmDaemonExited) as refused:
        await firm.start()
    assert refused.value.code == 78  # a configuration problem: systemd does not restart it
    assert "The vault passphrase is wrong" in refused.value.log
    credential.write_text(right)
    credential.chmod(0o400)
    await firm.start()
    providers = await firm.call(ADMIN, p.PROVIDERS_LIST)
    assert {item["name"]: item["has_secret"] for item in providers["items"]}["xero"] is True


async def test_without_the_credential_the_daemon_says_how_to_give_the_passphrase(make_firm):
    firm = await make_firm(start=False)
    (firm.credentials / CREDENTIAL_NAME).unlink()
    with pytest.raises(FirmDaemonExited) as refused:
        await firm.start()
    assert refused.value.code == 78
    assert f"pass a systemd credential named {CREDENTIAL_NAME}" in refused.value.log
    assert "Traceback" not in refused.value.log


# --------------------------------------------------------------------------- the installer


def install_firm(*args: str, as_login: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = as_user(as_login) if as_login else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "clientlink.cli", "service", "install", "--firm", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SUDO_USER": ADMIN, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("sealed", [False, True], ids=["LoadCredential", "encrypted"])
def test_the_firm_installer_writes_units_that_pass_systemd_analyze_verify(
    short_tmp, firm_users, sealed
):
    root = short_tmp / "root"
    installed = install_firm("--root", str(root), *(["--encrypt"] if sealed else []))
    assert installed.returncode == 0, installed.stderr
    units = root / "etc/systemd/system"
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(units / SOCKET_UNIT), str(units / SERVICE_UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout + verify.stderr == ""  # verify only warns about a bad setting
    socket_unit, service = lines(units / SOCKET_UNIT), lines(units / SERVICE_UNIT)
    for line in (
        "ListenStream=/run/clientlink/clientlinkd.sock",
        "SocketUser=clientlink",
        "SocketGroup=clientlink",
        "SocketMode=0660",
        "DirectoryMode=0750",
    ):
        assert line in socket_unit
    for line in (
        "User=clientlink",
        "Group=clientlink",
        "StateDirectory=clientlink",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/clientlink -/run/clientlink",
        "Type=notify",
        "LoadCredentialEncrypted=clientlink-vault:/etc/credstore.encrypted/clientlink-vault"
        if sealed
        else "LoadCredential=clientlink-vault:/etc/credstore/clientlink-vault",
    ):
        assert line in service
    assert any(line.startswith("ExecStart=") and line.endswith(" --system") for line in service)
    tmpfiles = lines(root / "etc/tmpfiles.d/clientlink.conf")
    assert "d /run/clientlink 0750 clientlink clientlink -" in tmpfiles
    config = load_config(root / "etc/clientlink/config.toml")
    assert config.firm.enabled and config.firm.group == "clientlink"
    assert config.firm.first_admin == ADMIN  # the person who ran it under sudo
    assert config.vault.backend == "passphrase"
    # Each step is said, and what is left for the admin.
    assert "useradd --system --gid clientlink" in installed.stdout
    assert f"usermod -aG clientlink {ADMIN}" in installed.stdout
    assert "sudo usermod -aG clientlink LOGIN" in installed.stdout
    assert "clientlink staff add LOGIN" in installed.stdout
    if sealed:
        assert "systemd-creds encrypt --name=clientlink-vault" in installed.stdout
    else:
        credential = root / "etc/credstore/clientlink-vault"
        assert stat.S_IMODE(credential.stat().st_mode) == 0o400
        assert len(credential.read_text().strip()) >= 32
        assert credential.read_text().strip() not in installed.stdout  # never printed


def test_installing_again_keeps_the_passphrase_and_the_config(short_tmp, firm_users):
    root = short_tmp / "root"
    assert install_firm("--root", str(root)).returncode == 0
    credential = root / "etc/credstore/clientlink-vault"
    config = root / "etc/clientlink/config.toml"
    passphrase, text = credential.read_text(), config.read_text() + "# the admin's own line\n"
    config.write_text(text)
    again = install_firm("--root", str(root))
    assert again.returncode == 0, again.stderr
    assert credential.read_text() == passphrase  # a new one would lose every stored sign-in
    assert config.read_text() == text
    assert "kept" in again.stdout


def test_the_firm_installer_refuses_a_config_that_is_not_a_firms(short_tmp, firm_users):
    root = short_tmp / "root"
    (root / "etc/clientlink").mkdir(parents=True)
    (root / "etc/clientlink/config.toml").write_text('[vault]\nbackend = "keyring"\n')
    refused = install_firm("--root", str(root))
    assert refused.returncode == 2
    assert "is not a firm's" in refused.stderr and "Nothing else was changed" in refused.stderr
    assert not (root / "etc/systemd").exists()


def test_the_firm_installer_needs_root_and_a_dry_run_changes_nothing(short_tmp, firm_users):
    refused = install_firm(as_login=OUTSIDER)
    assert refused.returncode == 2
    assert "run it with sudo" in refused.stderr and "Traceback" not in refused.stderr
    root = short_tmp / "root"
    dry = install_firm("--root", str(root), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would write" in dry.stdout and not root.exists()


# --------------------------------------------------------------------------- finding it


def test_the_cli_finds_the_firms_socket_unless_told_otherwise(
    firm, monkeypatch: pytest.MonkeyPatch, short_tmp
):
    monkeypatch.setattr(paths_module, "FIRM_SOCKET", firm.socket)
    for name in (SOCKET_ENV, HOME_ENV):
        monkeypatch.delenv(name, raising=False)
    assert client_socket() == firm.socket  # reachable: this is a firm's machine
    own = short_tmp / "own"
    assert client_socket(own) == resolve_paths(own).socket  # --home wins
    monkeypatch.setenv(HOME_ENV, str(own))
    assert client_socket() == resolve_paths(own).socket
    monkeypatch.setenv(SOCKET_ENV, str(short_tmp / "elsewhere.sock"))
    assert client_socket() == short_tmp / "elsewhere.sock"
    monkeypatch.delenv(SOCKET_ENV)
    monkeypatch.delenv(HOME_ENV)
    monkeypatch.setattr(paths_module, "FIRM_SOCKET", short_tmp / "no-firm" / "clientlinkd.sock")
    assert client_socket() == resolve_paths(None).socket  # no firm here: the user's own


async def test_a_staff_members_connection_held_open_gets_answers_and_events(firm):
    async with firm.session(STAFF_MEMBER) as sam:
        assert sam.hello["protocol"] == p.PROTOCOL_VERSION
        await sam.call(p.EVENTS_SUBSCRIBE, {"topics": ["notifications.read"]})
        await sam.call(p.NOTIFICATIONS_ACK)
        event = await sam.next_event("notifications.read")
        assert event["unread"] == 0
        with pytest.raises(RpcError) as refused:
            await sam.call(p.PROVIDERS_SET_SECRET, {"provider": "xero", "client_secret": "s"})
        assert refused.value.code == ErrorCode.ROLE_REQUIRED
    with pytest.raises(RpcError) as refused:
        async with firm.session(NEWCOMER):
            pass
    assert f"clientlink staff add {NEWCOMER}" in refused.value.message
