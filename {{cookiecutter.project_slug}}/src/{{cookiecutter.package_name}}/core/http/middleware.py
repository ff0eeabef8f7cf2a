"""Pure ASGI middleware, one concern each: request ids, the access line, security headers, the
host allowlist and the body limit. processes/app.py stacks them; Starlette's own middleware
does the rest (CORS, API-key authentication, the last-resort error)."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterable

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

{% if cookiecutter.observability %}from .. import observability
{% endif %}from ..logs import get_logger
from .errors import SECURITY_HEADERS, error_response, request_id

REQUEST_ID_HEADER = b"x-request-id"
# Ids we accept from a caller: short, printable, no room for log injection.
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{8,128}$")
# Probes come from the platform with whatever Host it likes (an orchestrator probes by IP).
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
DOCS_PATHS = ("/docs", "/openapi.json")
# The docs page loads its script and styles, so it gets no content-security-policy.
_DOCS_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))

access_log = get_logger("access")


class _RequestIds:
    """Ids for requests that bring none: a random prefix per process and a counter, 32 hex
    characters like a uuid4 without its syscall. A forked worker draws a prefix of its own."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> bytes:
        return f"{self._prefix}{next(self._counter):016x}".encode()


_request_ids = _RequestIds()


def _with_headers(send: Send, headers: Iterable[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `headers` to the response's start message."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return send_with_headers


class RequestIdMiddleware:
    """Gives every HTTP request an id (the caller's X-Request-ID when well formed), binds it to
    every log line written while the request runs, and returns it as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                given = value
                break
        rid = given if _REQUEST_ID.match(given) else _request_ids.next()
        text = rid.decode()
        scope.setdefault("state", {})["request_id"] = text

        # Each request runs in a task of its own, so its context starts empty; the reset is for
        # callers that run requests in their own task (tests).
        tokens = structlog.contextvars.bind_contextvars(request_id=text)
        try:
            await self.app(scope, receive, _with_headers(send, [(REQUEST_ID_HEADER, rid)]))
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


class AccessLogMiddleware:
{%- if cookiecutter.observability %}
    """One access line per request (method, path, status, duration, client), and the request
    metrics when METRICS_PORT is set. A request that raised is logged as the 500 it became."""
{%- else %}
    """One access line per request (method, path, status, duration, client). A request that
    raised is logged as the 500 it became."""
{%- endif %}

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

{% if cookiecutter.observability %}        observability.request_started()
{% endif %}        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            client = scope.get("client")
            access_log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client=client[0] if client else None,
            )
{%- if cookiecutter.observability %}
            observability.request_ended(scope, status, seconds)
{%- endif %}


class SecurityHeadersMiddleware:
    """Headers that keep a browser from sniffing, framing or caching what the API returns."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _DOCS_HEADERS if scope["path"].startswith(DOCS_PATHS) else SECURITY_HEADERS
        await self.app(scope, receive, _with_headers(send, extra))


def _host_matches(host: str, allowed: Iterable[str]) -> bool:
    for pattern in allowed:
        if pattern in ("*", host):
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _request_host(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            host: str = value.decode("latin-1").lower()
            if host.startswith("["):  # IPv6 literal, maybe with a port
                return host.split("]", 1)[0] + "]"
            return host.rsplit(":", 1)[0] if ":" in host else host
    return ""


class AllowedHostsMiddleware:
    """Refuses a request whose Host is not in ALLOWED_HOSTS with a 400, except the probes."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] not in PROBE_PATHS
            and not _host_matches(_request_host(scope), self.allowed_hosts)
        ):
            await error_response(400, "invalid host", request_id(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses a request body over MAX_BODY_SIZE with a 413: at once when its Content-Length says
    so, else when the bytes received pass the limit (a chunked body), as the HTTPException that
    the error handlers answer. Starlette's own limit answers in plain text (docs/own-code.md)."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_size:
                response = error_response(413, "content too large", request_id(scope))
                await response(scope, receive, send)
                return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    raise HTTPException(413, "content too large")
            return message

        await self.app(scope, receive_within_limit, send)
