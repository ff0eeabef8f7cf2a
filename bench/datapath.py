"""Compare ways to run the notes list query from one SQLAlchemy declaration, in one process.

Prints queries per second and p99 latency for: asyncpg with a hand-written SQL string (the
reference), a SQLAlchemy Core statement compiled once and run by an asyncpg pool (with asyncpg's
default session reset on release, and without it), and the same statement executed through
SQLAlchemy's async engine on asyncpg. Needs a PostgreSQL URL
(default: the local server on 127.0.0.1:5432); creates and drops its own database.

    cd A-BAKED-PROJECT && uv run --with greenlet python PATH/TO/bench/datapath.py [POSTGRES_URL]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
from sqlalchemy import BigInteger, DateTime, Identity, MetaData, String, Text, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CONCURRENCY = 64
SECONDS = 4.0
POOL = 15
PAGE = 20


class Base(DeclarativeBase):
    metadata = MetaData()


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


PAGE_QUERY = (
    select(Note.id, Note.title, Note.body, Note.created_at).order_by(Note.id.desc()).limit(PAGE)
)
RAW = "SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 20"


async def drive(name: str, query: Callable[[], Awaitable[list[dict[str, object]]]]) -> None:
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            rows = await query()
            if len(rows) != PAGE:
                raise RuntimeError(f"{name}: {len(rows)} rows, not {PAGE}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    took = time.perf_counter() - started
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    print(f"{name:<40} {len(latencies) / took:8.0f} q/s   p99 {p99:6.1f} ms")


async def main(admin_url: str) -> None:
    admin = await asyncpg.connect(admin_url)
    await admin.execute("DROP DATABASE IF EXISTS bench_datapath")
    await admin.execute("CREATE DATABASE bench_datapath")
    url = admin_url.rsplit("/", 1)[0] + "/bench_datapath"
    try:
        engine = create_async_engine(
            url.replace("postgresql://", "postgresql+asyncpg://"), pool_size=POOL, max_overflow=0
        )
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)

        async def keep_session(_connection: asyncpg.Connection) -> None:
            """No session reset on release (asyncpg still rolls back an open transaction)."""

        no_reset_pool = await asyncpg.create_pool(
            url, min_size=POOL, max_size=POOL, reset=keep_session
        )
        async with pool.acquire() as connection:
            await connection.execute(
                "INSERT INTO notes (title, body)"
                " SELECT 'Note ' || n, 'seeded' FROM generate_series(1, 10000) n"
            )
        compiled = PAGE_QUERY.compile(dialect=postgresql.asyncpg.dialect())
        compiled_sql = str(compiled)
        params = [compiled.params[name] for name in compiled.positiontup or ()]

        async def raw() -> list[dict[str, object]]:
            async with pool.acquire() as connection:
                return [dict(row) for row in await connection.fetch(RAW)]

        async def compiled_once() -> list[dict[str, object]]:
            async with pool.acquire() as connection:
                return [dict(row) for row in await connection.fetch(compiled_sql, *params)]

        async def compiled_no_reset() -> list[dict[str, object]]:
            async with no_reset_pool.acquire() as connection:
                return [dict(row) for row in await connection.fetch(compiled_sql, *params)]

        async def core() -> list[dict[str, object]]:
            async with engine.connect() as connection:
                result = await connection.execute(PAGE_QUERY)
                return [dict(row) for row in result.mappings()]

        for _ in range(2):
            await drive("asyncpg + SQL string", raw)
            await drive("Core compiled once, asyncpg pool", compiled_once)
            await drive("  the same, pool without session reset", compiled_no_reset)
            await drive("Core on async engine (asyncpg)", core)
        await pool.close()
        await no_reset_pool.close()
        await engine.dispose()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS bench_datapath WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres")
    )
