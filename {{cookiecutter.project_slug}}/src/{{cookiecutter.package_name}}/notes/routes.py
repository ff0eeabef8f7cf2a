"""HTTP routes of the notes feature under /api/v1/notes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from ..api.deps import JobsDep, SessionDep
from ..jobs.sender import JobSender
from ..logs import get_logger
from . import service
from .models import Note
from .ratelimit import limit_writes
from .schemas import PAGE_MAX, NoteIn, NoteOut, NotePage, NotePatch, NoteStatsOut
from .tasks import refresh_note_stats

router = APIRouter(prefix="/notes", tags=["notes"])
writes = [Depends(limit_writes)]
NoteId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _existing(session: SessionDep, note_id: NoteId) -> Note:
    note = await service.get_note(session, note_id)
    if note is None:
        raise HTTPException(status_code=404, detail="note not found")
    return note


ExistingNote = Annotated[Note, Depends(_existing)]
log = get_logger(__name__)


async def _refresh_stats(jobs: JobSender, note_id: int) -> None:
    # The note is stored whatever happens here: if Redis fails us, the clock's backfill job
    # computes the stats later, so the write still succeeds.
    try:
        await jobs.enqueue(refresh_note_stats, note_id)
    except Exception:  # any enqueue failure: log it and answer the write
        log.exception("enqueue failed", job="refresh_note_stats", note_id=note_id)


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=writes)
async def create_note(data: NoteIn, session: SessionDep, jobs: JobsDep) -> NoteOut:
    """Create a note; the worker computes its stats in the background."""
    note = await service.create_note(session, data)
    await _refresh_stats(jobs, note.id)
    return NoteOut.model_validate(note)


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


@router.get("/{note_id}/stats")
async def read_note_stats(note_id: NoteId, session: SessionDep) -> NoteStatsOut:
    """A note's word and character counts, once the worker has computed them (404 until then)."""
    stats = await service.get_note_stats(session, note_id)
    if stats is None:
        raise HTTPException(status_code=404, detail="no stats yet")
    return NoteStatsOut.model_validate(stats)


@router.put("/{note_id}", dependencies=writes)
async def replace_note(
    note: ExistingNote, data: NoteIn, session: SessionDep, jobs: JobsDep
) -> NoteOut:
    """Replace a note's title and body."""
    updated = await service.update_note(session, note, data)
    await _refresh_stats(jobs, updated.id)
    return NoteOut.model_validate(updated)


@router.patch("/{note_id}", dependencies=writes)
async def patch_note(
    note: ExistingNote, data: NotePatch, session: SessionDep, jobs: JobsDep
) -> NoteOut:
    """Change some fields of a note."""
    updated = await service.update_note(session, note, data)
    await _refresh_stats(jobs, updated.id)
    return NoteOut.model_validate(updated)


@router.delete("/{note_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=writes)
async def delete_note(note_id: NoteId, session: SessionDep) -> None:
    """Delete a note."""
    if not await service.delete_note(session, note_id):
        raise HTTPException(status_code=404, detail="note not found")
