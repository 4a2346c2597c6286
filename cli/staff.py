"""``clientlink staff`` (the practice's staff list, for admins) and ``clientlink audit``
(who did what, by staff member and client, and its CSV export)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.safe_text import terminal_json, visible
from clientlink.common.vocabulary import Role
from clientlink.common.wording import plural

ROLES = [role.value for role in Role]


def configure_staff_parser(staff: argparse.ArgumentParser) -> None:
    """The arguments of ``clientlink staff list|add|update|leave``."""
    staff_commands = staff.add_subparsers(dest="staff_command", required=True)
    listing = staff_commands.add_parser("list", help="everyone on the staff list")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add = staff_commands.add_parser(
        "add",
        help="let a Unix login use clientlink, with a role",
        description="Put an existing Unix login on the staff list. In firm mode the login "
        "must also be in the practice's group to reach the daemon's socket.",
    )
    add.add_argument("login", help="the person's Unix login")
    add.add_argument("--name", help="their name as colleagues say it (the system's by default)")
    add.add_argument("--email", help="their email address (for alerts)")
    add.add_argument("--role", choices=ROLES, default=Role.STAFF.value, help="staff by default")
    update = staff_commands.add_parser("update", help="change a staff member")
    update.add_argument("login")
    update.add_argument("--name", help="a new display name")
    update.add_argument("--email", help="a new email address ('' clears it)")
    update.add_argument("--role", choices=ROLES)
    update.add_argument(
        "--active", action="store_true", help="back on the staff list after leaving"
    )
    leave = staff_commands.add_parser(
        "leave",
        help="someone left the practice: list and flag the clients resting on their sign-ins",
        description="Mark a staff member as left. Every client resting on their sign-ins is "
        "flagged (expiring: owner left) and shown in Needs attention; nothing is revoked at "
        "the software. A colleague then takes them over: Bulk Actions → Take over connections.",
    )
    leave.add_argument("login")
    leave.add_argument(
        "--dry-run", action="store_true", help="only list what rests on their sign-ins"
    )


def configure_audit_parser(audit: argparse.ArgumentParser) -> None:
    """The arguments of ``clientlink audit``."""
    audit.add_argument("--actor", metavar="LOGIN", help="only what this staff member did")
    audit.add_argument("--client", type=int, metavar="ID", help="only what was done to it")
    audit.add_argument("--limit", type=int, default=100, help="how many entries (100)")
    audit.add_argument("--export", metavar="PATH", help="write every matching entry to a CSV")
    audit.add_argument("--json", action="store_true", help="print JSON")


def prepare_audit(args: argparse.Namespace) -> None:
    """The export path made absolute here (the CLI runs as the person)."""
    if args.export:
        args.export = os.path.abspath(os.path.expanduser(args.export))


async def run_staff(daemon: DaemonClient, args: argparse.Namespace) -> int:
    if args.staff_command == "list":
        listing = await daemon.call(p.STAFF_LIST)
        if args.json:
            print(terminal_json(listing.model_dump(mode="json")))
            return 0
        for member in listing.items:
            print(_member_line(member))
        mode = "firm mode" if listing.firm else "single-user mode: only the owner connects"
        print(f"{plural(len(listing.items), 'staff member')} ({mode})")
        return 0
    if args.staff_command == "leave":
        result = await daemon.call(p.STAFF_LEAVE, login=args.login, dry_run=args.dry_run)
        for grant in result.grants:
            business = f" ({visible(grant.business)})" if grant.business else ""
            print(
                f"sign-in {grant.grant_id} "
                f"to {visible(grant.provider)}{business}: "
                f"{plural(len(grant.clients), 'client')}"
            )
            for client in grant.clients:
                print(f"    {client.id:>6}  {visible(client.name)}")
        print(visible(result.message))
        return 0
    params: dict[str, Any] = {"login": args.login}
    if args.name is not None:
        params["display_name"] = args.name
    if args.email is not None:
        params["email"] = args.email
    if args.role is not None:
        params["role"] = args.role
    if args.staff_command == "add":
        member = await daemon.call(p.STAFF_ADD, **params)
        print(f"added {_member_line(member).strip()}")
        return 0
    if args.active:
        params["active"] = True
    member = await daemon.call(p.STAFF_UPDATE, **params)
    print(f"now {_member_line(member).strip()}")
    return 0


def _member_line(member: p.StaffMember) -> str:
    email = f" <{visible(member.email)}>" if member.email else ""
    state = "" if member.state == "active" else f", left {(member.left_at or '')[:10]}"
    return (
        f"{visible(member.login):<16} {member.role.value:<10} "
        f"{visible(member.display_name)}{email}{state}"
    )


async def run_audit(daemon: DaemonClient, args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {}
    if args.actor:
        filters["actor"] = args.actor
    if args.client is not None:
        filters["client_id"] = args.client
    if args.export:
        result = await daemon.call(p.AUDIT_EXPORT, path=args.export, **filters)
        print(f"wrote {plural(result.rows, 'entry', 'entries')} to {visible(result.path)}")
        return 0
    listing = await daemon.call(p.AUDIT_LIST, limit=args.limit, **filters)
    if args.json:
        print(terminal_json(listing.model_dump(mode="json")))
        return 0
    for entry in listing.items:
        who = visible(entry.actor_name or entry.actor)
        what = visible(entry.action)
        client = ""
        if entry.client_id is not None:
            client = f"  {visible(entry.client_name or str(entry.client_id))}"
        print(f"{entry.at}  {who:<20} {what}{client}")
    shown = len(listing.items)
    more = f" (the newest {shown}; --limit for more)" if shown < listing.total else ""
    print(f"{plural(listing.total, 'entry', 'entries')}{more}")
    return 0
