"""Who may call /api: a Bearer API key, checked on every request; failures limited per client.

The scheme is declared with FastAPI's HTTPBearer, so the OpenAPI schema shows it. A missing or
wrong key answers 401 with `WWW-Authenticate: Bearer`; past AUTH_FAILURES_PER_MINUTE failures
from one client address in a minute, 429. Only failures are counted (in Redis), so a request
with a good key costs one indexed lookup in PostgreSQL and nothing in Redis.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..apikeys.service import Caller, authenticate
from .deps import DatabaseDep, ServicesDep, SettingsDep

WINDOW_SECONDS = 60
bearer = HTTPBearer(auto_error=False, description="An API key from `-admin api-keys create`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def client_address(request: Request) -> str:
    """The client's address: the peer, or what a trusted proxy (FORWARDED_ALLOW_IPS) says."""
    return request.client.host if request.client else "unknown"


async def count_in_window(services: ServicesDep, key: str) -> tuple[int, int]:
    """Add one to this minute's counter `key` in Redis; (count, seconds left in the window)."""
    now = int(time.time())
    window_key = f"{key}:{now // WINDOW_SECONDS}"
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(window_key)
        pipe.expire(window_key, WINDOW_SECONDS)
        count, _ = await pipe.execute()
    return int(count), WINDOW_SECONDS - now % WINDOW_SECONDS


async def require_key(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller of this request, or 401 (429 after too many failures from one address)."""
    caller = None
    if credentials is not None:
        caller = await authenticate(db, settings, credentials.credentials)
    if caller is None:
        limit = settings.auth_failures_per_minute
        if limit:
            count, retry_after = await count_in_window(
                services, f"authfail:{client_address(request)}"
            )
            if count > limit:
                headers = {"Retry-After": str(retry_after)}
                raise HTTPException(429, "too many failed authentications", headers)
        detail = "missing API key" if credentials is None else "invalid API key"
        raise HTTPException(401, detail, CHALLENGE)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(require_key)]
