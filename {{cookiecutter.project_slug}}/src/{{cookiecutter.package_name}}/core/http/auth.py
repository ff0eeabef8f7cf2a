"""Who may call /api: a Bearer API key, checked before anything else of the request is read.

Starlette's AuthenticationMiddleware runs ApiKeyBackend on every request to /api; a missing or
wrong key is answered 401 with `WWW-Authenticate: Bearer` before the body is parsed, and past
AUTH_FAILURES_PER_MINUTE failures from one client address in a minute, 429. A key the process
accepted lately costs no query (core/apikeys/accepted.py); only failures are counted (in Redis).
The `require_key` dependency declares the scheme in the OpenAPI schema and hands routes the
caller.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..apikeys.service import Caller, authenticate
from ..settings import Settings
from .errors import POSTGRES_ERRORS, REDIS_ERRORS, error_response, request_id, unavailable
from .services import BackingServices

API_PREFIX = "/api/"
WINDOW_SECONDS = 60
SCHEME = "Bearer "
bearer = HTTPBearer(auto_error=False, description="An API key from `-admin api-keys create`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class KeyRefusedError(AuthenticationError):
    """A request to /api that brings no valid key: its status, reason and headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


async def count_in_window(services: BackingServices, key: str) -> tuple[int, int]:
    """Add one to this minute's counter `key` in Redis; (count, seconds left in the window)."""
    now = int(time.time())
    window_key = f"{key}:{now // WINDOW_SECONDS}"
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(window_key)
        pipe.expire(window_key, WINDOW_SECONDS)
        count, _ = await pipe.execute()
    return int(count), WINDOW_SECONDS - now % WINDOW_SECONDS


def _bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header is None or header[: len(SCHEME)].lower() != SCHEME.lower():
        return None
    return header[len(SCHEME) :].strip() or None


class BackingServiceFailedError(AuthenticationError):
    """PostgreSQL or Redis failed while a key was checked (a 503, as anywhere else)."""


class ApiKeyBackend(AuthenticationBackend):
    """Authenticates requests to /api by their Bearer key; other paths pass untouched."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Caller] | None:
        if not conn.scope["path"].startswith(API_PREFIX):
            return None
        try:
            return await self._check(conn)
        except (*POSTGRES_ERRORS, *REDIS_ERRORS) as error:
            raise BackingServiceFailedError from error

    async def _check(self, conn: HTTPConnection) -> tuple[AuthCredentials, Caller]:
        state = conn.app.state
        settings: Settings = state.settings
        services: BackingServices = state.services
        key = _bearer_token(conn)
        caller = None
        if key is not None:
            caller = await authenticate(services.db, settings, key, services.accepted_keys)
        if caller is None:
            limit = settings.auth_failures_per_minute
            if limit:
                client = conn.client.host if conn.client else "unknown"
                count, retry_after = await count_in_window(services, f"authfail:{client}")
                if count > limit:
                    raise KeyRefusedError(
                        429, "too many failed authentications", {"Retry-After": str(retry_after)}
                    )
            raise KeyRefusedError(
                401, "missing API key" if key is None else "invalid API key", CHALLENGE
            )
        return AuthCredentials(["api"]), caller


def refused(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """The answer to a request ApiKeyBackend refused (AuthenticationMiddleware's on_error)."""
    if isinstance(exc, KeyRefusedError):
        return error_response(exc.status, exc.message, request_id(conn.scope), headers=exc.headers)
    if isinstance(exc, BackingServiceFailedError) and exc.__cause__ is not None:
        response = unavailable(conn.scope, conn.app.state.settings, exc.__cause__)
        if response is not None:
            return response
    return error_response(401, "invalid API key", request_id(conn.scope), headers=CHALLENGE)


async def require_key(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller of this request, authenticated by ApiKeyBackend before the route was found."""
    caller: Caller = request.user
    return caller


CallerDep = Annotated[Caller, Depends(require_key)]
