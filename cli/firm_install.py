"""``clientlink service install --firm``: one clientlinkd for the whole practice.

What it sets up, each step printed as it is taken (``--dry-run`` only prints them; ``--root
DIR`` writes the files under DIR and leaves the system's accounts and systemd alone, for a
staged image or a test):

1. the system group and user ``clientlink`` (``groupadd --system``, ``useradd --system``):
   the daemon runs as that user, and the group's members (the practice's staff) may reach
   its socket. The person installing (``$SUDO_USER``) joins the group.
2. ``/etc/clientlink/config.toml`` (root's, readable by the group ``clientlink`` only): firm
   mode (``[firm] enabled``, the installer as ``first_admin``) and the passphrase vault, since
   a system service has no desktop keyring. An existing file is kept when it says the same.
3. the vault's passphrase as a systemd credential: a random one in
   ``/etc/credstore/clientlink-vault`` (root only, 0400) handed over with ``LoadCredential=``,
   or with ``--encrypt`` sealed by ``systemd-creds encrypt`` (the host's key or TPM) into
   ``/etc/credstore.encrypted/clientlink-vault`` for ``LoadCredentialEncrypted=``. systemd
   gives the daemon a private copy in ``$CREDENTIALS_DIRECTORY/clientlink-vault``, which is
   where it looks first (see :mod:`clientlink.daemon.vault`).
4. ``/var/lib/clientlink`` (0700, the daemon's: its database) and
   ``/etc/tmpfiles.d/clientlink.conf``, which makes ``/run/clientlink`` (0750
   ``clientlink:clientlink``) at every boot, before the socket unit listens in it. (Not
   ``RuntimeDirectory=``: systemd would make that folder only when the service starts, which
   is after the socket is needed, and remove it, socket and all, when the service stops.)
5. ``clientlinkd.socket`` and ``clientlinkd.service`` in ``/etc/systemd/system``: the socket
   ``/run/clientlink/clientlinkd.sock`` (0660 ``clientlink:clientlink``) is systemd's, so staff
   can connect while the daemon (re)starts; the service runs ``clientlinkd --system`` as
   ``clientlink``, ``Type=notify`` with a watchdog and the hardening the daemon tolerates.
6. ``systemctl daemon-reload`` and ``systemctl enable --now clientlinkd.socket
   clientlinkd.service`` (the daemon watches the connections from boot, whether anyone is
   logged in or not); then what is left for the admin: each staff member into the group
   and onto the staff list.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from clientlink.cli.service_install import SERVICE_UNIT, SOCKET_UNIT, _exec_word, daemon_command
from clientlink.common.config import ConfigError, load_config
from clientlink.common.paths import (
    APP_NAME,
    FIRM_SOCKET,
    SYSTEM_CONFIG_DIR,
    SYSTEM_RUNTIME_DIR,
    SYSTEM_STATE_DIR,
)
from clientlink.daemon.vault import CREDENTIAL_NAME

ACCOUNT = APP_NAME
"""The system user and group of a firm's daemon."""
UNIT_DIR = Path("/etc/systemd/system")
TMPFILES = Path("/etc/tmpfiles.d") / f"{APP_NAME}.conf"
CREDSTORE = Path("/etc/credstore") / CREDENTIAL_NAME
CREDSTORE_ENCRYPTED = Path("/etc/credstore.encrypted") / CREDENTIAL_NAME
EXIT_ERROR = 2
_COMMAND_SECONDS = 120


def add_firm_arguments(install: argparse.ArgumentParser) -> None:
    """``--firm`` and its options on ``clientlink service install``."""
    install.add_argument(
        "--firm",
        action="store_true",
        help="install one clientlinkd for the whole practice, as a system service (needs root)",
    )
    install.add_argument(
        "--root",
        metavar="DIR",
        help="with --firm: write the files under DIR; make no accounts, start nothing",
    )
    install.add_argument(
        "--dry-run", action="store_true", help="with --firm: print each step, change nothing"
    )
    install.add_argument(
        "--encrypt",
        action="store_true",
        help="with --firm: seal the vault's passphrase with systemd-creds "
        "(LoadCredentialEncrypted=)",
    )
    install.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="with --firm: the vault's passphrase (one line) instead of a new random one",
    )


def render_firm_units(command: Sequence[str], *, encrypted: bool) -> dict[str, str]:
    """The text of the firm's ``clientlinkd.socket`` and ``clientlinkd.service``."""
    credential = (
        f"LoadCredentialEncrypted={CREDENTIAL_NAME}:{CREDSTORE_ENCRYPTED}"
        if encrypted
        else f"LoadCredential={CREDENTIAL_NAME}:{CREDSTORE}"
    )
    home_install = any(
        Path(command[0]).is_relative_to(folder) for folder in (Path("/home"), Path("/root"))
    )
    protect_home = "read-only" if home_install else "yes"
    socket_unit = f"""\
# Written by `clientlink service install --firm`. systemd owns the socket, so the practice's
# staff can connect while clientlinkd (re)starts. Its folder, /run/clientlink (0750
# clientlink:clientlink), is made at boot by {TMPFILES}; only members of the
# {ACCOUNT} group may enter it, and the socket itself is theirs to use (0660).
[Unit]
Description=clientlink daemon socket for the practice's staff (firm mode)

[Socket]
ListenStream={FIRM_SOCKET}
SocketUser={ACCOUNT}
SocketGroup={ACCOUNT}
SocketMode=0660
DirectoryMode=0750

[Install]
WantedBy=sockets.target
"""
    service_unit = f"""\
# Written by `clientlink service install --firm`: one clientlinkd for the whole practice.
# It knows each caller by their Unix login (the socket's peer) and serves only the staff on
# its staff list, in their role (`clientlink staff add LOGIN`).
[Unit]
Description=clientlink daemon for the practice (firm mode)
Requires={SOCKET_UNIT}
After={SOCKET_UNIT} network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={" ".join(_exec_word(arg) for arg in command)}
User={ACCOUNT}
Group={ACCOUNT}
# The database (and the vault's wrapped key) in /var/lib/clientlink, the service's only.
StateDirectory={APP_NAME}
StateDirectoryMode=0700
UMask=0077
# A system service has no desktop keyring: the vault's passphrase is a credential, which
# systemd copies for the service into $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}.
{credential}
WatchdogSec=30
Restart=on-failure
RestartSec=5
# 78 is a configuration problem (config.toml, the vault): restarting cannot fix it.
RestartPreventExitStatus=78
TimeoutStopSec=30

# Hardening: the daemon writes only its state folder (and the socket's), talks to the
# providers over IP and to its staff over the Unix socket, and needs no privilege.
NoNewPrivileges=yes
CapabilityBoundingSet=
PrivateTmp=yes
PrivateDevices=yes
ProtectSystem=strict
ProtectHome={protect_home}
ReadWritePaths={SYSTEM_STATE_DIR} -{SYSTEM_RUNTIME_DIR}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
Also={SOCKET_UNIT}
"""
    return {SOCKET_UNIT: socket_unit, SERVICE_UNIT: service_unit}


def firm_config_text(first_admin: str | None) -> str:
    """A new firm's config.toml."""
    admin = f'first_admin = "{first_admin}"\n' if first_admin else ""
    return f"""\
# Written by `clientlink service install --firm`: the practice's one clientlinkd.
# Add your accounting software here ([providers.NAME], see the README), then restart it:
#     sudo systemctl restart {SERVICE_UNIT}

[vault]
# No desktop keyring for a system service: the data key is wrapped by a passphrase, which
# systemd hands over as the credential {CREDENTIAL_NAME}.
backend = "passphrase"

[firm]
enabled = true
group = "{ACCOUNT}"
# Made admin when the staff list is empty (the person who installed clientlink).
{admin}"""


class Installer:
    """The steps of a firm install, each printed; ``dry_run`` prints without doing."""

    def __init__(self, root: Path | None, *, dry_run: bool) -> None:
        self.root = root
        self.dry_run = dry_run
        self.step = 0

    def path(self, path: Path) -> Path:
        """Where ``path`` is written (under ``--root`` when given)."""
        return self.root / path.relative_to("/") if self.root else path

    def say(self, text: str) -> None:
        self.step += 1
        print(f"{self.step}. {text}")

    def run(self, *command: str, why: str, input: str | None = None) -> bool:
        """Run a system command (not under ``--root``, nor in a dry run)."""
        line = shlex.join(command)
        if self.dry_run or self.root:
            print(f"   would run: {line}  ({why})")
            return True
        print(f"   running: {line}")
        try:
            result = subprocess.run(
                command, input=input, capture_output=True, text=True, timeout=_COMMAND_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"   failed: {line}: {exc}", file=sys.stderr)
            return False
        if result.returncode != 0:
            print(f"   failed: {line}: {' '.join(result.stderr.split())}", file=sys.stderr)
            return False
        return True

    def write(self, path: Path, text: str, mode: int, group: str | None = None) -> None:
        """Write ``path`` (root's, with ``mode``; shared with ``group`` when it exists)."""
        target = self.path(path)
        print(f"   {'would write' if self.dry_run else 'writing'} {target} ({mode:04o})")
        if self.dry_run:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            if group and not self.root and _exists(grp.getgrnam, group):
                os.fchown(handle.fileno(), 0, grp.getgrnam(group).gr_gid)
            handle.write(text)

    def folder(self, path: Path, mode: int, owner: str | None = None) -> None:
        target = self.path(path)
        print(f"   {'would make' if self.dry_run else 'making'} {target}/ ({mode:04o})")
        if self.dry_run:
            return
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(mode)
        if owner and not self.root:
            account = pwd.getpwnam(owner)
            os.chown(target, account.pw_uid, account.pw_gid)


def _exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def _installing_person() -> str | None:
    """Who ran ``sudo clientlink service install --firm``: the firm's first admin."""
    login = os.environ.get("SUDO_USER")
    if login and login != "root" and _exists(pwd.getpwnam, login):
        return login
    return None


def _passphrase(args: argparse.Namespace) -> str:
    if args.passphrase_file:
        text = Path(args.passphrase_file).expanduser().read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"{args.passphrase_file} is empty: put the passphrase in it")
        return text
    return secrets.token_urlsafe(32)


def install_firm(args: argparse.Namespace) -> int:
    """Carry out ``clientlink service install --firm``."""
    root = Path(args.root).resolve() if args.root else None
    if root is None and not args.dry_run and os.geteuid() != 0:
        print(
            "clientlink service install --firm sets up a system service: run it with sudo "
            "(`sudo clientlink service install --firm`), or see each step with --dry-run.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if args.encrypt and shutil.which("systemd-creds") is None:
        print(
            "--encrypt needs systemd-creds (systemd 250 or newer); without --encrypt the "
            f"passphrase is kept in {CREDSTORE}, readable by root only.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    admin = _installing_person()
    steps = Installer(root, dry_run=args.dry_run)
    print(
        "Setting up clientlink for the whole practice (firm mode)"
        + (f" under {root}" if root else "")
        + (": a dry run, nothing is changed" if args.dry_run else "")
        + "."
    )

    steps.say(f"The system group and user {ACCOUNT}: the daemon runs as {ACCOUNT}, and "
              f"members of the group {ACCOUNT} may reach its socket.")  # fmt: skip
    if not _exists(grp.getgrnam, ACCOUNT):
        if not steps.run("groupadd", "--system", ACCOUNT, why="the practice's group"):
            return EXIT_ERROR
    else:
        print(f"   the group {ACCOUNT} exists")
    if not _exists(pwd.getpwnam, ACCOUNT):
        made = steps.run(
            "useradd", "--system", "--gid", ACCOUNT, "--home-dir", str(SYSTEM_STATE_DIR),
            "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--comment", "clientlink daemon", ACCOUNT, why="the daemon's own account",
        )  # fmt: skip
        if not made:
            return EXIT_ERROR
    else:
        print(f"   the user {ACCOUNT} exists")
    members = grp.getgrnam(ACCOUNT).gr_mem if _exists(grp.getgrnam, ACCOUNT) else []
    if admin and admin not in members:
        steps.run("usermod", "-aG", ACCOUNT, admin, why=f"{admin} installs, so is staff")

    steps.say(
        f"The configuration, {SYSTEM_CONFIG_DIR}/config.toml: firm mode"
        + (f", {admin} as the first admin" if admin else "")
        + ", and the passphrase vault (a system service has no desktop keyring)."
    )
    config_file = SYSTEM_CONFIG_DIR / "config.toml"
    steps.folder(SYSTEM_CONFIG_DIR, 0o750)
    existing = steps.path(config_file)
    if existing.exists():
        try:
            config = load_config(existing)
        except ConfigError as exc:
            print(f"clientlink: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if not config.firm.enabled or config.vault.backend != "passphrase":
            print(
                f"{existing} exists but is not a firm's: add `[firm] enabled = true` and "
                '`[vault] backend = "passphrase"` to it (or move it aside), then run this '
                "again. Nothing else was changed.",
                file=sys.stderr,
            )
            return EXIT_ERROR
        print(f"   kept {existing} (it is a firm's already)")
    else:
        steps.write(config_file, firm_config_text(admin), 0o640, group=ACCOUNT)
    if not args.dry_run and not root and _exists(grp.getgrnam, ACCOUNT):
        os.chown(steps.path(SYSTEM_CONFIG_DIR), 0, grp.getgrnam(ACCOUNT).gr_gid)

    encrypted = bool(args.encrypt)
    store = CREDSTORE_ENCRYPTED if encrypted else CREDSTORE
    steps.say(
        f"The vault's passphrase as the systemd credential {CREDENTIAL_NAME} ("
        + ("sealed by systemd-creds, LoadCredentialEncrypted=" if encrypted else
           "root-only, LoadCredential=")
        + f"): {store}."
    )  # fmt: skip
    if steps.path(store).exists():
        print(f"   kept {steps.path(store)}: the vault's passphrase is already there")
    else:
        try:
            passphrase = _passphrase(args)
        except (OSError, ValueError) as exc:
            print(f"clientlink: cannot read the passphrase: {exc}", file=sys.stderr)
            return EXIT_ERROR
        steps.folder(store.parent, 0o700)
        if encrypted:
            sealed = steps.run(
                "systemd-creds", "encrypt", f"--name={CREDENTIAL_NAME}", "-", str(store),
                why="seal the passphrase with this host's key", input=passphrase,
            )  # fmt: skip
            if not sealed:
                return EXIT_ERROR
            if not (steps.dry_run or steps.root):
                os.chmod(store, 0o400)
        else:
            steps.write(store, passphrase + "\n", 0o400)
        if not args.passphrase_file:
            print(
                "   Keep a copy of this passphrase somewhere safe (the practice's password "
                "manager): without it the stored sign-ins cannot be read, and every client "
                "would need re-authorising. As root: "
                + (
                    f"systemd-creds decrypt --name={CREDENTIAL_NAME} {store} -"
                    if encrypted
                    else f"cat {steps.path(store)}"
                )
            )

    steps.say(f"The daemon's folders: {SYSTEM_STATE_DIR} (0700, its database) and, at every "
              f"boot, {SYSTEM_RUNTIME_DIR} (0750 {ACCOUNT}:{ACCOUNT}, the socket's).")  # fmt: skip
    owner = ACCOUNT if _exists(pwd.getpwnam, ACCOUNT) else None
    steps.folder(SYSTEM_STATE_DIR, 0o700, owner)
    steps.write(
        TMPFILES,
        "# Written by `clientlink service install --firm`: the socket's folder, before\n"
        "# clientlinkd.socket listens in it (only the clientlink group may enter it).\n"
        f"d {SYSTEM_RUNTIME_DIR} 0750 {ACCOUNT} {ACCOUNT} -\n",
        0o644,
    )
    steps.run("systemd-tmpfiles", "--create", str(TMPFILES), why=f"make {SYSTEM_RUNTIME_DIR} now")

    steps.say(f"The units {SOCKET_UNIT} and {SERVICE_UNIT} in {UNIT_DIR}.")
    for name, text in render_firm_units(
        [*daemon_command(None), "--system"], encrypted=encrypted
    ).items():
        steps.write(UNIT_DIR / name, text, 0o644)

    steps.say("Start it, now and at every boot (the socket, and the daemon behind it).")
    if args.no_start:
        print(f"   not started (--no-start): systemctl daemon-reload && systemctl enable --now "
              f"{SOCKET_UNIT} {SERVICE_UNIT}")  # fmt: skip
    elif not (args.dry_run or root) and not Path("/run/systemd/system").is_dir():
        print(f"   systemd is not running here: on the server, run `systemctl daemon-reload` "
              f"and `systemctl enable --now {SOCKET_UNIT} {SERVICE_UNIT}`")  # fmt: skip
    else:
        ok = steps.run("systemctl", "daemon-reload", why="read the new units")
        ok = ok and steps.run(
            "systemctl", "enable", "--now", SOCKET_UNIT, SERVICE_UNIT, why="serve and watch"
        )
        if not ok:
            print(f"See `journalctl -u {SERVICE_UNIT}`.", file=sys.stderr)
            return EXIT_ERROR

    print(_whats_left(admin))
    return 0


def _whats_left(admin: str | None) -> str:
    who = admin or "you"
    return f"""
What is left (see "Firm mode" in the README):
  - {who} must log out and in again to be in the {ACCOUNT} group, then check:
        clientlink status
  - Store each app's client secret (as an admin):
        clientlink provider set-secret NAME
  - For each staff member, first into the group, then onto the staff list:
        sudo usermod -aG {ACCOUNT} LOGIN
        clientlink staff add LOGIN --role staff      (or --role read-only, --role admin)
    They log in again (over SSH too) and run `clientlink`: it finds the firm's socket,
    {FIRM_SOCKET}.
  - The daemon's log: journalctl -u {SERVICE_UNIT}"""
