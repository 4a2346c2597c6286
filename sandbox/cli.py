"""`clientlink sandbox` glue: mount with `add_sandbox_parser`, run with `run_sandbox_command`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from clientlink.sandbox import quickbooks_api, quickbooks_identity, xero_identity
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
from clientlink.sandbox.seed import DEFAULT_ORG_COUNT, DEFAULT_SEED
from clientlink.sandbox.server import SandboxServer

DESCRIPTION = (
    "Serve a local emulation of Xero's and QuickBooks Online's sign-in and API "
    "for rehearsal and tests."
)


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
    actions = parser.add_subparsers(dest="sandbox_action", metavar="{approve}")
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
    if getattr(args, "sandbox_action", None) == "approve":
        return _run_approve(args)
    server = SandboxServer(
        args.host,
        args.port,
        org_count=args.orgs,
        seed=args.seed,
        enforce_limits=not args.no_limits,
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
        f"  Users:          {', '.join(STAFF_USERS)}",
        f"  Password:       {DEMO_PASSWORD}",
        f"  TOTP secret:    {TOTP_SECRET}",
        f"  Organisations:  {len(server.state.orgs)} (the same businesses in both providers)",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


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
