"""Admin one-off processes (the `-admin` command): same code and environment as web."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .logs import configure_logging, get_logger
from .settings import ConfigError, Settings, load_settings

EXIT_CONFIG = 78  # sysexits.h EX_CONFIG
EXIT_POSTGRES = 3
EXIT_REDIS = 4
EXIT_BOTH = 5
EXIT_UNMIGRATED = 6
EXIT_DATABASE_WAIT = 7
log = get_logger("admin")

Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)  # noqa: T201  # one clear line for a human


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Upgrade the schema to head (the `release` process type)."""
    from .db.migrate import DatabaseUnavailableError, migrate  # noqa: PLC0415

    try:
        before, after = await migrate(settings, args.target)
    except DatabaseUnavailableError as error:
        _fail(str(error))
        return EXIT_DATABASE_WAIT
    log.info("migrated", before=before, after=after, changed=before != after)
    return 0


async def cmd_check(settings: Settings, _args: argparse.Namespace) -> int:
    """Configuration valid, PostgreSQL and Redis reachable, schema at head."""
    from .db.migrate import current_revision, head_revision  # noqa: PLC0415
    from .resources import create_redis  # noqa: PLC0415

    timeout = settings.readiness_timeout * 5
    problems: list[str] = []
    postgres_ok = redis_ok = True
    revision = None
    try:
        revision = await asyncio.wait_for(current_revision(settings), timeout)
    except Exception as error:  # any failure means "not reachable"
        postgres_ok = False
        problems.append(f"PostgreSQL unreachable ({type(error).__name__})")
    redis = create_redis(settings)
    try:
        await asyncio.wait_for(redis.ping(), timeout)
    except Exception as error:  # any failure means "not reachable"
        redis_ok = False
        problems.append(f"Redis unreachable ({type(error).__name__})")
    finally:
        await redis.aclose()
    if not (postgres_ok and redis_ok):
        _fail("; ".join(problems))
        if not postgres_ok and not redis_ok:
            return EXIT_BOTH
        return EXIT_POSTGRES if not postgres_ok else EXIT_REDIS
    head = head_revision()
    if revision != head:
        _fail(f"database schema is at {revision}, code expects {head}: run migrate")
        return EXIT_UNMIGRATED
    log.info("check passed", postgres="ok", redis="ok", revision=revision)
    print("ok: configuration valid, PostgreSQL and Redis reachable, schema at head")  # noqa: T201
    return 0


async def cmd_seed_notes(settings: Settings, args: argparse.Namespace) -> int:
    """Insert example notes (a data task; also used to prepare benchmarks)."""
    from .notes.schemas import NoteIn  # noqa: PLC0415
    from .notes.service import count_notes, create_note  # noqa: PLC0415
    from .resources import Resources  # noqa: PLC0415

    resources = Resources.open(settings)
    try:
        async with resources.sessionmaker() as session:
            for number in range(1, args.count + 1):
                await create_note(session, NoteIn(title=f"Note {number}", body="seeded"))
                if number % 100 == 0:
                    print(f"seeded {number}/{args.count}", file=sys.stderr)  # noqa: T201
            total = await count_notes(session)
    finally:
        await resources.close()
    log.info("seeded notes", added=args.count, total=total)
    return 0


COMMANDS: dict[str, tuple[Handler, str]] = {
    "migrate": (cmd_migrate, "upgrade the database schema (release stage)"),
    "check": (cmd_check, "exit 0 when config, PostgreSQL, Redis and schema are all good"),
    "seed-notes": (cmd_seed_notes, "insert example notes"),
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
            f"{EXIT_DATABASE_WAIT} database wait timed out"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_handler, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == "migrate":
            sub.add_argument("target", nargs="?", default="head", help="revision (default: head)")
        if name == "seed-notes":
            sub.add_argument("count", type=_positive, nargs="?", default=10)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of `{{ cookiecutter.package_name }}-admin`."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        _fail(str(error))
        sys.exit(EXIT_CONFIG)
    configure_logging(settings.log_level)
    handler, _ = COMMANDS[args.command]
    sys.exit(asyncio.run(handler(settings, args)))
