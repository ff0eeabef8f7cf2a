"""SQLAlchemy Core statements compiled once, for the asyncpg pool to run (core/db/pool.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it bare


class Compiled:
    """A statement built from the table declarations, as asyncpg takes it: SQL text with $n
    placeholders, the order in which its named parameters fill them, and SQLAlchemy's
    conversion of each parameter where its type has one.

    Rows come back as asyncpg decodes them (numbers, text, timestamps, booleans, uuid, bytea and
    arrays of these): a selected column whose type needs SQLAlchemy's own conversion of results
    is refused here, at import, rather than returned undecoded.
    """

    __slots__ = ("_converters", "names", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        converters: dict[str, Callable[[Any], Any]] = {}
        for name in self.names:
            convert = compiled.binds[name].type.bind_processor(_DIALECT)
            if convert is not None:
                converters[name] = convert
        self._converters = converters
        for column in getattr(statement, "selected_columns", None) or ():
            if column.type.result_processor(_DIALECT, None) is not None:
                raise TypeError(f"column {column.name!r} needs a conversion asyncpg does not make")

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for these named parameters (a missing one is a KeyError)."""
        if not self._converters:
            return [params[name] for name in self.names]
        convert = self._converters
        return [
            convert[name](params[name]) if name in convert else params[name] for name in self.names
        ]
