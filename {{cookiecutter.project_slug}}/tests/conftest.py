"""Fixtures on the real PostgreSQL and Redis: a migrated test database, an app, a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import psycopg
import pytest
import redis as sync_redis
from dramatiq.brokers.redis import RedisBroker
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.api.deps import get_db
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.db.migrate import migrate
from {{ cookiecutter.package_name }}.db.pool import Database
from {{ cookiecutter.package_name }}.jobs.broker import build_broker
from {{ cookiecutter.package_name }}.settings import Settings

from factor_report import (  # noqa: F401  # hooks of the twelve-factor report
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
from support import BASE_REDIS_URL, create_database, drop_database, make_settings


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of its own for this test run, migrated to head, dropped at the end."""
    url = create_database("run")
    try:
        asyncio.run(migrate(make_settings(url)))
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
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def redis(app: FastAPI) -> Redis:
    """The app's Redis database, emptied before each test."""
    client: Redis = app.state.resources.redis
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
async def client(app: FastAPI, redis: Redis) -> AsyncIterator[AsyncClient]:
    """An HTTP client whose database writes are rolled back after the test."""
    settings: Settings = app.state.settings
    connection = await asyncpg.connect(settings.database_dsn.get_secret_value())
    transaction = connection.transaction()
    await transaction.start()
    database = RolledBackDatabase(connection)

    async def database_in_test_transaction() -> Database:
        return database

    app.dependency_overrides[get_db] = database_in_test_transaction
    transport = ASGITransport(app=app)
    try:
        async with AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        app.dependency_overrides.clear()
        await transaction.rollback()
        await connection.close()


@pytest.fixture
def redis_sync() -> Iterator[sync_redis.Redis]:
    """A blocking client on the test Redis database, emptied before the test."""
    client = sync_redis.Redis.from_url(BASE_REDIS_URL, socket_timeout=5)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def broker(settings: Settings, redis_sync: sync_redis.Redis) -> Iterator[RedisBroker]:
    """The jobs broker, built from settings as every process builds it, on an empty Redis."""
    jobs_broker = build_broker(settings)
    yield jobs_broker
    jobs_broker.client.close()


@pytest.fixture
def committed(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database, its notes deleted before and after."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE notes, note_stats")
        yield connection
        connection.execute("TRUNCATE notes, note_stats")
