"""A fixed-window rate limit on writes per API key, kept in Redis: every web process shares it."""

from __future__ import annotations

from fastapi import HTTPException

from ...core.http.auth import CallerDep, count_in_window
from ...core.http.deps import ServicesDep, SettingsDep


async def limit_writes(caller: CallerDep, services: ServicesDep, settings: SettingsDep) -> None:
    """Answer 429 with Retry-After once a key made RATE_LIMIT_PER_MINUTE writes this minute.

    The limit follows the key, not the client address: an address can be shared (a NAT) or,
    behind a proxy not listed in FORWARDED_ALLOW_IPS, be the proxy's.
    """
    limit = settings.rate_limit_per_minute
    if limit == 0:
        return
    count, retry_after = await count_in_window(services, f"ratelimit:notes:{caller.key_id}")
    if count > limit:
        raise HTTPException(
            status_code=429, detail="too many requests", headers={"Retry-After": str(retry_after)}
        )
