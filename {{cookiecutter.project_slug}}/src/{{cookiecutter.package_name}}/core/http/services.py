"""The web process's backing services as attached resources: opened at start-up, closed at exit."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from ..apikeys.accepted import AcceptedKeys, RevocationListener
from ..db.pool import Database
from ..redis_connection import async_client
from ..settings import Settings


@dataclass(slots=True)
class BackingServices:
    """The handles web uses to reach PostgreSQL (pool) and Redis (client),
    and the API keys it accepted lately, kept current by the revocations it listens for."""

    settings: Settings
    db: Database
    accepted_keys: AcceptedKeys
    revocations: RevocationListener
    _redis: Redis | None = field(default=None, init=False)

    @classmethod
    async def open(cls, settings: Settings) -> BackingServices:
        """Build the handles; the pool and Redis connect on first use, the revocation listener
        in the background."""
        accepted = AcceptedKeys(settings.api_key_cache_seconds)
        revocations = RevocationListener(settings, accepted)
        revocations.start()
        database = await Database.open(settings)
        return cls(settings, database, accepted, revocations)

    @property
    def redis(self) -> Redis:
        """The Redis client, built on first use (it connects then)."""
        if self._redis is None:
            self._redis = async_client(self.settings)
        return self._redis

    async def close(self) -> None:
        """Return every connection: the pool's and Redis'."""
        await self.revocations.stop()
        if self._redis is not None:
            await self._redis.aclose()
        await self.db.close()
