"""Error responses: a generic JSON body {error, request_id}, never a stack trace or internals."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response


def json_response(
    body: dict[str, object], status_code: int, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status_code, headers, media_type="application/json")


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


async def http_error(request: Request, exc: Exception) -> Response:
    """Known HTTP errors: the status phrase, or the route's own short reason."""
    assert isinstance(exc, HTTPException)  # noqa: S101  # registered for this type only
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return json_response(
        {"error": message, "request_id": _request_id(request)}, exc.status_code, exc.headers
    )


async def validation_error(request: Request, exc: Exception) -> Response:
    """Bad input: 422 naming each field and why, without echoing what was sent."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101  # registered for this type only
    details = [
        {"loc": list(item.get("loc", ())), "msg": item.get("msg"), "type": item.get("type")}
        for item in exc.errors()
    ]
    return json_response(
        {"error": "invalid request", "request_id": _request_id(request), "details": details}, 422
    )


# Errors that mean a backing service is down or overloaded, not that the request is bad. Matched
# by the module that raised them, so web imports neither client library to tell them apart.
_UNAVAILABLE = (
    ("redis.", "Redis"),
    ("asyncpg.", "PostgreSQL"),
)
_POSTGRES_DOWN = (ConnectionError, TimeoutError, OSError)


def unavailable_service(error: BaseException) -> str | None:
    """The backing service whose failure this error is ("PostgreSQL", "Redis"), or None."""
    for cls in type(error).__mro__:
        for prefix, service in _UNAVAILABLE:
            if cls.__module__.startswith(prefix) and _is_outage(error, service):
                return service
    if isinstance(error, _POSTGRES_DOWN):  # the pool could not connect or timed out waiting
        return "PostgreSQL"
    return None


def _is_outage(error: BaseException, service: str) -> bool:
    if service == "Redis":
        return True  # redis-py raises only for connection, timeout and server errors here
    # asyncpg: connection and interface errors, or a server that refuses new sessions.
    name = type(error).__name__
    return any(word in name for word in ("Connection", "Interface", "CannotConnectNow", "TooMany"))


def install_error_handlers(app: FastAPI) -> None:
    """Replace FastAPI's default error bodies with ours."""
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
