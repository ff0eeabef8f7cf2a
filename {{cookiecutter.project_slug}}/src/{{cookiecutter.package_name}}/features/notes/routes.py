"""HTTP routes of the notes feature under /api/v1/notes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from asyncpg import Record
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from ...core.http.deps import DatabaseDep
from ...core.logs import get_logger
from . import service
from .cursor import decode_cursor, encode_cursor
from .ratelimit import limit_writes
from .schemas import PAGE_MAX, NoteIn, NoteOut, NotePage, NotePatch, NoteStatsOut
from .tasks import refresh_note_stats

router = APIRouter(prefix="/notes", tags=["notes"])
writes = [Depends(limit_writes)]
NoteId = Annotated[int, Path(ge=1, le=2**63 - 1)]
log = get_logger(__name__)


async def _refresh_stats(note_id: int) -> None:
    # The note is stored whatever happens here: if Redis fails us, the clock's backfill job
    # computes the stats later, so the write still succeeds. The send runs in a thread (it waits
    # on Redis, at most REDIS_TIMEOUT), which carries the request id along in its context.
    try:
        await asyncio.to_thread(refresh_note_stats.send, note_id)
    except Exception:  # any enqueue failure: log it and answer the write
        log.exception("enqueue failed", job=refresh_note_stats.actor_name, note_id=note_id)


def _found(note: Record | None) -> NoteOut:
    if note is None:
        raise HTTPException(status_code=404, detail="note not found")
    return NoteOut.model_validate(dict(note))


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=writes)
async def create_note(data: NoteIn, db: DatabaseDep) -> NoteOut:
    """Create a note; the worker computes its stats in the background."""
    note = await service.create_note(db, data)
    await _refresh_stats(note["id"])
    return NoteOut.model_validate(dict(note))


@router.get("")
async def list_notes(
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> NotePage:
    """List notes, newest first, one bounded page at a time; pass the page's `next` as
    `cursor` for the page after it (null on the last page)."""
    after = None if cursor is None else decode_cursor(cursor)
    notes = await service.list_notes(db, limit, after)
    following = encode_cursor(notes[-1]["id"]) if len(notes) == limit else None
    return NotePage.model_validate(
        {"items": [dict(note) for note in notes], "limit": limit, "next": following}
    )


@router.get("/{note_id}")
async def read_note(note_id: NoteId, db: DatabaseDep) -> NoteOut:
    """Read one note."""
    return _found(await service.get_note(db, note_id))


@router.get("/{note_id}/stats")
async def read_note_stats(note_id: NoteId, db: DatabaseDep) -> NoteStatsOut:
    """A note's word and character counts, once the worker has computed them (404 until then)."""
    stats = await service.get_note_stats(db, note_id)
    if stats is None:
        raise HTTPException(status_code=404, detail="no stats yet")
    return NoteStatsOut.model_validate(dict(stats))


@router.put("/{note_id}", dependencies=writes)
async def replace_note(note_id: NoteId, data: NoteIn, db: DatabaseDep) -> NoteOut:
    """Replace a note's title and body."""
    note = _found(await service.update_note(db, note_id, data))
    await _refresh_stats(note_id)
    return note


@router.patch("/{note_id}", dependencies=writes)
async def patch_note(note_id: NoteId, data: NotePatch, db: DatabaseDep) -> NoteOut:
    """Change some fields of a note."""
    note = _found(await service.update_note(db, note_id, data))
    await _refresh_stats(note_id)
    return note


@router.delete("/{note_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=writes)
async def delete_note(note_id: NoteId, db: DatabaseDep) -> None:
    """Delete a note."""
    if not await service.delete_note(db, note_id):
        raise HTTPException(status_code=404, detail="note not found")
