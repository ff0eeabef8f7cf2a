"""Who gets in, and what bad input gets back: API keys, limits, 4xx for bad input, 503 when a
backing service is down (docs/security.md)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from {{ cookiecutter.package_name }}.core.apikeys.digests import PREFIX
from {{ cookiecutter.package_name }}.processes.app import create_app

from support import (
    Service,
    auth,
    base_redis_url,
    free_port,
    make_settings,
    run_admin,
    service_env,
    wait_until,
)

NOTES = "/api/v1/notes"


# --- keys ---------------------------------------------------------------------------------------


async def test_every_api_route_needs_a_key_and_probes_do_not(anonymous: AsyncClient) -> None:
    for method, path in (
        ("GET", NOTES),
        ("POST", NOTES),
        ("GET", f"{NOTES}/1"),
        ("DELETE", f"{NOTES}/1"),
    ):
        response = await anonymous.request(method, path, json={"title": "t"})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "missing API key"
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert (await anonymous.get("/healthz")).status_code == 200
    assert (await anonymous.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-key",
        "Bearer " + "x" * 200,
        "Basic dXNlcjpwYXNz",
        "Bearer twelve",
    ],
)
async def test_a_wrong_key_is_401(anonymous: AsyncClient, header: str) -> None:
    response = await anonymous.get(NOTES, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_of_the_right_shape_but_unknown_is_401(
    client: AsyncClient, anonymous: AsyncClient
) -> None:
    good = client.headers["authorization"].removeprefix("Bearer ")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    response = await anonymous.get(NOTES, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid API key"


async def test_the_openapi_schema_declares_the_bearer_scheme(database_url: str) -> None:
    app: FastAPI = create_app(make_settings(database_url, docs_enabled=True))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http:
        schema = (await http.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    api = [
        op
        for path, item in schema["paths"].items()
        if path.startswith("/api")
        for op in item.values()
    ]
    assert api
    assert all({"HTTPBearer": []} in op.get("security", []) for op in api)


async def test_repeated_failures_from_one_address_are_429(database_url: str) -> None:
    app: FastAPI = create_app(make_settings(database_url, auth_failures_per_minute=3))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        await app.state.services.redis.flushdb()
        statuses = [(await http.get(NOTES)).status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]


def test_admin_creates_lists_and_revokes_keys_and_never_shows_one_again(
    database_url: str, committed: psycopg.Connection
) -> None:
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url())
    made = run_admin(env, "api-keys", "create", "reporting")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith(f"{PREFIX}_")
    taken = run_admin(env, "api-keys", "create", "reporting")
    assert taken.returncode == 8
    assert taken.stderr.strip().splitlines() == [
        "error: an API key called reporting exists: revoke it first, or use --replace"
    ]
    listed = run_admin(env, "api-keys", "list")
    assert listed.returncode == 0
    assert "reporting" in listed.stdout
    assert key not in listed.stdout + listed.stderr
    stored = committed.execute("SELECT digest FROM api_keys WHERE name = 'reporting'").fetchone()
    assert stored is not None
    assert key.encode() not in bytes(stored[0]), "only a digest is stored"
    bad = run_admin(env, "api-keys", "create", "Not A Name")
    assert bad.returncode == 2
    assert run_admin(env, "api-keys", "revoke", "reporting").returncode == 0
    gone = run_admin(env, "api-keys", "revoke", "reporting")
    assert gone.returncode == 9
    assert gone.stderr.strip() == "error: no API key called reporting"


def _two_webs(database_url: str, **extra: str) -> tuple[dict[str, str], list[Service], list[str]]:
    ports = [free_port(), free_port()]
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url(), **extra)
    webs = [Service("web", {**env, "PORT": str(port)}) for port in ports]
    urls = [f"http://127.0.0.1:{port}{NOTES}" for port in ports]
    for web, port in zip(webs, ports, strict=True):
        web.wait_http(f"http://127.0.0.1:{port}/readyz")
    return env, webs, urls


@pytest.mark.process
def test_a_revoked_key_is_refused_by_every_web_process_within_a_second(
    database_url: str, committed: psycopg.Connection
) -> None:
    env, webs, urls = _two_webs(database_url)
    try:
        made = run_admin(env, "api-keys", "create", "short-lived", "--replace")
        key = made.stdout.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        # Accepted, and so remembered, by both processes.
        assert [httpx.get(url, headers=headers).status_code for url in urls] == [200, 200]
        assert run_admin(env, "api-keys", "revoke", "short-lived").returncode == 0
        revoked = time.monotonic()
        wait_until(lambda: all(httpx.get(u, headers=headers).status_code == 401 for u in urls), 5)
        refused_after = time.monotonic() - revoked
        for web in webs:
            web.wait_for("request", status=401)
            assert key not in json.dumps(web.lines), "a key reached the log"
    finally:
        for web in webs:
            web.stop()
    assert refused_after < 1, f"refused {refused_after:.2f} s after the revocation"


@pytest.mark.process
def test_a_key_revoked_without_a_notification_is_refused_within_the_cache_lifetime(
    database_url: str, committed: psycopg.Connection
) -> None:
    # A notification that never arrives (a lost channel): the key is deleted behind the
    # service's back, and only the lifetime of what each process accepted bounds its use.
    lifetime = 2.0
    env, webs, urls = _two_webs(database_url, API_KEY_CACHE_SECONDS=str(lifetime))
    try:
        made = run_admin(env, "api-keys", "create", "unnotified", "--replace")
        headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
        assert [httpx.get(url, headers=headers).status_code for url in urls] == [200, 200]
        committed.execute("DELETE FROM api_keys WHERE name = 'unnotified'")
        deleted = time.monotonic()
        still = [httpx.get(url, headers=headers).status_code for url in urls]
        wait_until(
            lambda: all(httpx.get(u, headers=headers).status_code == 401 for u in urls),
            lifetime + 5,
        )
        refused_after = time.monotonic() - deleted
    finally:
        for web in webs:
            web.stop()
    assert still == [200, 200], "accepted keys are remembered (no query per request)"
    assert refused_after < lifetime + 1


async def test_keys_survive_a_secret_key_rotation_and_move_to_the_new_secret(
    database_url: str, committed: psycopg.Connection
) -> None:
    old = make_settings(database_url)
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url())
    made = run_admin(env, "api-keys", "create", "rotation", "--replace")
    key = made.stdout.strip().splitlines()[-1]
    rotated = make_settings(
        database_url,
        secret_key="a-brand-new-secret-key-that-is-long-enough-42",
        secret_key_fallbacks=[old.secret_key.get_secret_value()],
    )
    without_fallback = make_settings(
        database_url, secret_key="a-brand-new-secret-key-that-is-long-enough-42"
    )
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    for settings in (without_fallback, rotated, without_fallback):
        app: FastAPI = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
        ):
            statuses.append((await http.get(NOTES, headers=headers)).status_code)
    # Unknown under the new secret alone; accepted with the old one as a fallback, which
    # re-digests it; from then on the new secret alone is enough.
    assert statuses == [401, 200, 200]


# --- nothing forgeable ----------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.parametrize(("trusted", "believed"), [("10.9.9.9", False), ("127.0.0.1", True)])
def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    database_url: str,
    trusted: str,
    believed: bool,  # noqa: FBT001
) -> None:
    port = free_port()
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=base_redis_url(),
        PORT=str(port),
        FORWARDED_ALLOW_IPS=trusted,
    )
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        forged = {"X-Forwarded-For": "203.0.113.7", "X-Request-ID": "forwarded-check-0001"}
        httpx.get(f"http://127.0.0.1:{port}/healthz", headers=forged)
        line = web.wait_for("request", request_id="forwarded-check-0001")
    finally:
        web.stop()
    assert line["client"] == ("203.0.113.7" if believed else "127.0.0.1"), line


async def test_the_write_limit_follows_the_key_not_the_address(database_url: str) -> None:
    app: FastAPI = create_app(make_settings(database_url, rate_limit_per_minute=2))
    headers = auth(database_url)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        await app.state.services.redis.flushdb()
        statuses = [
            (
                await http.post(
                    NOTES,
                    json={"title": "t"},
                    headers={**headers, "X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(4)
        ]
    assert statuses == [201, 201, 429, 429]


# --- bad input is a 4xx -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"title": "nul\\u0000byte"}', "title"),
        ('{"title": "ok", "body": "a\\u0000"}', "body"),
        ('{"title": "lone \\ud800 surrogate"}', "title"),
    ],
)
async def test_text_postgresql_cannot_store_is_422(
    client: AsyncClient, body: str, field: str
) -> None:
    response = await client.post(NOTES, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert [item["loc"][-1] for item in response.json()["details"]] == [field]


@pytest.mark.parametrize(
    "body",
    [
        '{"title": ',
        "not json",
        '{"title": 5}',
        '{"title": ["a"]}',
        '["title"]',
        '{"title": "t", "x": 1}',
    ],
)
async def test_malformed_or_mistyped_bodies_are_422_json(client: AsyncClient, body: str) -> None:
    response = await client.post(NOTES, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request"


async def test_every_413_has_the_json_error_body(database_url: str) -> None:
    app: FastAPI = create_app(make_settings(database_url, max_body_size=100))
    big = b'{"title": "' + b"x" * 500 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 100

    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        headers = {"content-type": "application/json", **auth(database_url)}
        sized = await http.post(NOTES, content=big, headers=headers)
        chunked = await http.post(NOTES, content=chunks(), headers=headers)
    for response in (sized, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error", "request_id"}


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


_UNREADABLE = (OSError, ValueError)


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (web's server process and its workers)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except _UNREADABLE:  # the process ended while we read it
            continue
        if status.parent.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def _unfinished_head(port: int, size: int) -> socket.socket:
    """A request whose head keeps coming: up to `size` bytes of one header, never ended."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    chunk = b"a" * 65536
    try:
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
    except OSError:
        pass  # the server stopped reading and closed: what the bound is for
    return sock


@pytest.mark.process
def test_oversized_or_unparsable_request_heads_are_4xx_and_memory_stays_bounded(
    database_url: str,
) -> None:
    port = free_port()
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url(), PORT=str(port))
    web = Service("web", env)
    cases = {
        # the server's bounds: 16 KiB of request line and headers, 100 header fields
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n": 431,
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n": 431,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: a\r\n" % i for i in range(120))
        + b"\r\n": 431,
        # never finished: the server stops reading at the bound and closes
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000: 431,
        b"\x16\x03\x01 not http at all\r\n\r\n": 400,
    }
    heads: list[socket.socket] = []
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        answers = {request: _raw(port, request) for request in cases}
        before = _rss_kib(web.process.pid)
        heads = [_unfinished_head(port, 4 * 1024 * 1024) for _ in range(20)]
        grown_mib = (_rss_kib(web.process.pid) - before) / 1024
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        for sock in heads:
            sock.close()
        web.stop()
    for request, expected in cases.items():
        head = answers[request].partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(f"http/1.1 {expected} ".encode()), (request[:40], head[:80])
        assert b"connection: close" in head
    assert grown_mib < 8, f"20 unfinished 4 MiB heads grew web by {grown_mib:.1f} MiB"


# --- a backing service that is down is a 503 ----------------------------------------------------


async def test_writes_are_503_naming_redis_when_it_is_down_and_reads_still_work(
    database_url: str, committed: psycopg.Connection
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    app: FastAPI = create_app(make_settings(database_url, down, redis_timeout=0.5))
    headers = auth(database_url)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        write = await http.post(NOTES, json={"title": "t"}, headers=headers)
        read = await http.get(NOTES, headers=headers)
        anonymous = await http.get(NOTES)
    assert write.status_code == 503
    assert write.json()["error"] == "Redis unavailable"
    assert read.status_code == 200
    assert anonymous.status_code == 503, "counting a failure needs Redis: no guessing for free"


async def test_every_route_is_503_naming_postgresql_when_it_is_down() -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    app: FastAPI = create_app(make_settings(down, db_connect_timeout=1, db_pool_timeout=1))
    headers = {"Authorization": f"Bearer {PREFIX}_{'A' * 43}"}
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        answers = [
            await http.get(NOTES, headers=headers),
            await http.post(NOTES, json={"title": "t"}, headers=headers),
            await http.get(f"{NOTES}/1", headers=headers),
        ]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["error"] == "PostgreSQL unavailable"


@pytest.mark.parametrize(
    "refusal",
    [
        "ALTER ROLE {role} NOLOGIN",  # as a wrong password: authentication refused
        "ALTER ROLE {role} CONNECTION LIMIT 0",  # too many connections
    ],
)
async def test_a_database_that_refuses_the_login_is_503_logged_once_with_its_reason(
    database_url: str, refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"refused_{free_port()}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'hunter2-secret'")
        admin.execute(refusal.format(role=role))
    url = database_url.replace("://postgres@", f"://{role}:hunter2-secret@", 1)
    headers = {"Authorization": f"Bearer {PREFIX}_{'A' * 43}"}
    try:
        app: FastAPI = create_app(make_settings(url, db_connect_timeout=2, db_pool_timeout=2))
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
        ):
            capsys.readouterr()
            answer = await http.get(f"{NOTES}/1", headers=headers)
            logged = capsys.readouterr().out
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "PostgreSQL unavailable",
        "request_id": answer.headers["x-request-id"],
    }
    errors = [line for line in logged.splitlines() if "backing service unavailable" in line]
    assert len(errors) == 1, logged
    assert answer.headers["x-request-id"] in errors[0]
    assert role in errors[0], "the reason names what PostgreSQL said"
    assert "hunter2-secret" not in logged
    assert "Traceback" not in logged


# --- configuration fails fast everywhere --------------------------------------------------------


@pytest.mark.process
@pytest.mark.parametrize("process_type", ["web", "worker", "clock", "release"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql://app:s3cret-pw@db.internal:notaport/app"),
        ("REDIS_URL", "redis://:s3cret-pw@cache.internal:99999/0"),
        ("DATABASE_URL", "postgresql:///app"),
    ],
)
def test_a_malformed_url_stops_every_process_type_with_78_and_one_line(
    process_type: str, name: str, value: str
) -> None:
    env = service_env(
        DATABASE_URL="postgresql://u@127.0.0.1:1/x", REDIS_URL="redis://127.0.0.1:1/0"
    ) | {name: value}
    started = time.monotonic()
    process = Service(process_type, env)
    code = process.wait(timeout=20)
    assert code == 78
    assert time.monotonic() - started < 15
    [line] = process.stderr.strip().splitlines()
    assert line.startswith("error: invalid configuration: ")
    assert name in line
    for secret in ("s3cret", "db.internal", "cache.internal"):
        assert secret not in line
