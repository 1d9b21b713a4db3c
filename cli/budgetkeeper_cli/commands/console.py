"""`budgetkeeper console`: the operators' web console on this machine, with the caller's credentials."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
import webbrowser
from typing import Any

from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
NEEDS = ("rollups_table", "budgets_table", "totals_table", "audit_table")

DESCRIPTION = """\
Serve the operators' web console on this machine: tabs for the scopes and their budgets, spend per
team and member, consumption per day, hour, model and Region, costs window over window, enforcement
(who is warned, in grace, suspended or protected; the runs going on; the audit trail), the rates in
force per Region and tier, and whether metering keeps up with the doctor's checks; a page per scope
(its spend over time, budgets, audit, members, top models); every table exports as CSV. From it an
operator sets a budget and suspends, restores, protects and unprotects scopes (buttons on every
budget's row), each after a confirmation, each through the same code as the command line (the
enforcement workflow, with your STS identity as the actor).

It needs no AWS resources of its own: it uses your credentials, as every other command does. A random
access token is printed with the URL at start and asked of every request; changes are POSTs with a
CSRF token; --read-only refuses them all. Ctrl-C stops it."""

EPILOG = """\
examples:
  budgetkeeper console --stack-name budgetkeeper-prod
  budgetkeeper console --read-only --port 9000
  budgetkeeper console --host 0.0.0.0        # reachable from other machines: warned about
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "console",
        "the operators' web console on 127.0.0.1: spend, budgets, enforcement, with actions",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: a free one)"
    )
    parser.add_argument("--read-only", action="store_true", help="show only: every change is refused")
    parser.add_argument("--open", action="store_true", help="open the console in the default browser")
    parser.add_argument(
        "--since", metavar="ISO", help="the usage tabs' window when a page names none, as for `report`"
    )
    parser.add_argument("--until", metavar="ISO", help="(default: the current month so far)")
    parser.add_argument(
        "--banner", metavar="TEXT", help="a line shown on top of every page, e.g. which account this is"
    )
    add_stack_options(parser)
    parser.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    # Imported here: Flask is for this command only.
    from budgetkeeper_cli.console.app import console_url, create_app
    from budgetkeeper_cli.console.server import start_server

    needs = NEEDS if args.read_only else (*NEEDS, "operator_machine_arn_value")
    stack = connect(args, needs=needs)
    stack.caller_arn()  # who the actor will be, and a check that the credentials work, before serving
    token = secrets.token_urlsafe(24)
    if not is_loopback(args.host):
        sys.stderr.write(
            f"budgetkeeper console: warning: listening on {args.host}, not on the loopback address: "
            "anyone who can reach it and learns the token acts with your AWS credentials, over plain "
            "HTTP (the token travels in clear); prefer 127.0.0.1 and an SSH tunnel\n"
        )
    app = create_app(
        stack,
        token=token,
        read_only=args.read_only,
        since=args.since,
        until=args.until,
        banner=args.banner,
    )
    server = start_server(app, args.host, args.port)
    url = console_url(args.host, server.server_port, token)
    sys.stdout.write(
        f"Budgetkeeper console for {stack.origin}, acting as {stack.caller_arn()}"
        + (" (read-only)" if args.read_only else "")
        + f":\n  {url}\n(the token in the URL is asked of every request; Ctrl-C stops the console)\n"
    )
    sys.stdout.flush()
    if args.open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stdout.write("console stopped\n")
    finally:
        server.server_close()
    return 0
