"""Release-stage migrations: bounded wait for the database, one migrator at a time."""

from __future__ import annotations

import re
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ..logs import get_logger
from ..settings import Settings
from ..startup import reason
from .engine import create_engine

# Any fixed 64-bit number works, as long as every release process of this app uses the same.
MIGRATION_LOCK_ID = 0x12F_AC70_0001
MIGRATIONS_DIR = Path(__file__).parents[2] / "migrations"
log = get_logger(__name__)


class DatabaseUnavailableError(Exception):
    """The database did not answer within the allowed wait."""


class DatabaseRefusedError(Exception):
    """The server answered and refused: waiting longer cannot help. The message says the fix."""


# What PostgreSQL answers when the URL itself is wrong (libpq gives no SQLSTATE for these).
_REFUSALS = (
    (
        re.compile(r'database "([^"]+)" does not exist'),
        'database "{0}" does not exist: create it (createdb {0}) or fix DATABASE_URL',
    ),
    (
        re.compile(r'role "([^"]+)" does not exist'),
        'PostgreSQL has no user "{0}": fix the user in DATABASE_URL',
    ),
    (
        re.compile(r'password authentication failed for user "([^"]+)"'),
        'PostgreSQL refused the password of user "{0}": fix DATABASE_URL',
    ),
    (
        re.compile(r"no pg_hba\.conf entry"),
        "PostgreSQL refuses this client (pg_hba.conf): fix DATABASE_URL or the server's rules",
    ),
)


def refusal(error: BaseException) -> str | None:
    """The one-line cause and fix when error is a refusal no retry can mend, else None."""
    text = str(error)
    for pattern, message in _REFUSALS:
        found = pattern.search(text)
        if found:
            return message.format(*found.groups())
    return None


def alembic_config() -> Config:
    """Alembic's configuration, pointing at the migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    """The newest revision in the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def connect_with_retry(engine: Engine, wait_seconds: float) -> Connection:
    """Connect, retrying while the server is not reachable yet, until wait_seconds have passed
    (then DatabaseUnavailableError); a refusal (no such database, user or password) raises
    DatabaseRefusedError at once."""
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            return engine.connect()
        except Exception as error:  # driver errors have many types; refusals are told apart
            cause = refusal(error)
            if cause is not None:
                raise DatabaseRefusedError(cause) from None
            why = reason(error)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DatabaseUnavailableError(
                f"PostgreSQL did not answer within {wait_seconds:g} s "
                f"({attempt} attempts; last: {why})"
            )
        log.info("waiting for database", attempt=attempt, reason=why)
        time.sleep(min(1.0, remaining))


def migrate(settings: Settings, target: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema to target while holding an advisory lock; returns (before, after).

    Release processes started at once queue on the lock; each then finds the schema at head
    and has nothing left to do, so every migration runs exactly once.
    """
    engine = create_engine(settings, process="admin")
    try:
        with connect_with_retry(engine, settings.db_wait_timeout) as connection:
            timeout_ms = int(settings.migration_lock_timeout * 1000)
            connection.execute(text(f"SET lock_timeout = {timeout_ms}"))
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
            try:
                before = _current_revision(connection)
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, target)
                connection.commit()
                after = _current_revision(connection)
            finally:
                connection.rollback()
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                connection.commit()
    finally:
        engine.dispose()
    return before, after


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine = create_engine(settings, process="admin")
    try:
        with engine.connect() as connection:
            return _current_revision(connection)
    finally:
        engine.dispose()
