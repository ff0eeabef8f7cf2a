"""Fixtures on the real PostgreSQL and Redis: a migrated test database, an app, a client.

With TEST_DATABASE_URL or TEST_REDIS_URL unset, the run starts throwaway local servers (the dev
group's PostgreSQL and Valkey) in a temporary directory, shared by the xdist workers, and
removes them at the end.

The service's own variables (DATABASE_URL, REDIS_URL, ...) point at those servers in this process
too, set before any test module is imported: the jobs broker is built from them on import.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import psycopg
import pytest
import redis as sync_redis
from dramatiq.brokers.redis import RedisBroker
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.core.apikeys.service import create_key
from {{ cookiecutter.package_name }}.core.db.migrate import migrate
from {{ cookiecutter.package_name }}.core.db.pool import Database
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.dev.localservers import (
    LocalPostgres,
    LocalValkey,
    start_postgres,
    start_valkey,
)

from factor_report import (  # noqa: F401  # hooks of the twelve-factor report
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
from support import (
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    TEST_SECRET,
    base_database_url,
    base_redis_url,
    create_database,
    drop_database,
    make_settings,
)

THROWAWAY_SERVERS = pytest.StashKey[tuple[Path, list[LocalPostgres | LocalValkey]]]()


def pytest_configure(config: pytest.Config) -> None:
    """Start throwaway servers for what TEST_DATABASE_URL and TEST_REDIS_URL do not name."""
    if not hasattr(config, "workerinput"):  # xdist workers find them started, the variables set
        # Not an xdist worker: a worker id inherited from an outer run names none of ours.
        os.environ.pop("PYTEST_XDIST_WORKER", None)
        _start_throwaway_servers(config)
    os.environ |= {
        "APP_ENV": "test",
        "DATABASE_URL": base_database_url(),
        "REDIS_URL": base_redis_url(),
        "SECRET_KEY": TEST_SECRET,
    }


def _start_throwaway_servers(config: pytest.Config) -> None:
    wanted = [name for name in (TEST_DATABASE_URL, TEST_REDIS_URL) if not os.environ.get(name)]
    if not wanted:
        return
    root = Path(tempfile.mkdtemp(prefix="tests-servers-"))
    servers: list[LocalPostgres | LocalValkey] = []
    config.stash[THROWAWAY_SERVERS] = (root, servers)
    if TEST_DATABASE_URL in wanted:
        postgres = start_postgres(root / "postgres")
        servers.append(postgres)
        postgres.tune_for_tests()
        os.environ[TEST_DATABASE_URL] = postgres.url()
    if TEST_REDIS_URL in wanted:
        valkey = start_valkey(root / "valkey", persist=False)
        servers.append(valkey)
        os.environ[TEST_REDIS_URL] = valkey.url(0)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the throwaway servers and remove their data."""
    root, servers = config.stash.get(THROWAWAY_SERVERS, (None, []))
    for server in reversed(servers):
        server.stop()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of its own for this test run, migrated to head, dropped at the end."""
    url = create_database("run")
    try:
        migrate(make_settings(url))
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """The settings of the app under test."""
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running, for the whole session."""
    from {{ cookiecutter.package_name }}.processes.app import create_app  # noqa: PLC0415  # after configure

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def redis(app: FastAPI) -> Redis:
    """The app's Redis database, emptied before each test."""
    client: Redis = app.state.services.redis
    await client.flushdb()
    return client


class RolledBackDatabase(Database):
    """The app's Database on one connection, inside a transaction that the test rolls back."""

    def __init__(self, connection: asyncpg.Connection) -> None:  # no pool, no super().__init__
        self._connection = connection

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:  # type: ignore[override]
        yield self._connection


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The app's Database in a transaction that is rolled back after the test."""
    connection = await asyncpg.connect(settings.asyncpg_dsn.get_secret_value())
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield RolledBackDatabase(connection)
    finally:
        await transaction.rollback()
        await connection.close()


@asynccontextmanager
async def _client_on(app: FastAPI, db: Database, *, with_key: bool) -> AsyncIterator[AsyncClient]:
    # Requests reach the database through the app's services, the key check included: they get
    # the test's rolled-back transaction for as long as the client is open.
    services = app.state.services
    pool = services.db
    headers = {}
    if with_key:
        key = await create_key(db, app.state.settings, "tests-in-transaction")
        headers["Authorization"] = f"Bearer {key}"
    services.db = db
    transport = ASGITransport(app=app)
    try:
        async with AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as http:
            yield http
    finally:
        services.db = pool


@pytest.fixture
async def client(app: FastAPI, redis: Redis, db: Database) -> AsyncIterator[AsyncClient]:
    """An HTTP client with an API key; its database writes are rolled back after the test (`db`)."""
    async with _client_on(app, db, with_key=True) as http:
        yield http


@pytest.fixture
async def anonymous(app: FastAPI, redis: Redis, db: Database) -> AsyncIterator[AsyncClient]:
    """An HTTP client without an API key (writes rolled back likewise)."""
    async with _client_on(app, db, with_key=False) as http:
        yield http


@pytest.fixture
def redis_sync() -> Iterator[sync_redis.Redis]:
    """A blocking client on the test Redis database, emptied before the test."""
    client = sync_redis.Redis.from_url(base_redis_url(), socket_timeout=5)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def broker(redis_sync: sync_redis.Redis) -> RedisBroker:
    """The service's jobs broker (built from REDIS_URL, this run's Redis), its Redis emptied."""
    from {{ cookiecutter.package_name }}.core.jobs.broker import broker  # noqa: PLC0415
    from {{ cookiecutter.package_name }}.features import SCHEDULE  # noqa: PLC0415

    assert SCHEDULE  # every feature's jobs are declared on the broker by now
    return broker


@pytest.fixture
def committed(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database, its notes deleted before and after."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE notes, note_stats")
        yield connection
        connection.execute("TRUNCATE notes, note_stats")
