"""The admin commands (admin.py parses the command line and validates the settings first)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from redis import RedisError

from ..core.apikeys.service import KeyNameTakenError, create_key, list_keys, revoke_key
from ..core.db.engine import create_engine
from ..core.db.migrate import (
    DatabaseRefusedError,
    DatabaseUnavailableError,
    current_revision,
    head_revision,
    migrate,
)
from ..core.db.pool import Database
from ..core.jobs.broker import broker
from ..core.jobs.queues import dead_letters, purge, requeue
from ..core.logs import get_logger
from ..core.redis_connection import blocking_client
from ..core.settings import Settings
from ..core.startup import (
    EXIT_CONFIG,
    EXIT_DATABASE_WAIT,
    EXIT_KEY_NAME_TAKEN,
    EXIT_NO_SUCH_KEY,
    EXIT_REDIS,
    EXIT_UNMIGRATED,
    exit_unreachable,
    fail,
    reason,
    unreachable,
)
from ..features.notes import service as notes
from ..features.notes.schemas import NoteIn

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
    engine = create_engine(settings, process="admin")
    redis = blocking_client(settings)
    try:
        problems = unreachable(redis=redis, postgres=engine)
    finally:
        redis.close()
        engine.dispose()
    if problems:
        exit_unreachable("check failed", problems)
    revision = current_revision(settings)
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


def cmd_dead_letters(_settings: Settings, args: argparse.Namespace) -> int:
    """List jobs that failed their last retry; optionally enqueue them again or delete them."""
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


HANDLERS: dict[str, Handler] = {
    "migrate": cmd_migrate,
    "check": cmd_check,
    "seed-notes": cmd_seed_notes,
    "dead-letters": cmd_dead_letters,
    "api-keys": cmd_api_keys,
}
