"""Notes use cases, free of HTTP: the routes and admin commands call these.

Plain SQL on the web's asyncpg pool (db/pool.py). The tables are declared in models.py, which
the migrations follow; the API tests run every query here against the migrated schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncpg import Record

from ..db.pool import Database
from .schemas import NoteIn, NotePatch

# Each query names its columns, in the order NoteOut lists them.
_INSERT = """
INSERT INTO notes (title, body) VALUES ($1, $2)
RETURNING id, title, body, created_at, updated_at
"""
_INSERT_MANY = """
INSERT INTO notes (title, body) SELECT * FROM unnest($1::text[], $2::text[])
"""
_GET = "SELECT id, title, body, created_at, updated_at FROM notes WHERE id = $1"
_PAGE = """
SELECT id, title, body, created_at, updated_at FROM notes ORDER BY id DESC LIMIT $1 OFFSET $2
"""
# A field left out (None) keeps its value; updated_at moves only when something was sent.
_UPDATE = """
UPDATE notes SET
    title = COALESCE($2, title),
    body = COALESCE($3, body),
    updated_at = CASE WHEN $2 IS NULL AND $3 IS NULL THEN updated_at ELSE now() END
WHERE id = $1
RETURNING id, title, body, created_at, updated_at
"""
_DELETE = "DELETE FROM notes WHERE id = $1 RETURNING id"
_STATS = "SELECT note_id, words, characters, computed_at FROM note_stats WHERE note_id = $1"
_COUNT = "SELECT count(*) FROM notes"


async def create_note(db: Database, data: NoteIn) -> Record:
    """Store a new note and return it with its id and timestamps."""
    note = await db.fetchrow(_INSERT, data.title, data.body)
    if note is None:  # INSERT ... RETURNING always returns the row it inserted
        raise RuntimeError("the insert returned no row")
    return note


async def create_notes(db: Database, notes: Sequence[NoteIn]) -> None:
    """Store many notes in one statement."""
    async with db.connection() as connection:
        await connection.execute(
            _INSERT_MANY, [note.title for note in notes], [note.body for note in notes]
        )


async def get_note(db: Database, note_id: int) -> Record | None:
    """The note with that id, if any."""
    return await db.fetchrow(_GET, note_id)


async def get_note_stats(db: Database, note_id: int) -> Record | None:
    """The stats the worker computed for a note, if it has yet."""
    return await db.fetchrow(_STATS, note_id)


async def list_notes(db: Database, limit: int, offset: int) -> list[Record]:
    """A page of notes, newest first."""
    return await db.fetch(_PAGE, limit, offset)


async def update_note(db: Database, note_id: int, data: NoteIn | NotePatch) -> Record | None:
    """Apply the fields that were sent; None when there is no such note."""
    return await db.fetchrow(_UPDATE, note_id, data.title, data.body)


async def delete_note(db: Database, note_id: int) -> bool:
    """Delete a note; False when there was none."""
    return await db.fetchval(_DELETE, note_id) is not None


async def count_notes(db: Database) -> int:
    """How many notes are stored."""
    return int(await db.fetchval(_COUNT))
