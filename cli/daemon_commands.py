"""The ``clientlink`` subcommands that talk to the daemon: status, clients, jobs, grants,
rpc, provider and channel secrets, staff and audit.

Imported only when one of them runs, so ``clientlink --help`` and the commands that do not
need the daemon load none of the protocol's models.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from clientlink.cli.exits import EXIT_ATTENTION, EXIT_ERROR, EXIT_NO_DAEMON
from clientlink.cli.staff import run_audit, run_staff
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
from clientlink.common.wording import agree, import_sentence, plural, waiting_for_sign_in
from clientlink.common.xero_tiers import usage_line


def run(args: argparse.Namespace) -> int:
    """Carry out the daemon command ``args.command`` names (its arguments already checked)."""
    return asyncio.run(_with_daemon(args, HANDLERS[args.command]))


GRANT_TENANTS_SHOWN = 3
"""Businesses named per sign-in in `clientlink grants` (the rest are counted)."""


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
        return (
            f"clientlink: {attention} of {plural(total, 'client')} "
            f"{agree(attention, 'needs', 'need')} attention ({summary})"
        )
    everyone = "the one client" if total == 1 else f"all {plural(total, 'client')}"
    return f"clientlink: {everyone} fine ({summary})"


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
        f"{plural(counts['match'], 'matching client')}, {counts['refuse']} refused",
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


HANDLERS: dict[str, Callable[[DaemonClient, argparse.Namespace], Awaitable[int]]] = {
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
