"""Error reports to Sentry (SENTRY_DSN): unhandled errors of web, worker and clock, with the
release, the environment and the request id; never secrets, key-carrying headers or bodies.

The SDK's own integrations report: FastAPI's and Starlette's (a request's unhandled error),
Dramatiq's (a job's error, each failed attempt; Sentry groups them into one issue) and the
default ones (a crash of a process). What they send passes `scrub` first. Local variables in
stack frames stay out (they may hold a secret). Imported only with SENTRY_DSN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
import structlog
from sentry_sdk.integrations.dramatiq import DramatiqIntegration
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

    from ..settings import Settings

FILTERED = "[Filtered]"
# Headers that carry credentials; an event never holds them (nor any other header: see below).
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "x-api-key", "proxy-authorization"}
)
# The context bound into our log lines (request, job) that an event carries as tags.
CONTEXT_TAGS = ("request_id", "job", "message_id", "scheduled")

_secrets: tuple[str, ...] = ()


def configure(settings: Settings, process_type: str) -> None:
    """Start the Sentry SDK for this process (before the jobs broker is built: Dramatiq's
    integration adds its middleware to every broker made after this)."""
    global _secrets  # noqa: PLW0603  # the settings' secrets, set once at start-up
    _secrets = tuple(settings.secret_values)
    assert settings.sentry_dsn is not None  # noqa: S101  # called only when it is set
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=settings.release_version,
        environment=settings.app_env,
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        auto_enabling_integrations=False,
        # Log records stay breadcrumbs: errors are reported once, by the integrations.
        integrations=[
            LoggingIntegration(event_level=None),
            StarletteIntegration(),
            FastApiIntegration(),
            DramatiqIntegration(),
        ],
        before_send=scrub,
    )
    sentry_sdk.set_tag("process_type", process_type)


def flush() -> None:
    """Send the reports still queued (bounded by the SDK's shutdown timeout, 2 s)."""
    sentry_sdk.flush()


def _without_secrets(value: Any) -> Any:
    if isinstance(value, str):
        return FILTERED if any(secret in value for secret in _secrets) else value
    if isinstance(value, dict):
        return {key: _without_secrets(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_secrets(item) for item in value]
    return value


def scrub(event: Event, _hint: Hint) -> Event | None:
    """before_send: tag the context, drop request headers that carry keys, bodies, cookies, and
    any string that holds a secret setting's value."""
    context = structlog.contextvars.get_contextvars()
    tags = event.setdefault("tags", {})
    for name in CONTEXT_TAGS:
        if name in context:
            tags[name] = str(context[name])
    request = event.get("request")
    if request is not None:
        request.pop("data", None)
        request.pop("cookies", None)
        headers = cast(dict[str, str], request.get("headers") or {})
        request["headers"] = {
            name: value for name, value in headers.items() if name.lower() not in SECRET_HEADERS
        }
    cleaned: Event = _without_secrets(event)
    return cleaned
