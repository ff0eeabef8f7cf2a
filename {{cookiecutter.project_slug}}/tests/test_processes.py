"""The Procfile's commands as real processes, configured by environment variables alone."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from redis import Redis

from {{ cookiecutter.package_name }}.core.heartbeat import Heartbeat

from support import (
    FAST_JOBS,
    Service,
    auth,
    base_redis_url,
    create_database,
    drop_database,
    free_port,
    other_redis_url,
    run_admin,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.process


def test_web_starts_from_env_alone_and_logs_only_json(database_url: str) -> None:
    port = free_port()
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url(), PORT=str(port))
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        response = httpx.get(
            f"http://127.0.0.1:{port}/readyz", headers={"x-request-id": "proc-test-0001"}
        )
        assert response.status_code == 200
    finally:
        code = web.stop()
    assert code in {0, -signal.SIGTERM}, web.stderr
    lines = [json.loads(line) for line in web.output.splitlines()]
    assert lines, "the web process logged nothing"
    assert all(line["ts"].endswith("Z") for line in lines)
    access = [
        line for line in lines if line.get("event") == "request" and line["path"] == "/readyz"
    ]
    assert access[0]["request_id"] == "proc-test-0001"
    assert {"method", "path", "status", "duration_ms"} <= access[0].keys()
    assert any(line.get("event") == "stopped" for line in lines), "lifespan shutdown did not run"


def test_web_without_database_url_exits_at_once_naming_it() -> None:
    env = service_env(REDIS_URL=base_redis_url(), PORT=str(free_port()), DATABASE_URL="")
    web = Service("web", env)
    code = web.wait(timeout=5)
    assert code != 0
    assert "DATABASE_URL" in web.stderr
    assert "Traceback" not in web.stderr
    assert web.output == ""


def test_release_processes_started_at_once_all_succeed() -> None:
    url = create_database("release")
    try:
        env = service_env(DATABASE_URL=url, REDIS_URL=base_redis_url())
        releases = [Service("release", env) for _ in range(4)]
        codes = [release.wait(timeout=60) for release in releases]
        assert codes == [0, 0, 0, 0], [release.stderr for release in releases]
        changed = [line["changed"] for release in releases for line in release.events("migrated")]
        assert sorted(changed) == [False, False, False, True]
    finally:
        drop_database(url)


def test_release_gives_up_on_an_unreachable_database_within_its_bound() -> None:
    env = service_env(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/none",
        REDIS_URL=base_redis_url(),
        DB_WAIT_TIMEOUT="1",
    )
    started = time.monotonic()
    release = Service("release", env)
    code = release.wait(timeout=30)
    assert code != 0
    assert time.monotonic() - started < 15
    assert "PostgreSQL did not answer within 1 s" in release.stderr


def test_backing_services_are_swapped_by_environment_alone(database_url: str) -> None:
    second_db = create_database("swap")
    second_redis = other_redis_url(base_redis_url())
    port = free_port()
    try:
        env = service_env(DATABASE_URL=second_db, REDIS_URL=second_redis, PORT=str(port))
        release = Service("release", env)
        code = release.wait(60)
        assert code == 0, release.stderr
        web = Service("web", env)
        try:
            web.wait_http(f"http://127.0.0.1:{port}/readyz")
            created = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/notes",
                json={"title": "swap"},
                headers=auth(second_db),
            )
            assert created.status_code == 201
        finally:
            web.stop()
        with psycopg.connect(second_db) as connection:
            titles = connection.execute("SELECT title FROM notes").fetchall()
        assert titles == [("swap",)]
        assert Redis.from_url(second_redis).keys("ratelimit:*")
    finally:
        drop_database(second_db)


def test_seed_notes_inserts_in_batches_and_reports_progress(
    database_url: str, committed: psycopg.Connection
) -> None:
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url())
    result = run_admin(env, "seed-notes", "1500")
    assert result.returncode == 0, result.stderr
    assert "seeded 1000/1500" in result.stderr
    assert "seeded 1500/1500" in result.stderr
    titles = committed.execute("SELECT title FROM notes ORDER BY id").fetchall()
    assert [title for (title,) in titles] == [f"Note {n}" for n in range(1, 1501)]


def test_worker_and_clock_renew_their_liveness_file_while_they_wait(
    database_url: str, tmp_path: Path
) -> None:
    # A tick of a minute: the clock must beat while it sleeps towards the next one.
    files = {name: tmp_path / f"{name}-alive" for name in ("worker", "clock")}
    services = [
        Service(
            name,
            service_env(
                DATABASE_URL=database_url,
                REDIS_URL=base_redis_url(),
                LIVENESS_FILE=str(path),
                CLOCK_TICK_SECONDS="60",
                **FAST_JOBS,
            ),
        )
        for name, path in files.items()
    ]
    try:
        services[0].wait_for("worker started")
        services[1].wait_for("clock started")
        for path in files.values():
            wait_until(path.exists, timeout=10)
        first = {name: path.stat().st_mtime for name, path in files.items()}
        renewed = wait_until(
            lambda: all(path.stat().st_mtime > first[name] for name, path in files.items()),
            timeout=Heartbeat.INTERVAL * 2,
        )
        assert renewed
        codes = [service.stop() for service in services]
    finally:
        for service in services:
            service.kill()
    assert codes == [0, 0]
