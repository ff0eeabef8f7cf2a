"""Integers PostgreSQL can store: one type per integer column, a 422 outside the column's range."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A request field takes its column's range, so no value that validates overflows the column
# (PostgreSQL would refuse it with an error, answered as a 500).
Int16 = Annotated[int, Field(ge=-(2**15), le=2**15 - 1)]
"""A `SmallInteger` column's value."""

Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
"""An `Integer` column's value."""

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""A `BigInteger` column's value."""
