"""SQLAlchemy Core statements compiled once, for the asyncpg pool to run (db/pool.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it bare


class Compiled:
    """A statement built from the table declarations, as asyncpg takes it: SQL text with $n
    placeholders, and the order in which its named parameters fill them.

    asyncpg decodes PostgreSQL's types itself (numbers, text, timestamps, booleans, uuid, bytea,
    arrays of these); a column type that needs SQLAlchemy's own conversion is refused here, at
    import time, rather than returned undecoded.
    """

    __slots__ = ("names", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        for name, bind in compiled.binds.items():
            if bind.type.bind_processor(_DIALECT) is not None:
                raise TypeError(f"parameter {name!r} needs a conversion asyncpg does not make")
        for column in getattr(statement, "selected_columns", None) or ():
            if column.type.result_processor(_DIALECT, None) is not None:
                raise TypeError(f"column {column.name!r} needs a conversion asyncpg does not make")

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for these named parameters (a missing one is a KeyError)."""
        return [params[name] for name in self.names]
