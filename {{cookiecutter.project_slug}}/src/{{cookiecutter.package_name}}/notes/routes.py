"""HTTP routes of the notes feature under /api/v1/notes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from ..api.deps import SessionDep
from . import service
from .models import Note
from .ratelimit import limit_writes
from .schemas import PAGE_MAX, NoteIn, NoteOut, NotePage, NotePatch

router = APIRouter(prefix="/notes", tags=["notes"])
writes = [Depends(limit_writes)]
NoteId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _existing(session: SessionDep, note_id: NoteId) -> Note:
    note = await service.get_note(session, note_id)
    if note is None:
        raise HTTPException(status_code=404, detail="note not found")
    return note


ExistingNote = Annotated[Note, Depends(_existing)]


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=writes)
async def create_note(data: NoteIn, session: SessionDep) -> NoteOut:
    """Create a note."""
    return NoteOut.model_validate(await service.create_note(session, data))


@router.get("")
async def list_notes(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> NotePage:
    """List notes, newest first, one bounded page at a time."""
    notes = await service.list_notes(session, limit, offset)
    return NotePage(items=[NoteOut.model_validate(n) for n in notes], limit=limit, offset=offset)


@router.get("/{note_id}")
async def read_note(note: ExistingNote) -> NoteOut:
    """Read one note."""
    return NoteOut.model_validate(note)


@router.put("/{note_id}", dependencies=writes)
async def replace_note(note: ExistingNote, data: NoteIn, session: SessionDep) -> NoteOut:
    """Replace a note's title and body."""
    return NoteOut.model_validate(await service.update_note(session, note, data))


@router.patch("/{note_id}", dependencies=writes)
async def patch_note(note: ExistingNote, data: NotePatch, session: SessionDep) -> NoteOut:
    """Change some fields of a note."""
    return NoteOut.model_validate(await service.update_note(session, note, data))


@router.delete("/{note_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=writes)
async def delete_note(note_id: NoteId, session: SessionDep) -> None:
    """Delete a note."""
    if not await service.delete_note(session, note_id):
        raise HTTPException(status_code=404, detail="note not found")
