"""Text PostgreSQL can store: a string type for request bodies, refused with a 422 otherwise."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _storable(value: str) -> str:
    # PostgreSQL's text holds neither U+0000 nor unpaired surrogates (which JSON's \ud800 escape
    # can carry); refusing them here turns what would be a driver error into a 422.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000): PostgreSQL text cannot store it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds an unpaired surrogate)") from None
    return value


StoredText = Annotated[str, AfterValidator(_storable)]
"""A text column's value; give it the column's length too: `Field(max_length=n)` for `String(n)`."""
