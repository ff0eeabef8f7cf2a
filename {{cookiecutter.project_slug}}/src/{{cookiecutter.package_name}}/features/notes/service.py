"""Notes use cases, free of HTTP: every read and write of the notes tables, for the routes and
admin commands (async, on the asyncpg pool) and for the jobs (blocking, on the worker's engine).

Each statement is built from the declarations in models.py, so a column added there reaches
every query; NoteIn's fields are the ones a client writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import cast

from asyncpg import Record
from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.engine import Connection

from ...core.db.compiled import Compiled
from ...core.db.pool import Database
from .models import Note, NoteStats
from .schemas import NoteIn, NotePatch

# The tables the models map (a declarative class maps exactly one Table).
notes = cast(Table, Note.__table__)
stats = cast(Table, NoteStats.__table__)
_WRITABLE = tuple(NoteIn.model_fields)

_INSERT = Compiled(
    insert(notes).values({name: bindparam(name) for name in _WRITABLE}).returning(notes)
)
_GET = Compiled(select(notes).where(notes.c.id == bindparam("note_id")))
# Newest first, by id: a page after a cursor starts below the last id seen, so it costs an
# index range scan however deep it is.
_FIRST_PAGE = Compiled(select(notes).order_by(notes.c.id.desc()).limit(bindparam("limit")))
_PAGE_AFTER = Compiled(
    select(notes)
    .where(notes.c.id < bindparam("after"))
    .order_by(notes.c.id.desc())
    .limit(bindparam("limit"))
)
_DELETE = Compiled(delete(notes).where(notes.c.id == bindparam("note_id")).returning(notes.c.id))
_STATS = Compiled(select(stats).where(stats.c.note_id == bindparam("note_id")))
_COUNT = Compiled(select(func.count()).select_from(notes))


@cache
def _update(fields: frozenset[str]) -> Compiled:
    """UPDATE of these fields (updated_at follows, as the model declares); one per field set."""
    return Compiled(
        update(notes)
        .where(notes.c.id == bindparam("note_id"))
        .values({name: bindparam(name) for name in sorted(fields)})
        .returning(notes)
    )


async def create_note(db: Database, data: NoteIn) -> Record:
    """Store a new note and return it with its id and timestamps."""
    note = await db.fetchrow(_INSERT, **data.model_dump())
    if note is None:  # INSERT ... RETURNING always returns the row it inserted
        raise RuntimeError("the insert returned no row")
    return note


async def create_notes(db: Database, new: Sequence[NoteIn]) -> None:
    """Store many notes in one transaction."""
    await db.executemany(_INSERT, [data.model_dump() for data in new])


async def get_note(db: Database, note_id: int) -> Record | None:
    """The note with that id, if any."""
    return await db.fetchrow(_GET, note_id=note_id)


async def get_note_stats(db: Database, note_id: int) -> Record | None:
    """The stats the worker computed for a note, if it has yet."""
    return await db.fetchrow(_STATS, note_id=note_id)


def page_statement(after: int | None) -> Compiled:
    """The first page's statement, or that of the page after the note with id `after`."""
    return _FIRST_PAGE if after is None else _PAGE_AFTER


async def list_notes(db: Database, limit: int, after: int | None = None) -> list[Record]:
    """A page of notes, newest first; `after` is the id of the last note of the page before."""
    params = {"limit": limit} if after is None else {"limit": limit, "after": after}
    return await db.fetch(page_statement(after), **params)


async def update_note(db: Database, note_id: int, data: NoteIn | NotePatch) -> Record | None:
    """Apply the fields that were sent (a PATCH's nulls keep their value); None when there is
    no such note."""
    values = data.model_dump(exclude_none=True)
    if not values:
        return await get_note(db, note_id)
    return await db.fetchrow(_update(frozenset(values)), note_id=note_id, **values)


async def delete_note(db: Database, note_id: int) -> bool:
    """Delete a note; False when there was none."""
    return await db.fetchval(_DELETE, note_id=note_id) is not None


async def count_notes(db: Database) -> int:
    """How many notes are stored."""
    return int(await db.fetchval(_COUNT))


def store_note_stats(connection: Connection, note_id: int) -> str:
    """Upsert a note's counts, keyed by its id: "stored", "unchanged" (a rerun) or "gone".

    Runs in the caller's transaction (the job's `engine.begin()`).
    """
    # FOR KEY SHARE: the note cannot be deleted under us, writers to it are not blocked.
    body = connection.execute(
        select(notes.c.body).where(notes.c.id == note_id).with_for_update(read=True, key_share=True)
    ).scalar_one_or_none()
    if body is None:
        return "gone"
    row = upsert(stats).values(note_id=note_id, words=len(body.split()), characters=len(body))
    statement = row.on_conflict_do_update(
        index_elements=[stats.c.note_id],
        set_={
            "words": row.excluded.words,
            "characters": row.excluded.characters,
            "computed_at": func.now(),
        },
        where=or_(
            stats.c.words != row.excluded.words,
            stats.c.characters != row.excluded.characters,
        ),
    ).returning(stats.c.note_id)
    changed = connection.execute(statement).first() is not None
    return "stored" if changed else "unchanged"


def notes_without_stats(connection: Connection, limit: int) -> list[int]:
    """Ids of up to `limit` notes that have no stats yet, oldest first."""
    missing = connection.execute(
        select(notes.c.id)
        .outerjoin(stats, stats.c.note_id == notes.c.id)
        .where(stats.c.note_id.is_(None))
        .order_by(notes.c.id)
        .limit(limit)
    ).scalars()
    return list(missing)
