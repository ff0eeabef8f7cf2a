"""Request and response bodies of the notes API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ...core.db.text import StoredText

TITLE_MAX = 200
BODY_MAX = 10_000
PAGE_MAX = 100


class NoteIn(BaseModel):
    """A note as a client creates or replaces it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: StoredText = Field(min_length=1, max_length=TITLE_MAX)
    body: StoredText = Field(default="", max_length=BODY_MAX)


class NotePatch(BaseModel):
    """A partial update: only the fields sent change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: StoredText | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    body: StoredText | None = Field(default=None, max_length=BODY_MAX)


class NoteOut(BaseModel):
    """A stored note."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


class NotePage(BaseModel):
    """One page of notes, newest first."""

    items: list[NoteOut]
    limit: int
    next: str | None = Field(description="cursor of the page after this one; null on the last")


class NoteStatsOut(BaseModel):
    """Counts the worker derived from a note's body."""

    model_config = ConfigDict(from_attributes=True)

    note_id: int
    words: int
    characters: int
    computed_at: datetime
