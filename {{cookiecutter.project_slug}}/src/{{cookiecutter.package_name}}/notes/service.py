"""Notes use cases, free of HTTP: the routes and admin commands call these."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Note, NoteStats
from .schemas import NoteIn, NotePatch


async def create_note(session: AsyncSession, data: NoteIn) -> Note:
    """Store a new note and return it with its id and timestamps."""
    note = Note(title=data.title, body=data.body)
    session.add(note)
    await session.commit()
    await session.refresh(note)
    return note


async def get_note(session: AsyncSession, note_id: int) -> Note | None:
    """The note with that id, if any."""
    return await session.get(Note, note_id)


async def get_note_stats(session: AsyncSession, note_id: int) -> NoteStats | None:
    """The stats the worker computed for a note, if it has yet."""
    return await session.get(NoteStats, note_id)


async def list_notes(session: AsyncSession, limit: int, offset: int) -> list[Note]:
    """A page of notes, newest first."""
    query = select(Note).order_by(Note.id.desc()).limit(limit).offset(offset)
    return list((await session.scalars(query)).all())


async def update_note(session: AsyncSession, note: Note, data: NoteIn | NotePatch) -> Note:
    """Apply the fields that were sent."""
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(note, field, value)
    await session.commit()
    await session.refresh(note)
    return note


async def delete_note(session: AsyncSession, note_id: int) -> bool:
    """Delete a note; False when there was none."""
    result = await session.execute(delete(Note).where(Note.id == note_id).returning(Note.id))
    await session.commit()
    return result.scalar_one_or_none() is not None


async def count_notes(session: AsyncSession) -> int:
    """How many notes are stored."""
    return int(await session.scalar(select(func.count()).select_from(Note)) or 0)
