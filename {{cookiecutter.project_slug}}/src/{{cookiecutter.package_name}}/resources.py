"""Backing services as attached resources: opened when a process starts, closed when it stops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .db.pool import Database
from .jobs.sender import JobSender
from .settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


def create_redis(settings: Settings) -> Redis:
    """A Redis client whose every wait is bounded by REDIS_TIMEOUT; it connects on first use."""
    from redis.asyncio import Redis  # noqa: PLC0415  # see Resources.redis

    client: Redis = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=True,
    )
    return client


@dataclass(slots=True)
class Resources:
    """The handles a process uses to reach PostgreSQL and Redis."""

    settings: Settings
    db: Database
    jobs: JobSender
    _redis: Redis | None = field(default=None, init=False)

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        """Build the handles; nothing connects until first use."""
        return cls(settings, await Database.open(settings), JobSender(settings))

    @property
    def redis(self) -> Redis:
        """The Redis client, built on first use (the first write or readiness probe): importing
        redis-py would otherwise add a third to the web's start-up, before any request needs it."""
        if self._redis is None:
            self._redis = create_redis(self.settings)
        return self._redis

    async def close(self) -> None:
        """Return every connection: the pool's and Redis' (also the job sender's)."""
        self.jobs.close()
        if self._redis is not None:
            await self._redis.aclose()
        await self.db.close()
