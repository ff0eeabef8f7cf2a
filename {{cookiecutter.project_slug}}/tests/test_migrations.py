"""Migrations: each revision goes up, down and up again; models and migrations agree."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, make_url

from {{ cookiecutter.package_name }}.core.db.base import Base
from {{ cookiecutter.package_name }}.core.db.migrate import alembic_config, migrate

from support import (
    base_redis_url,
    create_database,
    drop_database,
    make_settings,
    run_admin,
    service_env,
)


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A fresh empty database, dropped after the test."""
    url = create_database("mig")
    yield url
    drop_database(url)


def _sync_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _leftovers(connection: Connection) -> dict[str, list[str]]:
    rows = {
        "tables": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        "types": (
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'c', 'd') "
            "AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)"
        ),
        "sequences": "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'",
    }
    return {kind: list(connection.execute(text(query)).scalars()) for kind, query in rows.items()}


def test_there_is_a_single_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_stairway_every_revision_goes_up_down_and_up(empty_database: str) -> None:
    config = alembic_config()
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    engine = create_engine(_sync_url(empty_database))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        for revision in revisions:
            below = revision.down_revision or "base"
            assert isinstance(below, str), "the stairway walks a linear history"
            command.upgrade(config, revision.revision)
            command.downgrade(config, below)
            command.upgrade(config, revision.revision)
        command.downgrade(config, "base")
        assert _leftovers(connection) == {
            "tables": ["alembic_version"],
            "types": [],
            "sequences": [],
        }
    engine.dispose()


def test_models_and_migrations_agree(empty_database: str) -> None:
    migrate(make_settings(empty_database))
    engine = create_engine(_sync_url(empty_database))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert "notes" in inspect(connection).get_table_names()
    engine.dispose()


@pytest.mark.process
@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        ("database", 'database "no_such_database" does not exist: create it'),
        ("user", 'PostgreSQL has no user "no_such_user"'),
    ],
)
def test_migrate_fails_at_once_when_the_url_is_refused(
    empty_database: str, wrong: str, expected: str
) -> None:
    given = make_url(empty_database)
    changed = (
        given.set(database="no_such_database")
        if wrong == "database"
        else given.set(username="no_such_user")
    )
    url = changed.render_as_string(hide_password=False)
    env = service_env(DATABASE_URL=url, REDIS_URL=base_redis_url(), DB_WAIT_TIMEOUT="30")
    started = time.monotonic()
    result = run_admin(env, "migrate")
    seconds = time.monotonic() - started
    assert result.returncode == 78, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {expected}"), line
    assert seconds < 15, "a refusal is not worth waiting DB_WAIT_TIMEOUT for"


@pytest.mark.process
def test_migrate_output_is_the_migrations_not_alembic_set_up_chatter(empty_database: str) -> None:
    env = service_env(DATABASE_URL=empty_database, REDIS_URL=base_redis_url())
    result = run_admin(env, "migrate")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert events[-1] == "migrated"
    assert any(event.startswith("Running upgrade") for event in events), events
    chatter = ("setup plugin", "Context impl", "Will assume")
    assert [event for event in events if event.startswith(chatter)] == []
