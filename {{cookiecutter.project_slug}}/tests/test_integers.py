"""The request integer types take exactly their columns' ranges, as PostgreSQL has them."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from pydantic import TypeAdapter, ValidationError

from {{ cookiecutter.package_name }}.core.db.integers import Int16, Int32, Int64


@pytest.mark.parametrize(
    ("bounded", "column"), [(Int16, "smallint"), (Int32, "integer"), (Int64, "bigint")]
)
def test_an_integer_type_accepts_what_its_column_stores_and_nothing_more(
    database_url: str, bounded: Any, column: str
) -> None:
    adapter: TypeAdapter[int] = TypeAdapter(bounded)
    bounds = adapter.json_schema()
    lowest, highest = bounds["minimum"], bounds["maximum"]
    with psycopg.connect(database_url, autocommit=True) as connection:
        for edge in (lowest, highest):
            stored = connection.execute(f"SELECT %s::{column}", [adapter.validate_python(edge)])
            assert stored.fetchone() == (edge,)
        for beyond in (lowest - 1, highest + 1):
            with pytest.raises(ValidationError):
                adapter.validate_python(beyond)
            with pytest.raises(psycopg.errors.NumericValueOutOfRange):
                connection.execute(f"SELECT %s::{column}", [beyond])
