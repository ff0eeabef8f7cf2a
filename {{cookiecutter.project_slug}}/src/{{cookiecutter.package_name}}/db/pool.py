"""The web's PostgreSQL pool: asyncpg, with every wait bounded.

The web process reaches PostgreSQL through asyncpg and plain SQL, not through SQLAlchemy: the
async ORM cost web a third of its start-up and a fifth of its memory in imports alone, and
served the list endpoint at a third of asyncpg's rate (bench/ in the template repository). The
models, Alembic and the worker still use SQLAlchemy (db/base.py, db/migrate.py, notes/tasks.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from ..settings import Settings
from . import application_name

# Idle connections above what the traffic needs are closed after this long (seconds).
IDLE_LIFETIME = 300.0


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """What the pool runs on a returned connection, after rolling back a transaction left open.

    asyncpg's default also resets the session (RESET ALL, UNLISTEN, advisory locks, cursors):
    one more round trip per checkout, which halved the list endpoint's rate. The web's queries
    change no session state; code that does (SET, LISTEN, session advisory locks) must undo it
    itself, or pass `reset=None` below to bring the default back.
    """


class Database:
    """A connection pool: it connects on first use, holds at most DB_POOL_SIZE + DB_MAX_OVERFLOW
    connections, waits DB_POOL_TIMEOUT at most for one and DB_CONNECT_TIMEOUT for a new one.

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
            settings.database_dsn.get_secret_value(),
            min_size=0,
            max_size=settings.db_pool_size + settings.db_max_overflow,
            max_inactive_connection_lifetime=IDLE_LIFETIME,
            timeout=settings.db_connect_timeout,
            server_settings={"application_name": application_name(process)},
            reset=_keep_session,
        )
        return cls(pool, settings)

    def connection(self) -> PoolAcquireContext[asyncpg.Record]:
        """`async with db.connection() as connection:` one connection, returned afterwards."""
        return self._pool.acquire(timeout=self._acquire_timeout)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Every row the query returns."""
        async with self.connection() as connection:
            return await connection.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row the query returns, if any."""
        async with self.connection() as connection:
            return await connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row, if any."""
        async with self.connection() as connection:
            return await connection.fetchval(query, *args)

    async def close(self) -> None:
        """Close every connection; ones still in use get GRACEFUL_TIMEOUT, then are cut."""
        try:
            await asyncio.wait_for(self._pool.close(), self._close_timeout)
        except TimeoutError:
            self._pool.terminate()
