"""`clientlink sandbox` glue: mount with `add_sandbox_parser`, run with `run_sandbox_command`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx

from clientlink.sandbox import (
    basiq_api,
    classsuper_api,
    classsuper_identity,
    quickbooks_api,
    quickbooks_identity,
    xero_identity,
)
from clientlink.sandbox.accounts import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USER,
    PUBLIC_CLIENT_ID,
    QUICKBOOKS_CLIENT_ID,
    QUICKBOOKS_CLIENT_SECRET,
    STAFF_USERS,
    TOTP_SECRET,
)
from clientlink.sandbox.approve import ApproveError, approve
from clientlink.sandbox.basiq import BANK_LOGIN, BANK_PASSWORD, BASIQ_API_KEY
from clientlink.sandbox.classsuper import CLASS_CLIENT_ID, CLASS_CLIENT_SECRET
from clientlink.sandbox.mail import SMTP_PASSWORD, SMTP_USER
from clientlink.sandbox.seed import DEFAULT_ORG_COUNT, DEFAULT_SEED
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.sms import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
from clientlink.sandbox.twilio_api import MESSAGES_PATH

DESCRIPTION = (
    "Serve a local emulation of Xero's and QuickBooks Online's sign-in and API, an SMTP "
    "server, a Twilio-like SMS gateway and a Basiq-like bank-feed provider, for rehearsal "
    "and tests."
)
URL_ENV = "CLIENTLINK_SANDBOX_URL"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options and the `approve` subcommand to `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument(
        "--orgs", type=int, default=DEFAULT_ORG_COUNT, help="number of organisations to seed"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-limits", action="store_true", help="do not enforce the providers' API rate limits"
    )
    parser.add_argument("--smtp-port", type=int, default=0, help="SMTP port (0 picks a free one)")
    parser.add_argument(
        "--no-starttls", action="store_true", help="do not offer STARTTLS on the SMTP server"
    )
    actions = parser.add_subparsers(dest="sandbox_action", metavar="{approve,outbox}")
    approve_parser = actions.add_parser(
        "approve", help="walk an authorize URL's sign-in pages and print the final redirect"
    )
    approve_parser.add_argument("url", help="the authorize URL the app produced")
    approve_parser.add_argument(
        "--orgs",
        dest="approve_orgs",
        nargs="+",
        metavar="NAME_OR_ID",
        help="organisations to connect, by name or id; QuickBooks takes the first "
        "(default: the first one offered)",
    )
    approve_parser.add_argument("--user", default=DEMO_USER, help="staff email to sign in as")
    approve_parser.add_argument("--password", default=DEMO_PASSWORD, help=argparse.SUPPRESS)
    approve_parser.add_argument("--deny", action="store_true", help="press Cancel instead")
    outbox_parser = actions.add_parser(
        "outbox", help="print the emails and SMS a running sandbox has received"
    )
    outbox_parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"the running sandbox's base URL (default: ${URL_ENV})",
    )
    outbox_parser.add_argument("--channel", choices=("email", "sms"), help="one channel only")
    outbox_parser.add_argument("--json", action="store_true", help="print JSON")


def add_sandbox_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `sandbox` on an `add_subparsers()` object; returns the new parser."""
    parser = subparsers.add_parser(
        "sandbox",
        help="serve the emulated providers on loopback (or approve a sign-in)",
        description=DESCRIPTION,
    )
    configure_parser(parser)
    return parser


def run_sandbox_command(args: argparse.Namespace) -> int:
    """Run `clientlink sandbox` or `clientlink sandbox approve`; return the exit status."""
    action = getattr(args, "sandbox_action", None)
    if action == "approve":
        return _run_approve(args)
    if action == "outbox":
        return _run_outbox(args)
    server = SandboxServer(
        args.host,
        args.port,
        org_count=args.orgs,
        seed=args.seed,
        enforce_limits=not args.no_limits,
        smtp_port=args.smtp_port,
        smtp_starttls=not args.no_starttls,
    )
    try:
        server.run_forever(on_ready=_print_banner)
    except OSError as exc:
        print(
            f"clientlink sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


def _print_banner(server: SandboxServer) -> None:
    base = server.base_url
    # The first line is a contract: a parent process reads the URL from it.
    lines = [
        f"Sandbox listening on {base}",
        f"  Admin API:      {base}/_sandbox/info",
        "  Xero",
        f"    Authorize URL:  {base}{xero_identity.AUTHORIZE_PATH}",
        f"    Token URL:      {base}{xero_identity.TOKEN_PATH}",
        f"    API base:       {base}/xero",
        f"    Apps:           {PUBLIC_CLIENT_ID} (PKCE, no secret), "
        f"{CONFIDENTIAL_CLIENT_ID} (secret {CONFIDENTIAL_CLIENT_SECRET})",
        "  QuickBooks Online",
        f"    Authorize URL:  {base}{quickbooks_identity.AUTHORIZE_PATH}",
        f"    Token URL:      {base}{quickbooks_identity.TOKEN_PATH}",
        f"    Revoke URL:     {base}{quickbooks_identity.REVOCATION_PATH}",
        f"    API base:       {base}{quickbooks_api.API_BASE_PATH}/{{realmId}}",
        f"    App:            {QUICKBOOKS_CLIENT_ID} (secret {QUICKBOOKS_CLIENT_SECRET})",
        *_class_lines(server),
        "  SMTP",
        f"    Host:           {server.host} port {server.smtp_port}"
        + (" (STARTTLS, self-signed: skip verification)" if _offers_starttls(server) else ""),
        f"    Login:          {SMTP_USER} / {SMTP_PASSWORD}",
        "  SMS (Twilio Messages)",
        f"    Messages URL:   {base}{MESSAGES_PATH.format(account_sid=TWILIO_ACCOUNT_SID)}",
        f"    Account SID:    {TWILIO_ACCOUNT_SID}",
        f"    Auth token:     {TWILIO_AUTH_TOKEN}",
        "  Bank feeds (Basiq)",
        f"    API base:       {base}{basiq_api.API_BASE_PATH}",
        f"    API key:        {BASIQ_API_KEY}",
        f"    Bank login:     {BANK_LOGIN} / {BANK_PASSWORD}",
        f"  Outbox:         {base}/_sandbox/outbox",
        f"  Users:          {', '.join(STAFF_USERS)}",
        f"  Password:       {DEMO_PASSWORD}",
        f"  TOTP secret:    {TOTP_SECRET}",
        f"  Organisations:  {len(server.state.orgs)} (the same businesses in both providers)",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


def _class_lines(server: SandboxServer) -> list[str]:
    base = server.base_url
    provider = server.state.classsuper
    businesses = ", ".join(f"{b.code} ({len(b.funds)} funds)" for b in provider.businesses.values())
    limited = ", ".join(
        f"{user} only {', '.join(sorted(codes))}"
        for user, codes in provider.access.items()
        if codes is not None
    )
    return [
        "  Class Super",
        f"    Authorize URL:  {base}{classsuper_identity.AUTHORIZE_PATH}",
        f"    Token URL:      {base}{classsuper_identity.TOKEN_PATH}",
        f"    Revoke URL:     {base}{classsuper_identity.REVOCATION_PATH}",
        f"    API base:       {base}{classsuper_api.API_BASE_PATH}",
        f"    App:            {CLASS_CLIENT_ID} (secret {CLASS_CLIENT_SECRET})",
        f"    Businesses:     {businesses}" + (f"; {limited}" if limited else ""),
    ]


def _offers_starttls(server: SandboxServer) -> bool:
    return server.state.smtp is not None and server.state.smtp.certificate_pem is not None


def _run_outbox(args: argparse.Namespace) -> int:
    if not args.url:
        print(f"clientlink sandbox outbox: give --url or set ${URL_ENV}", file=sys.stderr)
        return 2
    params = {"channel": args.channel} if args.channel else {}
    try:
        response = httpx.get(args.url.rstrip("/") + "/_sandbox/outbox", params=params, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"clientlink sandbox outbox: cannot read {args.url}: {exc}", file=sys.stderr)
        return 1
    messages = response.json()
    if args.json:
        print(json.dumps(messages, indent=2), flush=True)
        return 0
    if not messages:
        print("The outbox is empty.")
    for message in messages:
        print(_outbox_line(message))
    return 0


def _outbox_line(message: dict[str, Any]) -> str:
    when = message["received_at"][:19].replace("T", " ")
    if message["channel"] == "email":
        to = ", ".join(message["rcpt_tos"])
        return f"{when}  email  {to}  {message['subject']!r}  {message['message_id']}"
    body = message["body"].replace("\n", " ")
    excerpt = body if len(body) <= 60 else body[:57] + "..."
    segments = message["num_segments"]
    return f"{when}  sms    {message['to']}  {message['status']} ({segments} seg)  {excerpt!r}"


def _run_approve(args: argparse.Namespace) -> int:
    try:
        location = asyncio.run(
            approve(
                args.url,
                orgs=args.approve_orgs,
                user=args.user,
                password=args.password,
                deny=args.deny,
            )
        )
    except ApproveError as exc:
        print(f"clientlink sandbox approve: {exc}", file=sys.stderr)
        return 1
    print(location, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m clientlink.sandbox`."""
    parser = argparse.ArgumentParser(
        prog="python -m clientlink.sandbox",
        description=DESCRIPTION,
    )
    configure_parser(parser)
    return run_sandbox_command(parser.parse_args(argv))
