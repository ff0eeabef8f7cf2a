"""Jobs in-process: what the web enqueues, idempotent effects, the clock's lock, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from typing import cast

import httpx
import psycopg
import pytest
import structlog
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from httpx import AsyncClient

from {{ cookiecutter.package_name }}.core.db.engine import create_engine
from {{ cookiecutter.package_name }}.core.jobs.queues import (
    QUEUE_DEPTHS_SCHEDULE,
    dead_letters,
    purge,
    queue_depths,
    requeue,
)
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.features import SCHEDULE
from {{ cookiecutter.package_name }}.features.notes.tasks import (
    BACKFILL_SCHEDULE,
    backfill,
    refresh_note_stats,
    store_note_stats,
)
from {{ cookiecutter.package_name }}.processes.clock import Clock

from support import Service, auth, free_port, insert_note, service_env

NOTES = "/api/v1/notes"


def _waiting(broker: RedisBroker) -> list[Message[object]]:
    client = broker.client
    ids = cast(list[bytes], client.lrange(f"{broker.namespace}:default", 0, -1))
    bodies = cast(list[bytes], client.hmget(f"{broker.namespace}:default.msgs", ids) if ids else [])
    return [Message.decode(body) for body in bodies]


async def test_writing_a_note_enqueues_its_stats_job_with_the_request_id(
    client: AsyncClient, broker: RedisBroker
) -> None:
    created = await client.post(
        NOTES, json={"title": "t", "body": "a b"}, headers={"x-request-id": "enqueue-req-0001"}
    )
    note_id = created.json()["id"]
    await client.patch(f"{NOTES}/{note_id}", json={"body": "a b c"})
    messages = _waiting(broker)
    assert [(m.actor_name, m.args) for m in messages] == [
        ("refresh_note_stats", (note_id,)),
        ("refresh_note_stats", (note_id,)),
    ]
    assert messages[0].options["request_id"] == "enqueue-req-0001"
    assert messages[1].options["request_id"] != "enqueue-req-0001"  # each request its own id
    assert (await client.get(f"{NOTES}/{note_id}/stats")).status_code == 404  # no worker ran


def test_a_note_is_stored_even_when_its_job_cannot_be_enqueued(
    database_url: str, committed: psycopg.Connection
) -> None:
    port = free_port()
    down = f"redis://127.0.0.1:{free_port()}/0"
    headers = auth(database_url)
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=down, PORT=str(port), RATE_LIMIT_PER_MINUTE="0"
    )
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        created = httpx.post(
            f"http://127.0.0.1:{port}{NOTES}", json={"title": "kept"}, headers=headers, timeout=30
        )
    finally:
        web.stop()
    assert created.status_code == 201
    assert web.events("enqueue failed", job="refresh_note_stats")
    stored = committed.execute("SELECT title FROM notes WHERE id = %s", (created.json()["id"],))
    assert stored.fetchall() == [("kept",)]


def test_the_stats_job_is_idempotent(settings: Settings, committed: psycopg.Connection) -> None:
    engine = create_engine(settings, process="worker")
    try:
        note_id = insert_note(committed, "one two three")
        assert store_note_stats(engine, note_id) == "stored"
        first = committed.execute("SELECT * FROM note_stats").fetchall()
        assert store_note_stats(engine, note_id) == "unchanged"
        assert committed.execute("SELECT * FROM note_stats").fetchall() == first
        committed.execute("UPDATE notes SET body = 'four' WHERE id = %s", (note_id,))
        assert store_note_stats(engine, note_id) == "stored"
        committed.execute("DELETE FROM notes WHERE id = %s", (note_id,))
        assert store_note_stats(engine, note_id) == "gone"
        assert committed.execute("SELECT count(*) FROM note_stats").fetchone() == (0,)
    finally:
        engine.dispose()


def test_backfill_computes_only_missing_stats(
    settings: Settings, committed: psycopg.Connection
) -> None:
    engine = create_engine(settings, process="worker")
    try:
        done, missing = insert_note(committed), insert_note(committed, "x y")
        store_note_stats(engine, done)
        assert backfill(engine) == (1, 1)
        assert backfill(engine) == (0, 0)
        rows = committed.execute("SELECT note_id, words FROM note_stats ORDER BY note_id")
        assert rows.fetchall() == [(done, 3), (missing, 2)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("poison", ["not-a-number", 0, True])
def test_malformed_job_arguments_are_refused(poison: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        refresh_note_stats(poison)  # type: ignore[arg-type]


def test_a_requeued_dead_letter_starts_with_a_fresh_retry_budget(broker: RedisBroker) -> None:
    actor = refresh_note_stats
    with structlog.contextvars.bound_contextvars(request_id="dead-letter-0001"):
        sent = actor.send_with_options(args=(1,), retries=2, traceback="ValueError: boom")
    # What a worker's nack does to a message that failed its last retry:
    broker.do_fetch("default", 1)
    broker.do_nack("default", sent.options["redis_message_id"])
    (letter,) = dead_letters(broker)
    assert letter.message.message_id == sent.message_id
    assert letter.reason == "ValueError: boom"
    assert "request_id=dead-letter-0001" in letter.describe()
    assert requeue(broker, [letter]) == 1
    assert dead_letters(broker) == []
    (again,) = _waiting(broker)
    assert again.message_id == sent.message_id
    assert again.options["request_id"] == "dead-letter-0001"
    assert "retries" not in again.options
    assert queue_depths(broker) == {"waiting": 1, "in_progress": 0, "delayed": 0, "dead": 0}


def test_purged_dead_letters_are_gone_for_good(broker: RedisBroker) -> None:
    sent = [refresh_note_stats.send(note_id) for note_id in (1, 2)]
    for message in sent:
        broker.do_fetch("default", 1)
        broker.do_nack("default", message.options["redis_message_id"])
    # Letters that died in the same millisecond come back in any order: pick by id.
    (first,) = [x for x in dead_letters(broker) if x.message.message_id == sent[0].message_id]
    assert purge(broker, [first]) == 1
    assert [letter.message.message_id for letter in dead_letters(broker)] == [sent[1].message_id]
    assert queue_depths(broker)["dead"] == 1
    assert _waiting(broker) == []


def test_two_clocks_firing_the_same_tick_enqueue_it_once(broker: RedisBroker) -> None:
    entries = [QUEUE_DEPTHS_SCHEDULE, BACKFILL_SCHEDULE]
    first, second = Clock(broker, 60, entries), Clock(broker, 60, entries)
    tick = 10 * 12345  # due for both entries
    assert first.fire(tick) == 2
    assert second.fire(tick) == 0
    assert second.fire(tick + 1) == 1  # only the every-tick entry is due
    scheduled = sorted(message.options["scheduled"] for message in _waiting(broker))
    assert scheduled == ["note-stats-backfill:123450", "queue-depths:123450", "queue-depths:123451"]


# What web start-up leaves out: the migrations and the blocking driver (web runs the same
# SQLAlchemy Core statements on asyncpg; only the worker and the release use psycopg).
LEFT_OUT_OF_WEB = ("alembic", "psycopg")


def test_web_loads_neither_the_migrations_nor_the_blocking_driver(database_url: str) -> None:
    code = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.processes.web import app\n"
        f"left_out = set({LEFT_OUT_OF_WEB!r})\n"
        "app()\n"
        "print(sorted(set(n.split('.')[0] for n in sys.modules) & left_out))\n"
    )
    env = service_env(DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.strip() == "[]"


def test_jobs_and_schedule_entries_are_declared_by_the_features(broker: RedisBroker) -> None:
    assert set(broker.get_declared_actors()) >= {
        "report_queue_depths",
        "refresh_note_stats",
        "backfill_note_stats",
    }
    assert {entry.name: entry.job.actor_name for entry in SCHEDULE}.items() >= {
        "queue-depths": "report_queue_depths",
        "note-stats-backfill": "backfill_note_stats",
    }.items()
