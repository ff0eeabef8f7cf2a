"""Admin one-off processes (the `-admin` command): same code and environment as web."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable

from redis import RedisError

from .apikeys.service import KeyNameTakenError, create_key, list_keys, revoke_key
from .db.migrate import (
    DatabaseRefusedError,
    DatabaseUnavailableError,
    current_revision,
    head_revision,
    migrate,
)
from .db.pool import Database
from .errors import unavailable_service
from .jobs.broker import build_broker
from .jobs.queues import dead_letters, purge, requeue
from .logs import get_logger
from .notes import service as notes
from .notes.schemas import NoteIn
from .redis_connection import blocking_client
from .settings import Settings
from .startup import EXIT_BOTH, EXIT_CONFIG, EXIT_POSTGRES, EXIT_REDIS, begin, fail, reason

EXIT_UNMIGRATED = 6
EXIT_DATABASE_WAIT = 7
EXIT_KEY_NAME_TAKEN = 8
EXIT_NO_SUCH_KEY = 9
SEED_BATCH = 1_000  # notes per transaction of seed-notes
log = get_logger("admin")

Handler = Callable[[Settings, argparse.Namespace], int]


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Upgrade the schema to head (the `release` process type)."""
    try:
        before, after = migrate(settings, args.target)
    except DatabaseRefusedError as error:
        fail(str(error))
        return EXIT_CONFIG
    except DatabaseUnavailableError as error:
        fail(str(error))
        return EXIT_DATABASE_WAIT
    log.info("migrated", before=before, after=after, changed=before != after)
    return 0


def cmd_check(settings: Settings, _args: argparse.Namespace) -> int:
    """Configuration valid, PostgreSQL and Redis reachable, schema at head."""
    problems: list[str] = []
    postgres_ok = redis_ok = True
    revision = None
    try:
        revision = current_revision(settings)
    except Exception as error:  # any failure means "not reachable"
        postgres_ok = False
        problems.append(f"PostgreSQL unreachable ({type(error).__name__})")
    redis = blocking_client(settings)
    try:
        redis.ping()
    except Exception as error:  # any failure means "not reachable"
        redis_ok = False
        problems.append(f"Redis unreachable ({type(error).__name__})")
    finally:
        redis.close()
    if not (postgres_ok and redis_ok):
        fail("; ".join(problems))
        if not postgres_ok and not redis_ok:
            return EXIT_BOTH
        return EXIT_POSTGRES if not postgres_ok else EXIT_REDIS
    head = head_revision()
    if revision != head:
        fail(f"database schema is at {revision}, code expects {head}: run migrate")
        return EXIT_UNMIGRATED
    log.info("check passed", postgres="ok", redis="ok", revision=revision)
    # For a human at a terminal; stdout carries only the JSON log stream.
    print(  # noqa: T201
        "ok: configuration valid, PostgreSQL and Redis reachable, schema at head", file=sys.stderr
    )
    return 0


async def _seed_notes(settings: Settings, count: int) -> int:
    db = await Database.open(settings, process="admin")
    try:
        for start in range(1, count + 1, SEED_BATCH):
            numbers = range(start, min(start + SEED_BATCH, count + 1))
            await notes.create_notes(
                db, [NoteIn(title=f"Note {n}", body="seeded") for n in numbers]
            )
            print(f"seeded {numbers[-1]}/{count}", file=sys.stderr)  # noqa: T201
        return await notes.count_notes(db)
    finally:
        await db.close()


def cmd_seed_notes(settings: Settings, args: argparse.Namespace) -> int:
    """Insert example notes (a data task; also used to prepare benchmarks)."""
    total = asyncio.run(_seed_notes(settings, args.count))
    log.info("seeded notes", added=args.count, total=total)
    return 0


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """List jobs that failed their last retry; optionally enqueue them again or delete them."""
    broker = build_broker(settings)
    try:
        letters = dead_letters(broker)
        if args.message_ids:
            wanted = set(args.message_ids)
            letters = [letter for letter in letters if letter.message.message_id in wanted]
        for letter in letters:
            print(letter.describe())  # noqa: T201  # the listing is this command's output
        if args.requeue:
            log.info("dead letters requeued", count=requeue(broker, letters))
        elif args.purge:
            log.info("dead letters purged", count=purge(broker, letters))
    except RedisError as error:
        fail(f"Redis unreachable ({reason(error)})")
        return EXIT_REDIS
    finally:
        broker.client.close()
    print(f"{len(letters)} dead letter(s)", file=sys.stderr)  # noqa: T201
    return 0


KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _key_name(value: str) -> str:
    if not KEY_NAME.match(value):
        raise argparse.ArgumentTypeError(
            "1 to 64 lowercase letters, digits, dots, dashes or underscores, starting with a "
            "letter or digit"
        )
    return value


def cmd_api_keys(settings: Settings, args: argparse.Namespace) -> int:
    """Make, list and revoke the API keys that /api accepts."""
    return asyncio.run(_api_keys(settings, args))


async def _api_keys(settings: Settings, args: argparse.Namespace) -> int:
    db = await Database.open(settings, process="admin")
    try:
        if args.action == "create":
            try:
                key = await create_key(db, settings, args.name, replace=args.replace)
            except KeyNameTakenError:
                fail(f"an API key called {args.name} exists: revoke it first, or use --replace")
                return EXIT_KEY_NAME_TAKEN
            log.info("api key created", name=args.name)
            print(f"API key {args.name} (shown once, store it now):", file=sys.stderr)  # noqa: T201
            print(key)  # noqa: T201  # the last line of stdout, for scripts
        elif args.action == "list":
            keys = await list_keys(db, settings)
            for info in keys:
                used = info.last_used_at.isoformat() if info.last_used_at else "never"
                print(  # noqa: T201  # the listing is this command's output
                    f"{info.key_id}\t{info.name}\tcreated {info.created_at.isoformat()}"
                    f"\tlast used {used}\tsecret {info.secret}"
                )
            print(f"{len(keys)} API key(s)", file=sys.stderr)  # noqa: T201
        elif not await revoke_key(db, args.name):
            fail(f"no API key called {args.name}")
            return EXIT_NO_SUCH_KEY
        else:
            log.info("api key revoked", name=args.name)
    finally:
        await db.close()
    return 0


COMMANDS: dict[str, tuple[Handler, str]] = {
    "migrate": (cmd_migrate, "upgrade the database schema (release stage)"),
    "check": (cmd_check, "exit 0 when config, PostgreSQL, Redis and schema are all good"),
    "seed-notes": (cmd_seed_notes, "insert example notes"),
    "dead-letters": (cmd_dead_letters, "list jobs that failed every retry; --requeue, --purge"),
    "api-keys": (cmd_api_keys, "create NAME (prints the key once), list, revoke NAME"),
}


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
    for name, (_handler, help_text) in COMMANDS.items():
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
    handler, _ = COMMANDS[args.command]
    try:
        code = handler(settings, args)
    except Exception as error:
        service = unavailable_service(error)
        if service is None:
            raise
        fail(f"{service} unreachable ({reason(error)})")
        code = EXIT_POSTGRES if service == "PostgreSQL" else EXIT_REDIS
    sys.exit(code)
