"""``clientlink``: the TUI, and the subcommands for scripts and the terminal.

clientlink                      open the TUI
clientlink demo                 a throwaway practice on the sandbox (sandbox + daemon + TUI)
clientlink status [--json]      one line on what needs attention; exit 1 when something does
clientlink clients [--json]     list clients (filter with --status, --text, --mine)
clientlink clients import FILE [--yes] [--skip-refused]   add clients from a CSV or XLSX file
clientlink rpc METHOD [JSON]    call the daemon; the result is printed as JSON
clientlink grants [--json] [--revoke ID]   stored sign-ins; revoke an unused one
clientlink provider set-secret NAME   store an app's client secret in the vault
clientlink staff list|add|update|leave LOGIN   the practice's staff and roles (admins)
clientlink audit [--actor LOGIN] [--client ID] [--export PATH]   who did what
clientlink sandbox ...          the emulated providers (see `clientlink sandbox --help`)
clientlink service install|uninstall|status   clientlinkd as a systemd user service
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable

from clientlink.cli.exits import EXIT_ATTENTION, EXIT_ERROR, EXIT_NO_DAEMON
from clientlink.common.version import VERSION
from clientlink.common.vocabulary import ConnectionStatus

__all__ = ["EXIT_ATTENTION", "EXIT_ERROR", "EXIT_NO_DAEMON", "build_parser", "main"]

EVERY_COMMAND = "*"
"""``build_parser(EVERY_COMMAND)``: every subcommand with all of its arguments."""


def _configure_status(status: argparse.ArgumentParser) -> None:
    status.add_argument("--json", action="store_true", help="print the daemon's status as JSON")


def _configure_clients(clients: argparse.ArgumentParser) -> None:
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


def _configure_jobs(jobs: argparse.ArgumentParser) -> None:
    jobs.add_argument("--json", action="store_true", help="print JSON")
    jobs.add_argument("--state", help="only jobs in this state (running, completed, ...)")


def _configure_grants(grants: argparse.ArgumentParser) -> None:
    grants.add_argument("--json", action="store_true", help="print JSON")
    grants.add_argument("--revoke", type=int, metavar="ID", help="revoke this unused sign-in")


def _configure_rpc(rpc: argparse.ArgumentParser) -> None:
    rpc.add_argument("method", help="e.g. clients.list")
    rpc.add_argument("params", nargs="?", default="{}", help="the params as a JSON object")
    rpc.add_argument(
        "--error-json",
        action="store_true",
        help='print an error reply as one JSON line on stderr: {"error": {"code", "message", '
        '"data"}}',
    )


def _configure_provider(provider: argparse.ArgumentParser) -> None:
    provider_commands = provider.add_subparsers(dest="provider_command", required=True)
    secret = provider_commands.add_parser(
        "set-secret", help="store an app's client secret in the vault (read from stdin)"
    )
    secret.add_argument("name", help="the provider's name in config.toml, e.g. quickbooks")


def _configure_channel(channel: argparse.ArgumentParser) -> None:
    channel_commands = channel.add_subparsers(dest="channel_command", required=True)
    channel_secret = channel_commands.add_parser(
        "set-secret",
        help="store the SMTP password, SMS auth token or bank-feed API key (read from stdin)",
    )
    channel_secret.add_argument("name", choices=["email", "sms", "banks"])


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    from clientlink.cli.demo import configure_demo_parser

    configure_demo_parser(parser)


def _configure_staff(parser: argparse.ArgumentParser) -> None:
    from clientlink.cli.staff import configure_staff_parser

    configure_staff_parser(parser)


def _configure_audit(parser: argparse.ArgumentParser) -> None:
    from clientlink.cli.staff import configure_audit_parser

    configure_audit_parser(parser)


def _configure_sandbox(parser: argparse.ArgumentParser) -> None:
    from clientlink.sandbox.cli import DESCRIPTION, configure_parser

    parser.description = DESCRIPTION
    configure_parser(parser)


def _configure_service(parser: argparse.ArgumentParser) -> None:
    from clientlink.cli.service_install import configure_service_parser

    configure_service_parser(parser)


def _configure_agent(parser: argparse.ArgumentParser) -> None:
    from clientlink.cli.agent import configure_agent_parser

    configure_agent_parser(parser)


COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = [
    (
        "demo",
        "a throwaway practice on the sandbox: sandbox, daemon and TUI together",
        _configure_demo,
    ),
    ("status", "counts by status; exits 1 when something needs attention", _configure_status),
    ("clients", "list clients", _configure_clients),
    ("jobs", "list bulk jobs, newest first", _configure_jobs),
    ("grants", "list stored sign-ins; revoke an unused one", _configure_grants),
    ("rpc", "call a daemon method and print the result as JSON", _configure_rpc),
    ("provider", "set up accounting software", _configure_provider),
    ("channel", "set up email, SMS and bank feeds", _configure_channel),
    ("staff", "the practice's staff and their roles (admins)", _configure_staff),
    ("audit", "who did what, newest first; export it as CSV", _configure_audit),
    (
        "sandbox",
        "serve the emulated providers on loopback (or approve a sign-in)",
        _configure_sandbox,
    ),
    ("service", "run clientlinkd as a systemd user service", _configure_service),
    ("agent", "show the practice's alerts on your desktop (firm mode)", _configure_agent),
]
"""Every subcommand: its name, its line in ``clientlink --help``, what adds its arguments."""


def build_parser(command: str | None = EVERY_COMMAND) -> argparse.ArgumentParser:
    """The command line; with ``command`` the arguments of only that subcommand.

    The others are named with their help line and take anything (their arguments would load
    their modules: the sandbox, the demo, the protocol's models), which is all the first pass
    of ``main`` needs to learn which subcommand runs.
    """
    parser = argparse.ArgumentParser(
        prog="clientlink",
        description="Keep your clients' accounting-software connections alive.",
    )
    parser.add_argument("--home", help="use this folder for config, data and the socket")
    parser.add_argument("--version", action="version", version=f"clientlink {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_line, configure in COMMANDS:
        if command in (name, EVERY_COMMAND):
            configure(commands.add_parser(name, help=help_line))
        else:
            commands.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clientlink`` console script."""
    # First pass: which subcommand (or --help, --version for the whole command line).
    known, _rest = build_parser(None).parse_known_args(argv)
    args = build_parser(known.command).parse_args(argv)
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
        from clientlink.common.paths import client_socket

        return run_agent_command(args, client_socket(args.home))
    if args.command == "audit":
        from clientlink.cli.staff import prepare_audit

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
    from clientlink.cli import daemon_commands

    try:
        return daemon_commands.run(args)
    except BrokenPipeError:
        # The reader went away (`clientlink clients | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def _run_tui(args: argparse.Namespace) -> int:
    from clientlink.common.paths import client_socket
    from clientlink.tui.app import ClientlinkApp

    ClientlinkApp(client_socket(args.home)).run()
    return 0


def _read_secret(name: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"Client secret for {name} (not shown): ").strip()
    return sys.stdin.readline().strip()


if __name__ == "__main__":
    sys.exit(main())
