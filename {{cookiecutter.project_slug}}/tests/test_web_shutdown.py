"""Web as real processes: draining on SIGTERM within its bounds, and scaling out by processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import httpx
import psycopg
import pytest
from redis import Redis

from support import (
    Service,
    api_key,
    auth,
    base_redis_url,
    free_port,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.process

BODY = json.dumps({"title": "slow", "body": "this body arrives in two halves"}).encode()


def _env(database_url: str, port: int, **overrides: str) -> dict[str, str]:
    return service_env(
        DATABASE_URL=database_url, REDIS_URL=base_redis_url(), PORT=str(port), **overrides
    )


def _send_half_a_post(port: int, key: str) -> socket.socket:
    """A POST whose headers promise the whole body but whose body is half sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        "POST /api/v1/notes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[: len(BODY) // 2])
    return sock


def _status(sock: socket.socket) -> int | None:
    """Read one whole response from a socket: its status code, or None if it closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1])


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_factor_09_disposability_sigterm_drains_in_flight_requests_and_exits_in_time(
    database_url: str,
    redis_sync: Redis,
    committed: psycopg.Connection,
    request: pytest.FixtureRequest,
) -> None:
    port, graceful = free_port(), 2
    url = f"http://127.0.0.1:{port}"
    web = Service("web", _env(database_url, port, GRACEFUL_TIMEOUT=str(graceful)))
    sockets: list[socket.socket] = []
    try:
        spawned = time.monotonic()
        web.wait_http(f"{url}/healthz")
        # Time to ready, kept with the test's report (junit XML properties, pytest -rA).
        request.node.user_properties.append(("seconds_to_ready", time.monotonic() - spawned))
        web.wait_http(f"{url}/readyz")
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(idle)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _status(idle) == 200  # and the connection stays open, idle (keep-alive)
        key = api_key(database_url)
        slow, hung = _send_half_a_post(port, key), _send_half_a_post(port, key)
        sockets += [slow, hung]
        time.sleep(0.2)  # both requests reach the app before the signal
        sent = web.signal(signal.SIGTERM)
        # New connections are refused at once.
        wait_until(lambda: _refused(port), timeout=3)
        refused_after = time.monotonic() - sent
        # A request in flight still completes.
        slow.sendall(BODY[len(BODY) // 2 :])
        completed = _status(slow)
        # Neither the request that never ends nor the idle connection holds the exit: the
        # server ends a worker still busy after GRACEFUL_TIMEOUT.
        code = web.wait(timeout=graceful + 10)
        exited_after = time.monotonic() - sent
        idle_closed = idle.recv(1) == b""
    finally:
        web.kill()
        for sock in sockets:
            sock.close()
    assert refused_after < 2
    assert completed == 201
    assert code in {0, -signal.SIGTERM}  # a clean stop either way (docs/processes.md)
    # The margin leaves room for a loaded CI machine.
    assert exited_after < graceful + 4, f"exit took {exited_after:.1f} s"
    assert idle_closed
    titles = committed.execute("SELECT title FROM notes").fetchall()
    assert titles == [("slow",)]  # the request that never ended stored nothing


def test_web_processes_share_state_only_through_postgres_and_redis(
    database_url: str, redis_sync: Redis, committed: psycopg.Connection
) -> None:
    first_port, second_port = free_port(), free_port()
    shared = {"RATE_LIMIT_PER_MINUTE": "3", "GRACEFUL_TIMEOUT": "1"}
    # The first runs two workers on one port; the second one.
    pair = Service("web", _env(database_url, first_port, WEB_CONCURRENCY="2", **shared))
    single = Service("web", _env(database_url, second_port, **shared))
    first, second = f"http://127.0.0.1:{first_port}", f"http://127.0.0.1:{second_port}"
    try:
        pair.wait_http(f"{first}/readyz")
        single.wait_http(f"{second}/readyz")
        headers = auth(database_url)
        note = httpx.post(f"{first}/api/v1/notes", json={"title": "shared"}, headers=headers)
        created = note.json()
        seen = httpx.get(f"{second}/api/v1/notes/{created['id']}", headers=headers)
        assert seen.json()["title"] == "shared"
        for _ in range(2):  # the limit counts per clock minute: redo writes that straddle two
            minute = time.time() // 60
            redis_sync.delete(*redis_sync.keys("ratelimit:*"))
            writes = [
                httpx.post(f"{base}/api/v1/notes", json={"title": "t"}, headers=headers).status_code
                for base in (first, second, first, second)
            ]
            if time.time() // 60 == minute:
                break
        pair.signal(signal.SIGTERM)
        single.signal(signal.SIGTERM)
        codes = [pair.wait(timeout=10), single.wait(timeout=10)]
    finally:
        pair.kill()
        single.kill()
    assert writes == [201, 201, 201, 429], "the limit of 3 writes a minute counts both processes"
    assert set(codes) <= {0, -signal.SIGTERM}
    # Each worker ran the lifespan: opened its handles at start, closed them at the stop.
    assert len(pair.events("started")) == 2
    assert len(pair.events("stopped")) == 2
    assert len(single.events("stopped")) == 1


def _worker_pids(web: Service) -> list[int]:
    """The pids of the workers granian started, from its "Spawning worker-N with PID: n" lines."""
    spawned = [str(line.get("event")) for line in web.lines]
    return [
        int(event.rpartition(" ")[2]) for event in spawned if event.startswith("Spawning worker")
    ]


def test_a_web_worker_that_dies_is_replaced(database_url: str) -> None:
    port = free_port()
    web = Service("web", _env(database_url, port, WEB_CONCURRENCY="2"))
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_until(lambda: len(web.events("started")) == 2, timeout=10)
        first = _worker_pids(web)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(web.events("started")) == 3, timeout=15)
        answers = [httpx.get(f"http://127.0.0.1:{port}/healthz").status_code for _ in range(4)]
        replaced = _worker_pids(web)
    finally:
        code = web.stop()
    assert len(first) == 2
    assert len(replaced) == 3
    assert replaced[2] not in first
    assert answers == [200] * 4
    assert code in {0, -signal.SIGTERM}


# Two moments a stop must not be lost in: while the workers load the app (they have just been
# forked), and as soon as they have started (between the app's start-up and serving).
STOP_MOMENTS = {
    "loading": lambda web: len(_worker_pids(web)) == 2,
    "just-started": lambda web: len(web.events("started")) == 2,
}


@pytest.mark.parametrize("moment", STOP_MOMENTS)
def test_a_stop_while_workers_start_is_not_held(database_url: str, moment: str) -> None:
    port = free_port()
    web = Service("web", _env(database_url, port, WEB_CONCURRENCY="2", GRACEFUL_TIMEOUT="20"))
    try:
        wait_until(lambda: STOP_MOMENTS[moment](web), timeout=15, interval=0.005)
        sent = web.signal(signal.SIGTERM)
        code = web.wait(timeout=15)
        stopped_after = time.monotonic() - sent
    finally:
        web.kill()
    assert code in {0, -signal.SIGTERM}
    assert stopped_after < 3, f"a stop during start-up took {stopped_after:.1f} s"
