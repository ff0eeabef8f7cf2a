"""Error responses: every error body is `{error, request_id}` JSON, written by error_response.

Handlers here answer what a request can meet: a known HTTP error, bad input (422), a backing
service that fails (503 naming it, logged once with the error's message) and, last, anything
else (500, logged with its traceback{% if cookiecutter.observability %}, reported to Sentry when on{% endif %}).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus

import asyncpg
import orjson
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

{% if cookiecutter.observability %}from .. import observability
{% endif %}from ..logs import get_logger
from ..settings import Settings
from ..startup import reason

log = get_logger("error")

# What a request can meet when PostgreSQL fails it: refused or unreachable (asyncpg lets the
# socket's OSError through; a pool wait that ran out is a TimeoutError, an OSError too), a lost
# connection, a wrong password or database name, too many connections, a server shutting down.
# redis-py raises its own ConnectionError or TimeoutError (a wrong password is a ConnectionError).
POSTGRES_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientResourcesError,
    asyncpg.CannotConnectNowError,
)
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


# Sent with every response but the docs' (middleware.py) and with the last-resort 500 here.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def unavailable_service(error: BaseException) -> str | None:
    """The backing service whose failure this error is ("PostgreSQL", "Redis"), or None."""
    if isinstance(error, REDIS_ERRORS):
        return "Redis"
    return "PostgreSQL" if isinstance(error, POSTGRES_ERRORS) else None


def request_id(scope: Scope) -> str | None:
    """The id the request-id middleware gave this request (None outside it)."""
    value = scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def error_response(
    status: int,
    message: str,
    rid: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    details: Sequence[object] | None = None,
) -> Response:
    """The one error body of the service: `{"error": message, "request_id": rid}`."""
    body: dict[str, object] = {"error": message, "request_id": rid}
    if details is not None:
        body["details"] = details
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def http_error(request: Request, exc: Exception) -> Response:
    """Known HTTP errors: the status phrase, or the route's own short reason."""
    assert isinstance(exc, HTTPException)  # noqa: S101  # registered for this type only
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, message, request_id(request.scope), headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    """Bad input: 422 naming each field and why, without echoing what was sent."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101  # registered for this type only
    details = [
        {"loc": list(item.get("loc", ())), "msg": item.get("msg"), "type": item.get("type")}
        for item in exc.errors()
    ]
    return error_response(422, "invalid request", request_id(request.scope), details=details)


def unavailable(scope: Scope, settings: Settings, error: BaseException) -> Response | None:
    """The 503 for a backing service's failure, logged once with the error's message; None
    when the error is not such a failure."""
    service = unavailable_service(error)
    if service is None:
        return None
    why = reason(error, settings.secret_values)
    log.error("backing service unavailable", service=service, error=why)
    return error_response(503, f"{service} unavailable", request_id(scope))


async def backing_service_error(request: Request, exc: Exception) -> Response:
    """A backing service failed the request: 503 naming it (registered for those errors only)."""
    response = unavailable(request.scope, request.app.state.settings, exc)
    assert response is not None  # noqa: S101  # registered for these errors only
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    """The last resort (Starlette's ServerErrorMiddleware, outside every other middleware): a
    generic 500 carrying the request id and the API's security headers, the error logged."""
    rid = request_id(request.scope)
    log.error(
        "unhandled error",
        method=request.method,
        path=request.url.path,
        request_id=rid,
        exc_info=exc,
    )
{%- if cookiecutter.observability %}
    observability.tag_error(request_id=rid)
{%- endif %}
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    if rid is not None:
        headers["x-request-id"] = rid
    return error_response(500, "internal server error", rid, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error the service meets with error_response."""
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for error in (*POSTGRES_ERRORS, *REDIS_ERRORS):
        app.add_exception_handler(error, backing_service_error)
    app.add_exception_handler(Exception, server_error)
