"""Backing services as attached resources: opened when a process starts, closed when it stops."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .db.session import create_engine, create_sessionmaker
from .jobs.sender import JobSender
from .settings import Settings


def create_redis(settings: Settings) -> Redis:
    """A Redis client whose every wait is bounded by REDIS_TIMEOUT; it connects on first use."""
    client: Redis = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=True,
    )
    return client


@dataclass(frozen=True, slots=True)
class Resources:
    """The handles a process uses to reach PostgreSQL and Redis."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    jobs: JobSender

    @classmethod
    def open(cls, settings: Settings) -> Resources:
        """Build the handles; nothing connects until first use."""
        engine = create_engine(settings)
        return cls(engine, create_sessionmaker(engine), create_redis(settings), JobSender(settings))

    async def close(self) -> None:
        """Return every connection: the pool's and Redis' (also the job sender's)."""
        self.jobs.close()
        await self.redis.aclose()
        await self.engine.dispose()
