"""``clientlink``: the TUI, and the subcommands for scripts and the terminal.

clientlink                      open the TUI
clientlink demo                 a throwaway practice on the sandbox (sandbox + daemon + TUI)
clientlink status [--json]      one line on what needs attention; exit 1 when something does
clientlink clients [--json]     list clients (filter with --status, --text, --mine)
clientlink clients import FILE [--yes] [--skip-refused]   add clients from a CSV or XLSX file
clientlink rpc METHOD [JSON]    call the daemon; the result is printed as JSON
clientlink grants [--json] [--revoke ID]   stored sign-ins; revoke an unused one
clientlink provider set-secret NAME   store an app's client secret in the vault
clientlink staff list|add LOGIN|update LOGIN   the practice's staff and roles (admins)
clientlink audit [--actor LOGIN] [--client ID] [--export PATH]   who did what
clientlink sandbox ...          the emulated providers (see `clientlink sandbox --help`)
clientlink service install|uninstall|status   clientlinkd as a systemd user service
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from clientlink.cli.staff import add_staff_parsers, prepare_audit, run_audit, run_staff
from clientlink.common import protocol as p
from clientlink.common.client import (
    DaemonClient,
    DaemonImpostor,
    DaemonRefused,
    DaemonUnavailable,
    RpcError,
)
from clientlink.common.paths import client_socket
from clientlink.common.protocol import STATUS_LABELS, ConnectionStatus
from clientlink.common.safe_text import terminal_json, visible
from clientlink.common.version import VERSION
from clientlink.common.wording import import_sentence, plural, waiting_for_sign_in
from clientlink.common.xero_tiers import usage_line

EXIT_ATTENTION = 1
EXIT_ERROR = 2
EXIT_NO_DAEMON = 3


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="clientlink",
        description="Keep your clients' accounting-software connections alive.",
    )
    parser.add_argument("--home", help="use this folder for config, data and the socket")
    parser.add_argument("--version", action="version", version=f"clientlink {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from clientlink.cli.agent import add_agent_parser
    from clientlink.cli.demo import add_demo_parser
    from clientlink.cli.service_install import add_service_parser
    from clientlink.sandbox.cli import add_sandbox_parser

    add_demo_parser(commands)

    status = commands.add_parser(
        "status", help="counts by status; exits 1 when something needs attention"
    )
    status.add_argument("--json", action="store_true", help="print the daemon's status as JSON")

    clients = commands.add_parser("clients", help="list clients")
    clients.add_argument("--json", action="store_true", help="print JSON")
    clients.add_argument(
        "--status", choices=[s.value for s in ConnectionStatus], help="only this status"
    )
    clients.add_argument("--text", help="name, legal name, email or ABN contains this")
    clients.add_argument(
        "--mine", action="store_true", help="only my connections (those I authorised)"
    )
    clients_commands = clients.add_subparsers(dest="clients_command", metavar="COMMAND")
    clients_import = clients_commands.add_parser(
        "import",
        help="add or match clients from a CSV or XLSX file (a preview first)",
        description="Check every row of a CSV or XLSX file of clients (Name, ABN, Software, "
        "Software ID, Email, Mobile), print what would be added, matched or refused and why, "
        "and import only with --yes or after you answer y.",
    )
    clients_import.add_argument("file", help="the CSV or XLSX file")
    clients_import.add_argument("--yes", action="store_true", help="import without asking")
    clients_import.add_argument(
        "--skip-refused", action="store_true", help="import the other rows when some are refused"
    )
    clients_import.add_argument("--json", action="store_true", help="print JSON")

    jobs = commands.add_parser("jobs", help="list bulk jobs, newest first")
    jobs.add_argument("--json", action="store_true", help="print JSON")
    jobs.add_argument("--state", help="only jobs in this state (running, completed, ...)")

    grants = commands.add_parser("grants", help="list stored sign-ins; revoke an unused one")
    grants.add_argument("--json", action="store_true", help="print JSON")
    grants.add_argument("--revoke", type=int, metavar="ID", help="revoke this unused sign-in")

    rpc = commands.add_parser("rpc", help="call a daemon method and print the result as JSON")
    rpc.add_argument("method", help="e.g. clients.list")
    rpc.add_argument("params", nargs="?", default="{}", help="the params as a JSON object")
    rpc.add_argument(
        "--error-json",
        action="store_true",
        help='print an error reply as one JSON line on stderr: {"error": {"code", "message", '
        '"data"}}',
    )

    provider = commands.add_parser("provider", help="set up accounting software")
    provider_commands = provider.add_subparsers(dest="provider_command", required=True)
    secret = provider_commands.add_parser(
        "set-secret", help="store an app's client secret in the vault (read from stdin)"
    )
    secret.add_argument("name", help="the provider's name in config.toml, e.g. quickbooks")

    channel = commands.add_parser("channel", help="set up email, SMS and bank feeds")
    channel_commands = channel.add_subparsers(dest="channel_command", required=True)
    channel_secret = channel_commands.add_parser(
        "set-secret",
        help="store the SMTP password, SMS auth token or bank-feed API key (read from stdin)",
    )
    channel_secret.add_argument("name", choices=["email", "sms", "banks"])

    add_staff_parsers(commands)
    add_sandbox_parser(commands)
    add_service_parser(commands)
    add_agent_parser(commands)
    return parser


GRANT_TENANTS_SHOWN = 3
"""Businesses named per sign-in in `clientlink grants` (the rest are counted)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clientlink`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _run_tui(args)
    if args.command == "demo":
        from clientlink.cli.demo import run_demo

        return run_demo(args)
    if args.command == "sandbox":
        from clientlink.sandbox.cli import run_sandbox_command

        return run_sandbox_command(args)
    if args.command == "service":
        from clientlink.cli.service_install import run_service_command

        return run_service_command(args)
    if args.command == "agent":
        from clientlink.cli.agent import run_agent_command

        return run_agent_command(args, client_socket(args.home))
    handlers: dict[str, Callable[[DaemonClient, argparse.Namespace], Awaitable[int]]] = {
        "status": _status,
        "clients": _clients,
        "rpc": _rpc,
        "provider": _set_secret,
        "jobs": _jobs,
        "grants": _grants,
        "channel": _set_channel_secret,
        "staff": run_staff,
        "audit": run_audit,
    }
    if args.command == "audit":
        prepare_audit(args)
    if args.command == "rpc":
        try:
            args.params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            print(f"clientlink rpc: params are not valid JSON: {exc}", file=sys.stderr)
            return EXIT_ERROR
    if args.command == "clients" and args.clients_command == "import":
        # Made absolute here (the CLI runs as the person); a symbolic link is not followed.
        args.file = os.path.abspath(os.path.expanduser(args.file))
    if args.command in ("provider", "channel"):
        args.secret = _read_secret(args.name)
        if not args.secret:
            print(f"clientlink {args.command} set-secret: no secret given", file=sys.stderr)
            return EXIT_ERROR
    try:
        return asyncio.run(_with_daemon(args, handlers[args.command]))
    except BrokenPipeError:
        # The reader went away (`clientlink clients | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def _run_tui(args: argparse.Namespace) -> int:
    from clientlink.tui.app import ClientlinkApp

    ClientlinkApp(client_socket(args.home)).run()
    return 0


async def _with_daemon(
    args: argparse.Namespace,
    handler: Callable[[DaemonClient, argparse.Namespace], Awaitable[int]],
) -> int:
    socket_path = client_socket(args.home)
    try:
        async with DaemonClient(socket_path, client_name="cli") as daemon:
            return await handler(daemon, args)
    except (DaemonImpostor, DaemonRefused) as exc:
        print(f"clientlink: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except DaemonUnavailable as exc:
        print(
            f"clientlink: {exc}. Start it with `clientlinkd"
            + (f" --home {shlex.quote(str(args.home))}" if args.home else "")
            + "`.",
            file=sys.stderr,
        )
        return EXIT_NO_DAEMON
    except RpcError as exc:
        if getattr(args, "error_json", False):
            error = {"code": exc.code, "message": exc.message, "data": exc.data}
            print(terminal_json({"error": error}, indent=None), file=sys.stderr)
            return EXIT_ERROR
        # The daemon's message may quote a provider (a sign-in's error description).
        print(f"clientlink: {visible(str(exc))}", file=sys.stderr)
        return EXIT_ERROR


async def _rpc(daemon: DaemonClient, args: argparse.Namespace) -> int:
    result = await daemon.call_raw(args.method, args.params)  # the method name is data here
    print(terminal_json(result))
    return 0


async def _status(daemon: DaemonClient, args: argparse.Namespace) -> int:
    status = await daemon.call(p.DAEMON_STATUS)
    counts = status.clients_by_status
    attention = sum(counts.get(s.value, 0) for s in ConnectionStatus if s.needs_attention)
    if args.json:
        print(terminal_json(status.model_dump(mode="json")))
    else:
        print(_status_line(counts, attention))
        names = {item.name: item.display_name for item in status.providers}
        for usage in status.usage:
            print(usage_line(usage, names.get(usage["provider"]) or usage["provider"]))
    return EXIT_ATTENTION if attention else 0


def _status_line(counts: dict[str, int], attention: int) -> str:
    total = sum(counts.values())
    parts = [
        f"{counts[status.value]} {STATUS_LABELS[status].lower()}"
        for status in ConnectionStatus
        if counts.get(status.value)
    ]
    summary = ", ".join(parts) if parts else "no clients yet"
    if attention:
        return f"clientlink: {attention} of {total} clients need attention ({summary})"
    return f"clientlink: all {total} clients fine ({summary})"


async def _clients(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if getattr(args, "clients_command", None) == "import":
        return await _clients_import(daemon, args)
    flt: dict[str, Any] = {}
    if args.status:
        flt["status"] = args.status
    if args.text:
        flt["text"] = args.text
    if args.mine:
        flt["mine"] = True
    items: list[p.Client] = []
    total = None
    while total is None or len(items) < total:
        page = await daemon.call(p.CLIENTS_LIST, filter=flt, offset=len(items), limit=1000)
        total = page.total
        items += page.items
        if not page.items:
            break
    if args.json:
        rows = [item.model_dump(mode="json") for item in items]
        print(terminal_json({"total": total, "items": rows}))
        return 0
    for item in items:
        label = STATUS_LABELS[ConnectionStatus(item.status)]
        # Names come from the client's own accounting file: shown, never obeyed.
        name, provider = visible(item.name), visible(item.provider)
        print(f"{item.id:>6}  {label:<14} {provider:<10} {name}")
    print(plural(total or 0, "client"))
    return 0


async def _jobs(daemon: DaemonClient, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": 200}
    if args.state:
        params["state"] = args.state
    listing = await daemon.call(p.JOBS_LIST, **params)
    if args.json:
        print(terminal_json(listing.model_dump(mode="json")))
        return 0
    for job in listing.items:
        print(
            f"{job.id:>6}  {visible(job.kind):<12} {visible(job.state):<10} "
            f"{job.done}/{job.total} done, {job.failed} failed  "
            f"{job.created_at} by {visible(str(job.actor))}"
        )
        wait = job.waiting_for_sign_in
        if wait is not None:
            print(
                f"        {visible(waiting_for_sign_in(wait.business))} "
                f"(sign-in {wait.index} of {wait.of}, {plural(wait.funds, 'fund')}): "
                "continue in clientlink's Jobs screen"
            )
    print(plural(len(listing.items), "job"))
    return 0


async def _grants(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if args.revoke is not None:
        result = await daemon.call(p.GRANTS_REVOKE, grant_id=args.revoke)
        print(visible(result.message))
        return 0
    listing = await daemon.call(p.GRANTS_LIST)
    if args.json:
        print(terminal_json(listing.model_dump(mode="json")))
        return 0
    for grant in listing.items:
        use = "unused sign-in" if grant.unused else plural(grant.clients, "client")
        names = grant.tenants
        shown = ", ".join(names[:GRANT_TENANTS_SHOWN])
        if len(names) > GRANT_TENANTS_SHOWN:
            shown += f" and {len(names) - GRANT_TENANTS_SHOWN} more"
        print(
            f"{grant.id:>6}  {visible(grant.provider):<10} {visible(grant.state):<8} "
            f"{use:<16} {visible(shown)}"
        )
    unused = sum(1 for grant in listing.items if grant.unused)
    print(
        f"{plural(len(listing.items), 'grant')}, {unused} unused "
        "(revoke one with clientlink grants --revoke ID)"
    )
    return 0


REFUSED_ROWS_PRINTED = 1000


async def _clients_import(daemon: DaemonClient, args: argparse.Namespace) -> int:
    path = args.file
    preview = await daemon.call(
        p.CLIENTS_IMPORT_FILE, path=path, verdict="refuse", limit=REFUSED_ROWS_PRINTED
    )
    counts = preview.counts
    if args.json and not args.yes:
        print(terminal_json(preview.model_dump(mode="json")))
        return 0
    out = sys.stderr if args.json else sys.stdout
    print(
        f"{visible(path)}: {plural(sum(counts.values()), 'row')}: {counts['add']} to add, "
        f"{counts['match']} matching clients, {counts['refuse']} refused",
        file=out,
    )
    for row in preview.rows:
        # Cells come from the file: shown, never obeyed.
        print(f"  row {row.row}: {visible(row.name)}: {visible(row.reason or '')}", file=out)
    if counts["refuse"] > len(preview.rows):
        print(f"  ... and {counts['refuse'] - len(preview.rows)} more refused rows", file=out)
    if not counts["add"] and not counts["match"]:
        print("Nothing to import: every row is refused.", file=sys.stderr)
        return EXIT_ERROR
    skip = args.skip_refused
    if not args.yes:
        if not sys.stdin.isatty():
            print("Nothing imported: run again with --yes to import.", file=out)
            return 0
        question = f"{import_sentence(counts)}? [y/N] "
        answer = (await asyncio.to_thread(input, question)).strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing imported.", file=out)
            return 0
        skip = True  # the question said the refused rows are skipped
    elif counts["refuse"] and not skip:
        print(
            f"Nothing imported: {plural(counts['refuse'], 'row is', 'rows are')} refused. "
            "Correct them, or import the others with --skip-refused.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    done = await daemon.call(
        p.CLIENTS_IMPORT_FILE,
        path=path,
        confirm=True,
        digest=preview.digest,
        skip_refused=skip,
        limit=1,
    )
    if args.json:
        print(terminal_json(done.model_dump(mode="json")))
        return 0
    line = f"Imported: {plural(done.created, 'client')} added, {done.updated} updated"
    if counts["refuse"]:
        line += f", {plural(counts['refuse'], 'refused row')} skipped"
    print(line + ".")
    return 0


async def _set_channel_secret(daemon: DaemonClient, args: argparse.Namespace) -> int:
    await daemon.call(p.CHANNELS_SET_SECRET, channel=args.name, secret=args.secret)
    print(f"The {args.name} secret is stored in the vault.")
    return 0


async def _set_secret(daemon: DaemonClient, args: argparse.Namespace) -> int:
    await daemon.call(p.PROVIDERS_SET_SECRET, provider=args.name, client_secret=args.secret)
    print(f"The client secret for {args.name} is stored in the vault.")
    return 0


def _read_secret(name: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"Client secret for {name} (not shown): ").strip()
    return sys.stdin.readline().strip()


if __name__ == "__main__":
    sys.exit(main())
