"""The web's PostgreSQL pool: asyncpg, running statements built from the table declarations.

Every statement is SQLAlchemy Core, built in a feature's service module from its models and
compiled once (core/db/compiled.py); asyncpg runs the SQL. docs/data.md explains the choice and
its figures.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from ..settings import Settings
from . import application_name
from .compiled import Compiled

# Idle connections above what the traffic needs are closed after this long (seconds).
IDLE_LIFETIME = 300.0


class Database:
    """A connection pool: it connects on first use, holds at most DB_POOL_MAX_SIZE connections,
    waits DB_POOL_TIMEOUT at most for one and DB_CONNECT_TIMEOUT for a new one.

    A connection the server closed (a restart, a failover) is noticed by the event loop as soon
    as it runs, and replaced at its next checkout (tests/test_health.py). A request that takes
    such a connection in the very moment it closes fails once; there is no ping per checkout, as
    that costs a round trip on every query. Each query below takes a connection for itself; use
    `connection()` for several statements in one transaction.
    """

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], settings: Settings) -> None:
        self._pool = pool
        self._acquire_timeout = settings.db_pool_timeout
        self._close_timeout = float(settings.graceful_timeout)

    @classmethod
    async def open(cls, settings: Settings, *, process: str | None = None) -> Database:
        """Build the pool; no connection is opened until a query needs one."""
        pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
            settings.asyncpg_dsn.get_secret_value(),
            min_size=0,
            max_size=settings.db_pool_max_size,
            max_inactive_connection_lifetime=IDLE_LIFETIME,
            timeout=settings.db_connect_timeout,
            server_settings={"application_name": application_name(process)},
        )
        return cls(pool, settings)

    def connection(self) -> PoolAcquireContext[asyncpg.Record]:
        """`async with db.connection() as connection:` one connection, returned afterwards."""
        return self._pool.acquire(timeout=self._acquire_timeout)

    async def fetch(self, statement: Compiled, **params: Any) -> list[asyncpg.Record]:
        """Every row the statement returns."""
        async with self.connection() as connection:
            return await connection.fetch(statement.sql, *statement.args(params))

    async def fetchrow(self, statement: Compiled, **params: Any) -> asyncpg.Record | None:
        """The first row the statement returns, if any."""
        async with self.connection() as connection:
            return await connection.fetchrow(statement.sql, *statement.args(params))

    async def fetchval(self, statement: Compiled, **params: Any) -> Any:
        """The first column of the first row, if any."""
        async with self.connection() as connection:
            return await connection.fetchval(statement.sql, *statement.args(params))

    async def executemany(self, statement: Compiled, rows: list[dict[str, Any]]) -> None:
        """Run the statement once per row, in one transaction."""
        async with self.connection() as connection, connection.transaction():
            await connection.executemany(statement.sql, [statement.args(row) for row in rows])

    def usage(self) -> tuple[int, int]:
        """Connections open, and how many of them are idle (metrics)."""
        return self._pool.get_size(), self._pool.get_idle_size()

    async def ping(self) -> None:
        """One round trip to the server (readiness)."""
        async with self.connection() as connection:
            await connection.fetchval("SELECT 1")

    async def close(self) -> None:
        """Close every connection; ones still in use get GRACEFUL_TIMEOUT, then are cut."""
        try:
            await asyncio.wait_for(self._pool.close(), self._close_timeout)
        except TimeoutError:
            self._pool.terminate()
