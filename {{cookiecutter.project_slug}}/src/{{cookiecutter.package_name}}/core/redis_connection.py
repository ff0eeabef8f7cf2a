"""How every process connects to Redis: one set of options, for the async or blocking client."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from .settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """REDIS_URL's client options: every wait bounded by REDIS_TIMEOUT, idle connections
    checked before reuse after 30 s."""
    return {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "health_check_interval": 30,
    }


def async_client(settings: Settings) -> redis.asyncio.Redis:
    """An asyncio client (web, admin); it connects on first use and decodes replies to str."""
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
        settings.redis_url.get_secret_value(), decode_responses=True, **client_options(settings)
    )
    return client


def blocking_client(settings: Settings) -> redis.Redis:
    """A blocking client (the broker of worker, clock and the web's job sender)."""
    client: redis.Redis = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), **client_options(settings)
    )
    return client
