"""Jobs and schedule entries of the notes feature: derived data, computed idempotently.

Declared with Dramatiq's own decorator on the service's broker (core/jobs/broker.py). The worker
runs them in its threads, on the process's blocking engine (core/db/engine.py); the web sends
them with `refresh_note_stats.send(note_id)`, off its event loop.
"""

from __future__ import annotations

import time

import dramatiq
from sqlalchemy.engine import Engine

from ...core.db.engine import worker_engine
from ...core.jobs.broker import broker
from ...core.jobs.schedule import Periodic
from ...core.logs import get_logger
from . import service

BACKFILL_BATCH = 500
MAX_WORK_SECONDS = 30.0
log = get_logger("notes.tasks")


def store_note_stats(engine: Engine, note_id: int) -> str:
    """Compute and store a note's stats in a transaction of its own (see service.py)."""
    with engine.begin() as connection:
        return service.store_note_stats(connection, note_id)


@dramatiq.actor(broker=broker, time_limit=60_000)
def refresh_note_stats(note_id: int, work_seconds: float = 0.0) -> None:
    """Compute a note's stats. Running it twice changes nothing the second time.

    `work_seconds` stands in for slow work: the process tests (and the exercise in
    docs/processes.md) kill a worker in the middle of it. The web never sends it.
    """
    if isinstance(note_id, bool) or not isinstance(note_id, int) or note_id < 1:
        raise ValueError("note_id must be a positive integer")
    if work_seconds > 0:
        time.sleep(min(float(work_seconds), MAX_WORK_SECONDS))
    outcome = store_note_stats(worker_engine(), note_id)
    log.info("note stats", note_id=note_id, outcome=outcome)


def backfill(engine: Engine, batch: int = BACKFILL_BATCH) -> tuple[int, int]:
    """Compute stats for up to `batch` notes that have none; (stored, checked)."""
    with engine.connect() as connection:
        note_ids = service.notes_without_stats(connection, batch)
    outcomes = [store_note_stats(engine, note_id) for note_id in note_ids]
    return outcomes.count("stored"), len(note_ids)


@dramatiq.actor(broker=broker, time_limit=300_000)
def backfill_note_stats() -> None:
    """Compute the stats of notes that have none, a batch at a time (scheduled below).

    Catches notes whose job was never enqueued, e.g. when Redis was down as they were created.
    """
    stored, checked = backfill(worker_engine())
    log.info("note stats backfilled", stored=stored, checked=checked)


BACKFILL_SCHEDULE = Periodic("note-stats-backfill", every=10, job=backfill_note_stats)
SCHEDULE = (BACKFILL_SCHEDULE,)
