"""Every job of the service, with its options; declared on a broker by name of its function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dramatiq
from dramatiq import Broker

from ..notes.tasks import backfill_note_stats, refresh_note_stats
from .broker import QUEUE
from .queues import report_queue_depths


@dataclass(frozen=True, slots=True)
class Job:
    """A plain function the worker runs, and how long one run may take (seconds)."""

    fn: Callable[..., None]
    time_limit: float


# Add a job here and it can be enqueued (JobSender.enqueue), scheduled (clock.SCHEDULE) and run.
JOBS: tuple[Job, ...] = (
    Job(refresh_note_stats, time_limit=60),
    Job(backfill_note_stats, time_limit=300),
    Job(report_queue_depths, time_limit=30),
)


def declare_actors(broker: Broker) -> None:
    """Declare every job as an actor named after its function, on the given broker."""
    for job in JOBS:
        dramatiq.actor(
            broker=broker,
            actor_name=job.fn.__name__,
            queue_name=QUEUE,
            time_limit=round(job.time_limit * 1000),
        )(job.fn)
