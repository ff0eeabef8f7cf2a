"""Admin one-off processes (the `-admin` command): same code and environment as web.

The command line and the settings are checked before the commands (admin_commands.py) are
imported, so a bad configuration is refused at once.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..core.startup import (
    EXIT_BOTH,
    EXIT_CONFIG,
    EXIT_DATABASE_WAIT,
    EXIT_KEY_NAME_TAKEN,
    EXIT_NO_SUCH_KEY,
    EXIT_POSTGRES,
    EXIT_REDIS,
    EXIT_UNMIGRATED,
    begin,
    fail,
    reason,
)

COMMANDS: dict[str, str] = {
    "migrate": "upgrade the database schema (release stage)",
    "check": "exit 0 when config, PostgreSQL, Redis and schema are all good",
    "seed-notes": "insert example notes",
    "dead-letters": "list jobs that failed every retry; --requeue, --purge",
    "api-keys": "create NAME (prints the key once), list, revoke NAME",
}
KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _key_name(value: str) -> str:
    if not KEY_NAME.match(value):
        raise argparse.ArgumentTypeError(
            "1 to 64 lowercase letters, digits, dots, dashes or underscores, starting with a "
            "letter or digit"
        )
    return value


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The admin command line."""
    parser = argparse.ArgumentParser(
        prog="{{ cookiecutter.package_name }}-admin",
        description="Admin one-off tasks, run in the same environment as the web process.",
        epilog=(
            f"exit codes: {EXIT_CONFIG} bad configuration, {EXIT_POSTGRES} PostgreSQL down, "
            f"{EXIT_REDIS} Redis down, {EXIT_BOTH} both down, {EXIT_UNMIGRATED} schema behind, "
            f"{EXIT_DATABASE_WAIT} database wait timed out, {EXIT_KEY_NAME_TAKEN} key name taken, "
            f"{EXIT_NO_SUCH_KEY} no such key"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == "migrate":
            sub.add_argument("target", nargs="?", default="head", help="revision (default: head)")
        if name == "seed-notes":
            sub.add_argument("count", type=_positive, nargs="?", default=10)
        if name == "api-keys":
            actions = sub.add_subparsers(dest="action", required=True, metavar="ACTION")
            create = actions.add_parser("create", help="make a key; it is printed once")
            create.add_argument("name", type=_key_name)
            create.add_argument(
                "--replace", action="store_true", help="revoke a key of that name first"
            )
            actions.add_parser("list", help="names, ids, creation and last use; never a key")
            revoke = actions.add_parser("revoke", help="shut a key out at once")
            revoke.add_argument("name", type=_key_name)
        if name == "dead-letters":
            action = sub.add_mutually_exclusive_group()
            action.add_argument("--requeue", action="store_true", help="enqueue them again")
            action.add_argument("--purge", action="store_true", help="delete them for good")
            sub.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID", help="only these")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of `{{ cookiecutter.package_name }}-admin`."""
    args = build_parser().parse_args(argv)
    settings = begin()
    from ..core.http.errors import unavailable_service  # noqa: PLC0415
    from .admin_commands import HANDLERS  # noqa: PLC0415  # once the settings are known good

    try:
        code = HANDLERS[args.command](settings, args)
    except Exception as error:
        service = unavailable_service(error)
        if service is None:
            raise
        fail(f"{service} unreachable ({reason(error)})")
        code = EXIT_POSTGRES if service == "PostgreSQL" else EXIT_REDIS
    sys.exit(code)
