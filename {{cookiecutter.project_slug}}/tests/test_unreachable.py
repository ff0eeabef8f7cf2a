"""Unreachable backing services: each process type fails fast with one line naming what failed."""

from __future__ import annotations

import time

import pytest

from support import Service, base_redis_url, free_port, service_env

pytestmark = pytest.mark.process


def test_unreachable_services_stop_each_process_at_once_naming_them(database_url: str) -> None:
    redis_down = f"redis://127.0.0.1:{free_port()}/0"
    postgres_down = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    # command, DATABASE_URL, REDIS_URL -> exit code, what the one line on stderr names
    cases = [
        (("worker",), database_url, redis_down, 4, "Redis unreachable"),
        (("clock",), database_url, redis_down, 4, "Redis unreachable"),
        (("admin", "check"), database_url, redis_down, 4, "Redis unreachable"),
        (("admin", "check"), postgres_down, base_redis_url(), 3, "PostgreSQL unreachable"),
    ]
    started = time.monotonic()
    processes = [
        Service(
            command[0],
            service_env(DATABASE_URL=db, REDIS_URL=redis, REDIS_TIMEOUT="1"),
            *command[1:],
        )
        for command, db, redis, _, _ in cases
    ]
    results = [(process.wait(timeout=30), process.stderr) for process in processes]
    took = time.monotonic() - started
    for (command, _, _, code, named), (exit_code, err) in zip(cases, results, strict=True):
        assert exit_code == code, (command, err)
        (line,) = err.strip().splitlines()
        assert line.startswith("error: "), (command, err)
        assert named in line, (command, err)
    assert took < 15, f"the failures took {took:.1f} s"
