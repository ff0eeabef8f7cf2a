"""Background jobs of the notes feature: derived data, computed idempotently by the worker.

These are plain functions; jobs/registry.py declares them as actors. They run in the worker's
threads, so they use the worker's blocking engine.
"""

from __future__ import annotations

import time

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.sql import func

from ..jobs import runtime
from ..logs import get_logger
from .models import Note, NoteStats

BACKFILL_BATCH = 500
MAX_WORK_SECONDS = 30.0
log = get_logger("notes.tasks")


def store_note_stats(engine: Engine, note_id: int) -> str:
    """Upsert a note's counts, keyed by its id: "stored", "unchanged" (a rerun) or "gone"."""
    with engine.begin() as connection:
        # FOR KEY SHARE: the note cannot be deleted under us, writers to it are not blocked.
        body = connection.execute(
            select(Note.body).where(Note.id == note_id).with_for_update(read=True, key_share=True)
        ).scalar_one_or_none()
        if body is None:
            return "gone"
        words, characters = len(body.split()), len(body)
        row = insert(NoteStats).values(note_id=note_id, words=words, characters=characters)
        upsert = row.on_conflict_do_update(
            index_elements=[NoteStats.note_id],
            set_={
                "words": row.excluded.words,
                "characters": row.excluded.characters,
                "computed_at": func.now(),
            },
            where=or_(
                NoteStats.words != row.excluded.words,
                NoteStats.characters != row.excluded.characters,
            ),
        ).returning(NoteStats.note_id)
        changed = connection.execute(upsert).first() is not None
    return "stored" if changed else "unchanged"


def refresh_note_stats(note_id: int, work_seconds: float = 0.0) -> None:
    """Job: compute a note's stats. Running it twice changes nothing the second time.

    `work_seconds` stands in for slow work: the process tests (and the exercise in
    docs/processes.md) kill a worker in the middle of it. The web never sends it.
    """
    if isinstance(note_id, bool) or not isinstance(note_id, int) or note_id < 1:
        raise ValueError("note_id must be a positive integer")
    if work_seconds > 0:
        time.sleep(min(float(work_seconds), MAX_WORK_SECONDS))
    outcome = store_note_stats(runtime.engine(), note_id)
    log.info("note stats", note_id=note_id, outcome=outcome)


def backfill(engine: Engine, batch: int = BACKFILL_BATCH) -> tuple[int, int]:
    """Compute stats for up to `batch` notes that have none; (stored, checked)."""
    with engine.connect() as connection:
        missing = connection.execute(
            select(Note.id)
            .outerjoin(NoteStats, NoteStats.note_id == Note.id)
            .where(NoteStats.note_id.is_(None))
            .order_by(Note.id)
            .limit(batch)
        ).scalars()
        note_ids = list(missing)
    outcomes = [store_note_stats(engine, note_id) for note_id in note_ids]
    return outcomes.count("stored"), len(note_ids)


def backfill_note_stats() -> None:
    """Job (scheduled): compute the stats of notes that have none, a batch at a time.

    Catches notes whose job was never enqueued, e.g. when Redis was down as they were created.
    """
    stored, checked = backfill(runtime.engine())
    log.info("note stats backfilled", stored=stored, checked=checked)
