"""Alembic environment: runs on the connection the migrate command hands over (holding the lock).

`alembic revision --autogenerate` from a shell also works (`uv run ...-dev run alembic ...`
gives it the local database): then it connects with DATABASE_URL, numbers the new revision
after the head (0003 after 0002), and writes nothing when the tables did not change.
"""

from __future__ import annotations

import sys
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from {{ cookiecutter.package_name }}.core.db.base import Base
from {{ cookiecutter.package_name }}.core.db.engine import create_engine
from {{ cookiecutter.package_name }}.core.settings import load_settings
from {{ cookiecutter.package_name }}.features import MODELS  # noqa: F401  # every table on Base.metadata

target_metadata = Base.metadata


def _number_revisions(_context: Any, _revision: Any, directives: list[MigrationScript]) -> None:
    script = directives[0]
    autogenerate = getattr(context.config.cmd_opts, "autogenerate", False)
    if autogenerate and script.upgrade_ops is not None and script.upgrade_ops.is_empty():
        directives[:] = []
        print("the tables match the database: no revision written", file=sys.stderr)  # noqa: T201
        return
    head = ScriptDirectory.from_config(context.config).get_current_head() or "0"
    if head.isdigit():
        script.rev_id = f"{int(head) + 1:04d}"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
        process_revision_directives=_number_revisions,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_from_environment() -> None:
    engine = create_engine(load_settings(), process="admin")
    with engine.connect() as connection:
        _run(connection)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")

given = context.config.attributes.get("connection")
if given is None:
    _run_from_environment()
else:
    _run(given)
