"""Read and repair what Dramatiq keeps in Redis: queue depths and dead letters.

Dramatiq has no API to read queue depths or to list, requeue or delete dead letters (its
RedisBroker only moves a message there on a nack), so these read the keys it documents in its
Redis broker's source: `<namespace>:<queue>` (waiting ids), `.msgs` (bodies), `.DQ` (delayed)
and `.XQ` (dead, scored by time). tests/test_jobs.py runs each against a real broker.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from ..logs import get_logger
from .broker import ATTEMPT_OPTIONS, broker
from .schedule import Periodic

QUEUE = "default"  # Dramatiq's default queue: every job is sent to it, every worker takes from it
log = get_logger("jobs")


def queue_depths(broker: RedisBroker, queue: str = QUEUE) -> dict[str, int]:
    """Messages waiting, taken by a worker, delayed for a retry, and dead-lettered."""
    prefix = f"{broker.namespace}:{queue}"
    with broker.client.pipeline(transaction=False) as pipe:
        pipe.llen(prefix)
        pipe.hlen(f"{prefix}.msgs")
        pipe.hlen(f"{prefix}.DQ.msgs")
        pipe.zcard(f"{prefix}.XQ")
        waiting, stored, delayed, dead = (int(n) for n in pipe.execute())
    return {
        "waiting": waiting,
        "in_progress": max(0, stored - waiting),
        "delayed": delayed,
        "dead": dead,
    }


@dramatiq.actor(broker=broker, time_limit=30_000)
def report_queue_depths() -> None:
    """Log the queue depths as one event, for dashboards and alerts (scheduled below)."""
    log.info("queue depths", queue=QUEUE, **queue_depths(broker))


QUEUE_DEPTHS_SCHEDULE = Periodic("queue-depths", every=1, job=report_queue_depths)


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that failed its last retry, as Dramatiq keeps it (7 days by default)."""

    redis_id: str
    message: Message[Any]
    dead_since: datetime

    @property
    def reason(self) -> str:
        """Why its last attempt failed, when the worker recorded it."""
        options = self.message.options
        reason = options.get("dead_letter_reason")
        if not reason and isinstance(options.get("traceback"), str):
            reason = options["traceback"].strip().splitlines()[-1]
        return str(reason or "unknown")

    def describe(self) -> str:
        """One line for a human: id, call, attempts, when, request and reason."""
        message = self.message
        call = ", ".join(
            [repr(arg) for arg in message.args]
            + [f"{name}={value!r}" for name, value in message.kwargs.items()]
        )
        return (
            f"{message.message_id}  {message.actor_name}({call})"
            f"  attempts={message.options.get('retries', 0)}"
            f"  dead_since={self.dead_since.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
            f"  request_id={message.options.get('request_id', '-')}"
            f"  reason={self.reason}"
        )


def dead_letters(broker: RedisBroker, queue: str = QUEUE) -> list[DeadLetter]:
    """The dead-lettered messages of a queue, oldest first."""
    key = f"{broker.namespace}:{queue}.XQ"
    entries = cast(list[tuple[bytes, float]], broker.client.zrange(key, 0, -1, withscores=True))
    if not entries:
        return []
    bodies = broker.client.hmget(f"{key}.msgs", [redis_id for redis_id, _ in entries])
    letters = []
    for (redis_id, score), body in zip(entries, bodies, strict=True):
        if body is None:  # expired or removed since the ZRANGE
            continue
        since = datetime.fromtimestamp(score / 1000, tz=UTC)
        letters.append(DeadLetter(redis_id.decode(), Message.decode(body), since))
    return letters


def _forget(broker: RedisBroker, letters: list[DeadLetter], queue: str) -> None:
    key = f"{broker.namespace}:{queue}.XQ"
    ids = [letter.redis_id for letter in letters]
    if ids:
        with broker.client.pipeline(transaction=True) as pipe:
            pipe.zrem(key, *ids)
            pipe.hdel(f"{key}.msgs", *ids)
            pipe.execute()


def requeue(broker: RedisBroker, letters: list[DeadLetter], queue: str = QUEUE) -> int:
    """Enqueue dead letters again with a fresh retry budget, then drop them from the DLQ.

    Enqueue first, forget second: a crash in between leaves a duplicate, never a loss (jobs are
    idempotent). The message keeps its id and request id.
    """
    for letter in letters:
        options = {
            name: value
            for name, value in letter.message.options.items()
            if name not in ATTEMPT_OPTIONS
        }
        broker.enqueue(dataclasses.replace(letter.message, options=options))
    _forget(broker, letters, queue)
    return len(letters)


def purge(broker: RedisBroker, letters: list[DeadLetter], queue: str = QUEUE) -> int:
    """Delete these dead letters for good."""
    _forget(broker, letters, queue)
    return len(letters)
