"""The web process: granian serves the app on $PORT with WEB_CONCURRENCY workers of its own.

granian does the server's work: it parses HTTP (the request head bounded at 16 KiB, answered
431 past it), runs the workers, starts a new one when one dies, and on SIGTERM stops taking
connections, lets the requests in flight finish and kills a worker that is still busy after
GRACEFUL_TIMEOUT. What runs here is the configuration of that server, nothing of its own.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
{%- if cookiecutter.observability %}
import sys
{%- endif %}
from functools import partial
from typing import TYPE_CHECKING

{% if cookiecutter.observability %}from ..core import observability
{% endif %}from ..core.logs import library_logging_config
{%- if cookiecutter.observability %}
from ..core.startup import EXIT_START, begin, fail
{%- else %}
from ..core.startup import begin
{%- endif %}

if TYPE_CHECKING:
    from starlette.types import ASGIApp

# The request line and headers must fit in this buffer (granian's minimum is 8 KiB): a bigger
# head is answered 431 and its connection closed, so memory stays bounded at the socket.
HEAD_BYTES = 16 * 1024
# A client has this long to send a request's head, then its connection is closed (ms).
HEAD_TIMEOUT_MS = 10_000


def app() -> ASGIApp:
    """What each granian worker serves: the app behind the trusted proxies' forwarded headers."""
    settings = begin("web")
    # Loaded by the workers, after the check.
    from granian.utils.proxies import wrap_asgi_with_proxy_headers  # noqa: PLC0415

    from .app import create_app  # noqa: PLC0415

    served: ASGIApp = wrap_asgi_with_proxy_headers(
        create_app(settings), [str(proxy) for proxy in settings.forwarded_allow_ips]
    )
    return served


# SIGTERM is held (blocked) while granian forks a worker, so a stop sent meanwhile is not lost.
_hold_sigterm = partial(signal.pthread_sigmask, signal.SIG_BLOCK, {signal.SIGTERM})
_release_sigterm = partial(signal.pthread_sigmask, signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_sigterm() -> None:
    """A forked worker would inherit the server process's SIGTERM handler, which does nothing in a
    worker: a stop sent while it loads the app would be lost and the worker kept until its kill
    timeout. Until granian installs its own handler, SIGTERM ends the worker at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _release_sigterm()


def main() -> None:
    """Entry point of the `web` process type."""
    settings = begin()  # a bad environment stops here (exit 78), before any worker starts
{%- if cookiecutter.observability %}
    try:
        observability.serve_web_metrics(settings)
    except observability.ObservabilityError as error:
        fail(str(error))
        sys.exit(EXIT_START)
{%- endif %}
    # The server is imported once the environment has passed: a refusal stays quick.
    from granian.constants import HTTPModes, Interfaces, Loops  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415
    from granian.log import LogLevels  # noqa: PLC0415
    from granian.server import Server  # noqa: PLC0415

    # Workers forked from this process start from its imports instead of loading them again
    # (from Python 3.14 on, granian would spawn them).
    multiprocessing.set_start_method("fork", force=True)
    os.register_at_fork(
        before=_hold_sigterm, after_in_parent=_release_sigterm, after_in_child=_default_sigterm
    )
    Server(
        f"{__name__}:app",
        factory=True,
        interface=Interfaces.ASGI,
        address="0.0.0.0",  # noqa: S104  # port binding: the platform routes to this port
        port=settings.port,
        workers=settings.web_concurrency,
        respawn_failed_workers=True,
        workers_kill_timeout=settings.graceful_timeout,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            max_buffer_size=HEAD_BYTES, header_read_timeout=HEAD_TIMEOUT_MS
        ),
        websockets=False,
        # asyncio's loop keeps a signal that arrives between the app's start-up and serving;
        # uvloop loses it (and the stop waits for the kill timeout), for ~10% more requests/s.
        loop=Loops.asyncio,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=library_logging_config(),
        log_access=False,
    ).serve()
