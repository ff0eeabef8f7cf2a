"""Opaque page cursors: the id of the last note a page held, so the next page starts below it."""

from __future__ import annotations

import base64

from fastapi import HTTPException

_PREFIX = "n:"


def encode_cursor(last_id: int) -> str:
    """The cursor of the page that follows the note with this id."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor carries; 422 for anything this module did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text.startswith(_PREFIX) and text[len(_PREFIX) :].isdigit():
            last_id = int(text[len(_PREFIX) :])
            if 1 <= last_id < 2**63:
                return last_id
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        pass
    raise HTTPException(status_code=422, detail="invalid cursor")
