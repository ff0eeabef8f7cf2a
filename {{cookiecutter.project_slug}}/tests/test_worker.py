"""The worker as a real process: jobs done, stopped gracefully, redelivered after a crash."""

from __future__ import annotations

import signal
import time

import httpx
import psycopg
import pytest
import structlog
from dramatiq.brokers.redis import RedisBroker

from {{ cookiecutter.package_name }}.core.jobs.queues import dead_letters, queue_depths

from support import (
    FAST_JOBS,
    Service,
    auth,
    base_redis_url,
    free_port,
    insert_note,
    run_admin,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.process


def _env(database_url: str, **overrides: str) -> dict[str, str]:
    return service_env(
        DATABASE_URL=database_url, REDIS_URL=base_redis_url(), **(FAST_JOBS | overrides)
    )


def _stats_rows(connection: psycopg.Connection, note_id: int) -> int:
    query = "SELECT count(*) FROM note_stats WHERE note_id = %s"
    (count,) = connection.execute(query, (note_id,)).fetchone() or (0,)
    return int(count)


@pytest.mark.usefixtures("redis_sync")
def test_a_note_written_over_http_gets_its_stats_logged_with_the_request_id(
    database_url: str, committed: psycopg.Connection
) -> None:
    port = free_port()
    env = _env(database_url, PORT=str(port))
    worker = Service("worker", env)
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        worker.wait_for("worker started")
        note = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/notes",
            json={"title": "t", "body": "four words right here"},
            headers={"x-request-id": "worker-req-0001", **auth(database_url)},
        ).json()
        url = f"http://127.0.0.1:{port}/api/v1/notes/{note['id']}/stats"
        headers = auth(database_url)
        stats = wait_until(
            lambda: (r := httpx.get(url, headers=headers)).status_code == 200 and r.json(), 10
        )
        assert stats["words"] == 4
        done = worker.wait_for("job done", job="refresh_note_stats")
    finally:
        web.signal(signal.SIGTERM)
        worker.signal(signal.SIGTERM)
        codes = [web.wait(timeout=10), worker.wait(timeout=10)]
    assert codes == [0, 0]
    assert done["request_id"] == "worker-req-0001"
    (effect,) = worker.events("note stats", note_id=note["id"])
    assert effect["request_id"] == "worker-req-0001"
    assert effect["message_id"] == done["message_id"]
    assert effect["outcome"] == "stored"


def test_sigterm_lets_short_jobs_finish_hands_long_ones_back_and_exits_0(
    database_url: str, broker: RedisBroker, committed: psycopg.Connection
) -> None:
    short_note, long_note = insert_note(committed), insert_note(committed)
    worker = Service("worker", _env(database_url, WORKER_SHUTDOWN_TIMEOUT="1"))
    try:
        worker.wait_for("worker started")
        actor = broker.get_actor("refresh_note_stats")
        short = actor.send(short_note, 0.5)
        long = actor.send(long_note, 25)
        worker.wait_for("job started", message_id=short.message_id)
        worker.wait_for("job started", message_id=long.message_id)
        sent = worker.signal(signal.SIGTERM)
        worker.signal(signal.SIGTERM)  # platforms may signal twice: no effect
        code = worker.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        worker.kill()
    assert code == 0
    assert took < 1 + 4.0, f"exit took {took:.1f} s"  # margin for a loaded machine
    assert worker.events("job done", message_id=short.message_id)
    assert _stats_rows(committed, short_note) == 1
    assert worker.events("job handed back", message_id=long.message_id)
    assert _stats_rows(committed, long_note) == 0
    # Back on the queue at once, for the next worker, not after a heartbeat timeout.
    assert queue_depths(broker) == {"waiting": 1, "in_progress": 0, "delayed": 0, "dead": 0}
    assert worker.events("worker stopped")[0]["handed_back"] == 1


# The killed worker's job: how long it works (tasks.refresh_note_stats's work_seconds).
JOB_SECONDS = 12


def test_a_killed_workers_job_is_redelivered_within_the_heartbeat_bound_and_done_once(
    database_url: str, broker: RedisBroker, committed: psycopg.Connection
) -> None:
    heartbeat_timeout = 2.0
    env = _env(database_url, WORKER_HEARTBEAT_TIMEOUT=str(heartbeat_timeout))
    note_id = insert_note(committed)
    first = Service("worker", env)
    second = None
    try:
        first.wait_for("worker started")
        # A job long enough to be running still once the other worker has started, however
        # long a loaded machine takes to start it (a 4 s job once ended before that).
        message = broker.get_actor("refresh_note_stats").send(note_id, JOB_SECONDS)
        first.wait_for("job started", message_id=message.message_id)
        # The other worker runs before the kill, as in production: the time measured is the
        # redelivery's, not a start-up's.
        second = Service("worker", env)
        second.wait_for("worker started", timeout=JOB_SECONDS - 2)
        assert not first.events("note stats"), "the job ended before the kill"
        killed = first.signal(signal.SIGKILL)
        assert first.wait(timeout=5) == -signal.SIGKILL
        second.wait_for("job started", timeout=15, message_id=message.message_id)
        redelivered = time.monotonic() - killed
        second.wait_for("note stats", timeout=JOB_SECONDS + 15, note_id=note_id)
    finally:
        first.kill()
        code = second.stop() if second else None
    assert code == 0
    # Every fetch runs Dramatiq's maintenance (WORKER_MAINTENANCE_CHANCE=1000000): the job is
    # taken again within a poll (0.25 s) of the heartbeat's expiry; the margin is the machine's.
    assert heartbeat_timeout - 0.5 < redelivered < heartbeat_timeout + 2.0, redelivered
    assert not first.events("job done")
    assert [line["outcome"] for line in second.events("note stats", note_id=note_id)] == ["stored"]
    assert _stats_rows(committed, note_id) == 1
    assert queue_depths(broker) == {"waiting": 0, "in_progress": 0, "delayed": 0, "dead": 0}


def test_a_poison_job_is_dead_lettered_after_its_retries_while_other_jobs_flow(
    database_url: str, broker: RedisBroker, committed: psycopg.Connection
) -> None:
    env = _env(database_url)
    good_notes = [insert_note(committed) for _ in range(4)]
    worker = Service("worker", env)
    try:
        worker.wait_for("worker started")
        actor = broker.get_actor("refresh_note_stats")
        with structlog.contextvars.bound_contextvars(request_id="poison-req-0001"):
            poison = actor.send("not-a-note-id")
        good = [actor.send(note_id) for note_id in good_notes]
        worker.wait_for("job dead-lettered", message_id=poison.message_id)
        for message in good:
            worker.wait_for("job done", message_id=message.message_id)
        requeued = run_admin(env, "dead-letters", "--requeue", poison.message_id)
        wait_until(lambda: len(worker.events("job dead-lettered")) == 2, timeout=10)
    finally:
        code = worker.stop()
    assert code == 0
    attempts = worker.events("job started", message_id=poison.message_id)
    assert [line["retries"] for line in attempts] == [0, 1, 2, 0, 1, 2]
    assert all(line["request_id"] == "poison-req-0001" for line in attempts)
    assert requeued.returncode == 0, requeued.stderr
    (line,) = [line for line in requeued.stdout.splitlines() if not line.startswith("{")]
    assert line.startswith(f"{poison.message_id}  refresh_note_stats('not-a-note-id')  attempts=3")
    assert "request_id=poison-req-0001" in line
    assert line.endswith("reason=ValueError: note_id must be a positive integer")
    assert '"event":"dead letters requeued"' in requeued.stdout
    assert [letter.message.message_id for letter in dead_letters(broker)] == [poison.message_id]
    assert len(committed.execute("SELECT * FROM note_stats").fetchall()) == len(good_notes)
