"""A fixed-window rate limit on writes, kept in Redis so every web process shares it."""

from __future__ import annotations

import time

from fastapi import HTTPException, Request

from ..api.deps import ServicesDep, SettingsDep

WINDOW_SECONDS = 60


async def limit_writes(request: Request, services: ServicesDep, settings: SettingsDep) -> None:
    """Answer 429 with Retry-After once a client made RATE_LIMIT_PER_MINUTE writes this minute."""
    limit = settings.rate_limit_per_minute
    if limit == 0:
        return
    client = request.client.host if request.client else "unknown"
    window = int(time.time()) // WINDOW_SECONDS
    key = f"ratelimit:notes:{client}:{window}"
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS)
        count, _ = await pipe.execute()
    if int(count) > limit:
        retry_after = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
        raise HTTPException(
            status_code=429,
            detail="too many requests",
            headers={"Retry-After": str(retry_after)},
        )
