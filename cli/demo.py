"""``clientlink demo``: a throwaway practice on the sandbox, with daemon and TUI.

The demo is set up the way a practice would be, through the real flows: staff sign in
to the sandbox's Xero (each ticking their share of the businesses), the clients are
imported, then some authorisations die the way they do in life — one staff member's
grant is revoked and a few businesses disconnect the app — and a check finds them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clientlink.cli.demo_smsf import MYOB_FILES, seed_smsf_practice, smsf_summary
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient, DaemonUnavailable, RpcError
from clientlink.common.paths import Paths, resolve_paths
from clientlink.common.wording import agree, plural
from clientlink.sandbox.accounts import (
    BGL_CLIENT_ID,
    BGL_CLIENT_SECRET,
    MYOB_CLIENT_ID,
    PUBLIC_CLIENT_ID,
    QUICKBOOKS_CLIENT_ID,
    QUICKBOOKS_CLIENT_SECRET,
    STAFF_USERS,
)
from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.basiq import BASIQ_API_KEY
from clientlink.sandbox.classsuper import CLASS_CLIENT_ID, default_businesses
from clientlink.sandbox.mail import SMTP_PASSWORD, SMTP_USER
from clientlink.sandbox.sms import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

PASSPHRASE_ENV = "CLIENTLINK_VAULT_PASSPHRASE"


def demo_config_text(
    sandbox_url: str, *, smtp_port: int | None = None, callback_port: int = 0
) -> str:
    """config.toml for a home whose outside world is the sandbox: Xero and QuickBooks
    (any loopback port is accepted), and with ``smtp_port`` its mail, SMS and bank feeds."""
    xero = f"{sandbox_url}/xero"
    qbo = f"{sandbox_url}/quickbooks"
    return f"""\
# Written by `clientlink demo`: Xero here is the local sandbox.
[practice]
name = "Harbourside Accounting (demo)"

[auth]
callback_port = {callback_port}

[vault]
# A demo home has no keyring entry of its own: the passphrase comes from the demo process.
backend = "passphrase"
passphrase_env = "{PASSPHRASE_ENV}"

[providers.xero]
kind = "xero"
display_name = "Xero (sandbox)"
client_id = "{PUBLIC_CLIENT_ID}"
authorize_url = "{xero}/identity/connect/authorize"
token_url = "{xero}/identity/connect/token"
revoke_url = "{xero}/identity/connect/revocation"
connections_url = "{xero}/connections"
api_base = "{xero}/api.xro/2.0"

[providers.quickbooks]
kind = "quickbooks"
display_name = "QuickBooks (sandbox)"
client_id = "{QUICKBOOKS_CLIENT_ID}"
authorize_url = "{qbo}/connect/oauth2"
token_url = "{qbo}/oauth2/v1/tokens/bearer"
revoke_url = "{qbo}/oauth2/v1/tokens/revoke"
api_base = "{qbo}/v3/company"
userinfo_url = "{qbo}/v1/openid_connect/userinfo"

[providers.bgl]
kind = "bgl"
display_name = "BGL Simple Fund 360 (sandbox)"
client_id = "{BGL_CLIENT_ID}"
authorize_url = "{sandbox_url}/bgl/oauth/authorize"
token_url = "{sandbox_url}/bgl/oauth/token"
api_base = "{sandbox_url}/bgl"

[providers.class]
kind = "class"
display_name = "Class Super (sandbox)"
client_id = "{CLASS_CLIENT_ID}"
authorize_url = "{sandbox_url}/class/connect/authorize"
token_url = "{sandbox_url}/class/connect/token"
revoke_url = "{sandbox_url}/class/connect/revocation"
api_base = "{sandbox_url}/class/api/1.0"
businesses = [{", ".join(f'"{b.code}"' for b in default_businesses())}]
""" + (_messaging_config(sandbox_url, smtp_port) if smtp_port else "")


def myob_config_text(sandbox_url: str) -> str:
    """config.toml's block for the sandbox's MYOB (its secret is set with set-secret)."""
    myob = f"{sandbox_url}/myob"
    return f"""
[providers.myob]
kind = "myob"
display_name = "MYOB (sandbox)"
client_id = "{MYOB_CLIENT_ID}"
authorize_url = "{myob}/oauth2/account/authorize"
token_url = "{myob}/oauth2/v1/authorize"
api_base = "{myob}/accountright"
"""


def _messaging_config(sandbox_url: str, smtp_port: int) -> str:
    return f"""
[email]
host = "127.0.0.1"
port = {smtp_port}
security = "starttls"
# The sandbox's certificate is self-signed; never switch this off for a real server.
verify_tls = false
username = "{SMTP_USER}"
from_address = "practice@harbourside.example"

[sms]
api_base = "{sandbox_url}/twilio"
account_sid = "{TWILIO_ACCOUNT_SID}"
from_number = "+61491570110"

[banks]
api_base = "{sandbox_url}/basiq"
"""


@dataclass
class SeededPractice:
    """What :func:`seed_practice` did."""

    client_ids: list[int]
    needs_reauth_ids: list[int]
    quickbooks_ids: list[int]
    revoked_user: str
    disconnected_tenants: list[str]
    # Businesses left out of Xero and QuickBooks (``spare``), by tenant id.
    spare_tenants: list[str] = field(default_factory=list)


async def seed_practice(
    daemon: DaemonClient,
    sandbox_url: str,
    *,
    provider: str = "xero",
    spare: int = 0,
    say: Callable[[str], None] = lambda _: None,
) -> SeededPractice:
    """Sign staff in, import every business, then let some authorisations die.

    Nine in ten businesses keep their books in Xero (three staff grants), the rest in
    QuickBooks Online (one grant per company, as Intuit issues them); the last ``spare``
    businesses (a quarter of them at most) are left for other software.
    """
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as admin:
        every_org = (await admin.get("/_sandbox/orgs")).json()
        spare = min(spare, len(every_org) // 4)
        orgs = every_org[: len(every_org) - spare] if spare else every_org
        quickbooks_count = len(orgs) // 10
        qbo_orgs = orgs[len(orgs) - quickbooks_count :]
        org_ids = [org["tenant_id"] for org in orgs[: len(orgs) - quickbooks_count]]
        demo_user, main_share, small_share = STAFF_USERS[0], STAFF_USERS[2], STAFF_USERS[1]
        first = round(len(org_ids) * 0.6)
        second = first + round(len(org_ids) * 0.325)
        shares = [
            (demo_user, org_ids[:first]),
            (main_share, org_ids[first:second]),
            (small_share, org_ids[second:]),
        ]
        client_ids: list[int] = []
        for user, tenants in shares:
            if not tenants:
                continue
            count = plural(len(tenants), "business", "businesses")
            say(f"  {user} signs in to Xero and connects {count}")
            client_ids += await _sign_in_and_import(daemon, provider, tenants, user)
        if qbo_orgs:
            count = plural(
                len(qbo_orgs), "QuickBooks Online company", "QuickBooks Online companies"
            )
            say(f"  {demo_user} connects {count}")
            await daemon.call(
                p.PROVIDERS_SET_SECRET,
                provider="quickbooks",
                client_secret=QUICKBOOKS_CLIENT_SECRET,
            )
        # BGL's app is confidential too: with its secret the demo can sign in to SF360.
        await daemon.call(p.PROVIDERS_SET_SECRET, provider="bgl", client_secret=BGL_CLIENT_SECRET)
        quickbooks_ids: list[int] = []
        for org in qbo_orgs:  # Intuit grants one company per consent
            quickbooks_ids += await _sign_in_and_import(
                daemon, "quickbooks", [org["tenant_id"]], demo_user
            )
        client_ids += quickbooks_ids
        say(f"  {small_share} leaves the practice and their Xero access is revoked")
        for grant in (await admin.get("/_sandbox/grants")).json():
            if grant["user"] == small_share:
                await admin.post(f"/_sandbox/grants/{grant['grant_id']}/revoke")
        disconnected = org_ids[: first : max(1, first // 5)][:5]
        say(
            f"  {plural(len(disconnected), 'business', 'businesses')} "
            f"{agree(len(disconnected), 'disconnects', 'disconnect')} clientlink in their own Xero"
        )
        for tenant_id in disconnected:
            await admin.post(
                "/_sandbox/connections/disconnect", json={"tenant_id": tenant_id, "user": demo_user}
            )
    await _seed_contacts(daemon, orgs, provider_of={"xero", "quickbooks"})
    say("  clientlink checks every connection")
    await daemon.call(p.CLIENTS_CHECK)
    listing = await daemon.call(p.CLIENTS_LIST, filter={"status": "needs_reauth"}, limit=1000)
    return SeededPractice(
        client_ids=sorted(client_ids),
        needs_reauth_ids=[item.id for item in listing.items],
        quickbooks_ids=sorted(quickbooks_ids),
        revoked_user=small_share,
        disconnected_tenants=disconnected,
        spare_tenants=[org["tenant_id"] for org in every_org[len(orgs) :]],
    )


async def _seed_contacts(
    daemon: DaemonClient, orgs: list[dict[str, Any]], provider_of: set[str]
) -> None:
    """Contact details from the practice's records, and the channels' secrets."""
    by_tenant = {org["tenant_id"]: org for org in orgs}
    by_realm = {org.get("realm_id"): org for org in orgs if org.get("realm_id")}
    listing = await daemon.call(p.CLIENTS_LIST, limit=1000)
    for client in listing.items:
        org = by_tenant.get(client.tenant_id) or by_realm.get(client.tenant_id)
        if org is not None and client.provider in provider_of:
            await daemon.call(
                p.CLIENTS_UPDATE, client_id=client.id, email=org["email"], phone=org["phone"]
            )
    for channel, secret in (
        ("email", SMTP_PASSWORD),
        ("sms", TWILIO_AUTH_TOKEN),
        ("banks", BASIQ_API_KEY),
    ):
        await daemon.call(p.CHANNELS_SET_SECRET, channel=channel, secret=secret)


async def _sign_in_and_import(
    daemon: DaemonClient, provider: str, orgs: list[str], user: str
) -> list[int]:
    """One sign-in through the sandbox ticking ``orgs``; returns the clients created."""
    session = await daemon.call(p.AUTH_BEGIN, provider=provider)
    redirect = await approve(session.authorize_url, orgs=orgs, user=user)
    grant = await daemon.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    imported = await daemon.call(p.CLIENTS_IMPORT, grant_id=grant.grant_id)
    return list(imported.created)


# --------------------------------------------------------------------------- processes


class DemoProcesses:
    """The sandbox and daemon as child processes of the demo, stopped together."""

    def __init__(self, paths: Paths, log_dir: Path) -> None:
        self.paths = paths
        self.log_dir = log_dir
        self.sandbox: subprocess.Popen[str] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.sandbox_url = ""
        self.env = dict(os.environ)
        self.env[PASSPHRASE_ENV] = secrets.token_urlsafe(32)

    def start_sandbox(self, orgs: int) -> str:
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "clientlink.sandbox", "--port", "0", "--orgs", str(orgs)],
            stdout=subprocess.PIPE,
            stderr=open(self.log_dir / "sandbox.log", "w"),
            text=True,
            env=self.env,
        )
        assert self.sandbox.stdout is not None
        for line in self.sandbox.stdout:
            if "http://" in line and "listening" in line.lower():
                self.sandbox_url = line.strip().split()[-1].rstrip("/")
                break
        if not self.sandbox_url:
            raise RuntimeError(f"the sandbox did not start; see {self.log_dir / 'sandbox.log'}")
        # Keep draining its banner so a full pipe never blocks it.
        stdout = self.sandbox.stdout
        threading.Thread(target=stdout.read, daemon=True, name="sandbox-stdout").start()
        return self.sandbox_url

    def spawn_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "clientlink.daemon.main", "--home", str(self.home)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_dir / "clientlinkd.log", "w"),
            env=self.env,
        )

    async def wait_for_daemon(self) -> None:
        assert self.daemon is not None
        for _ in range(200):
            if self.daemon.poll() is not None:
                raise RuntimeError(f"clientlinkd exited; see {self.log_dir / 'clientlinkd.log'}")
            with contextlib.suppress(DaemonUnavailable, OSError):
                async with DaemonClient(self.paths.socket, client_name="demo"):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("clientlinkd did not start listening within 10 s")

    @property
    def home(self) -> Path:
        return self.paths.config_dir.parent

    def stop(self) -> None:
        for process in (self.daemon, self.sandbox):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.daemon, self.sandbox):
            if process is None:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def configure_demo_parser(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``clientlink demo``."""
    parser.add_argument(
        "--no-tui", action="store_true", help="keep sandbox and daemon up for scripting"
    )
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="let the sandbox play the person at every sign-in",
    )
    parser.add_argument("--orgs", type=int, default=200, help="businesses in the sandbox")
    parser.add_argument("--keep", action="store_true", help="keep the demo home folder afterwards")


def run_demo(args: argparse.Namespace) -> int:
    """Set up the demo, run the TUI (or wait), stop everything on the way out."""
    home_arg = args.home
    home = Path(home_arg) if home_arg else Path(tempfile.mkdtemp(prefix="clientlink-demo-"))
    paths = resolve_paths(home)
    paths.ensure()
    processes = DemoProcesses(paths, paths.state_dir)
    say = print  # the demo's own progress lines, before the TUI takes the screen
    try:
        say("clientlink demo — setting up a practice on the local sandbox")
        sandbox_url = processes.start_sandbox(args.orgs)
        info = httpx.get(f"{sandbox_url}/_sandbox/info", timeout=10).json()
        paths.config_file.write_text(
            demo_config_text(sandbox_url, smtp_port=info["smtp"]["port"])
            + myob_config_text(sandbox_url),
            encoding="utf-8",
        )
        os.environ[PASSPHRASE_ENV] = processes.env[PASSPHRASE_ENV]
        processes.spawn_daemon()
        seeded, smsf_lines = asyncio.run(_start_and_seed(processes, sandbox_url, say))
        say(
            f"  {plural(len(seeded.client_ids), 'client')} imported; "
            f"{len(seeded.needs_reauth_ids)} need re-authorisation"
        )
        for line in smsf_lines:
            say(line)
        say(f"home:    {home}")
        say(f"sandbox: {sandbox_url}")
        if args.no_tui:
            print("Sandbox and daemon are running. Press Ctrl+C to stop.", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    signal.pause()
            return 0
        from clientlink.tui.app import ClientlinkApp

        auto = _auto_approver() if args.auto_approve else None
        ClientlinkApp(paths.socket, auto_approve=auto, open_browser=False).run()
        return 0
    except (RuntimeError, httpx.HTTPError, DaemonUnavailable, ApproveError, RpcError) as exc:
        print(f"clientlink demo: {exc}", file=sys.stderr)
        return 1
    finally:
        processes.stop()
        if not home_arg and not args.keep:
            shutil.rmtree(home, ignore_errors=True)


async def _start_and_seed(
    processes: DemoProcesses, sandbox_url: str, say: Callable[[str], None]
) -> tuple[SeededPractice, list[str]]:
    """The books practice (a few businesses left for MYOB), then the SMSF practice; returns
    the books practice (with every client counted) and the SMSF practice's printout."""
    await processes.wait_for_daemon()
    async with DaemonClient(processes.paths.socket, client_name="demo") as daemon:
        seeded = await seed_practice(daemon, sandbox_url, spare=MYOB_FILES, say=say)
        smsf = await seed_smsf_practice(
            daemon, sandbox_url, myob_tenants=seeded.spare_tenants, say=say
        )
        listing = await daemon.call(p.CLIENTS_LIST, limit=1000)
        waiting = {c.id: c.status_reason for c in listing.items if c.status == "needs_reauth"}
        seeded.client_ids = sorted(c.id for c in listing.items)
        seeded.needs_reauth_ids = sorted(waiting)
        return seeded, smsf_summary(smsf, waiting)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _auto_approver() -> Callable[[str, list[str]], Any]:
    async def auto_approve(authorize_url: str, orgs: list[str]) -> str:
        return await approve(authorize_url, orgs=orgs)

    return auto_approve
