"""Pure ASGI middleware: request id, host allowlist, security headers, access log and request
metrics, last 500."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterable

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import observability
from .errors import unavailable_service
from .logs import get_logger

REQUEST_ID_HEADER = b"x-request-id"
# Ids we accept from a caller: short, printable, no room for log injection.
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{8,128}$")
# Probes come from the platform with whatever Host it likes (a kubelet uses the pod IP).
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
_API_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
_DOCS_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]

# Bounds on what a request may carry before its body, checked before any route runs. uvicorn's
# h11 parser closes a connection whose unfinished request line or headers pass 16 KiB, so
# memory stays bounded at the socket; these answer what arrived whole but too large.
MAX_TARGET_BYTES = 8 * 1024  # path and query string
MAX_HEADER_BYTES = 16 * 1024  # every header name and value together
_PLAIN_TEXT = (b"content-type", b"text/plain; charset=utf-8")
CONTENT_TOO_LARGE = 413

error_log = get_logger("error")
access_log = get_logger("access")


class _RequestIds:
    """Ids for requests that bring none: a random prefix per process and a counter, 32 hex
    characters like a uuid4 without its syscall. A forked child draws a prefix of its own."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> bytes:
        return f"{self._prefix}{next(self._counter):016x}".encode()


_request_ids = _RequestIds()


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


async def _send_json(send: Send, status: int, body: dict[str, object], request_id: bytes) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (REQUEST_ID_HEADER, request_id),
                *_API_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _oversized(scope: Scope) -> tuple[int, str] | None:
    """414 or 431 (and why) when the target or the headers pass their bound, else None."""
    target = scope.get("raw_path") or scope["path"].encode()
    if len(target) + len(scope["query_string"]) > MAX_TARGET_BYTES:
        return 414, "request target too long"
    if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
        return 431, "request headers too large"
    return None


class RequestContextMiddleware:
    """Gives every HTTP request an id, checks its Host, adds security headers and logs it once."""

    # One request's whole path through the service, kept in one function: the hot path.

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.any_host = "*" in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: PLR0915
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = value
                break
        if not _REQUEST_ID.match(request_id):
            request_id = _request_ids.next()
        rid = request_id.decode()
        # Each request runs in a task of its own, so its context starts empty; the reset is for
        # callers that run requests in their own task (tests).
        tokens = structlog.contextvars.bind_contextvars(request_id=rid)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope["path"]
        extra_headers = _DOCS_HEADERS if path.startswith(DOCS_PATHS) else _API_HEADERS
        status = 500
        response_started = False
        replaced = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started, replaced
            if replaced:
                return  # the body of a response already answered in JSON below
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                if status == CONTENT_TOO_LARGE and _PLAIN_TEXT in message.get("headers", ()):
                    # Starlette's body limit answers in plain text when its error escapes the
                    # routes (a Content-Length over the limit): the same JSON as every error.
                    replaced = True
                    await _send_json(
                        send, 413, {"error": "content too large", "request_id": rid}, request_id
                    )
                    return
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, request_id),
                    *extra_headers,
                ]
            await send(message)

        observability.request_started()
        try:
            too_large = _oversized(scope)
            if too_large is not None:
                status = too_large[0]
                await _send_json(
                    send, status, {"error": too_large[1], "request_id": rid}, request_id
                )
            elif (
                not self.any_host
                and path not in PROBE_PATHS
                and not _host_matches(_request_host(scope), self.allowed_hosts)
            ):
                status = 400
                await _send_json(
                    send, 400, {"error": "invalid host", "request_id": rid}, request_id
                )
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as error:
            service = unavailable_service(error)
            if service is None:
                error_log.exception("unhandled error", method=scope["method"], path=path)
                observability.report_error(error, method=scope["method"], path=path)
            else:
                error_log.warning(
                    "backing service unavailable", service=service, error=type(error).__name__
                )
            if not response_started:
                status, message = (
                    (500, "internal server error")
                    if service is None
                    else (503, f"{service} unavailable")
                )
                await _send_json(send, status, {"error": message, "request_id": rid}, request_id)
        finally:
            seconds = time.perf_counter() - started
            client = scope.get("client")
            access_log.info(
                "request",
                method=scope["method"],
                path=path,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client=client[0] if client else None,
            )
            observability.request_ended(scope, status, seconds)
            structlog.contextvars.reset_contextvars(**tokens)
