"""Traces, metrics and error reports, each switched on by its own variable (docs/observability.md).

This module imports none of OpenTelemetry, prometheus_client or sentry_sdk: `configure` imports
the part whose variable is set, and every hook below does nothing for a part that is off, so a
process with none of them set loads none of these packages (tests/test_observability.py).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..settings import set_library_variable

if TYPE_CHECKING:
    from dramatiq import Middleware
    from fastapi.telemetry import TelemetryConfig
    from starlette.types import Scope
    from structlog.typing import Processor

    from ..settings import Settings


class ObservabilityError(Exception):
    """A part that was asked for cannot start (its port is taken); the message says which."""


@dataclass(slots=True)
class _Switches:
    process_type: str = ""
    tracing: bool = False
    metrics: bool = False
    errors: bool = False


_on = _Switches()


def configure(settings: Settings, process_type: str) -> list[Processor]:
    """Switch on what the settings ask for in this process; the log processors it adds."""
    processors: list[Processor] = []
    _on.process_type = process_type
    if settings.sentry_dsn is not None:
        from . import errors  # noqa: PLC0415  # only when SENTRY_DSN is set

        errors.configure(settings, process_type)
        _on.errors = True
    if settings.otel_exporter_otlp_endpoint:
        from . import tracing  # noqa: PLC0415  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set

        tracing.configure(settings, process_type)
        processors.append(tracing.add_trace_ids)
        _on.tracing = True
    if settings.metrics_port is not None:
        from . import metrics  # noqa: PLC0415  # only when METRICS_PORT is set

        # A web worker records into the files its server process serves (serve_web_metrics).
        if process_type != "web":
            metrics.serve(settings, process_type)
        _on.metrics = True
    return processors


def serve_web_metrics(settings: Settings) -> None:
    """In web's server process, when METRICS_PORT is set: serve /metrics as the sum of what every
    worker records. prometheus_client's multiprocess mode: the workers write their values to files
    in a directory of this process's own, which goes when it exits. The variable must be set
    before prometheus_client is imported, so before any worker starts."""
    if settings.metrics_port is None:
        return
    directory = tempfile.mkdtemp(prefix="metrics-")
    set_library_variable("PROMETHEUS_MULTIPROC_DIR", directory)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    from . import metrics  # noqa: PLC0415  # only when METRICS_PORT is set

    metrics.serve(settings, "web", shared=directory)


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry tracing: a server span per request named by its route
    template, with its status, while tracing is on. FastAPI's metrics and log records stay off
    (Prometheus and structlog have those), and so do its spans per dependency and serialization."""
    return {"tracing": _on.tracing, "metrics": False, "logs": False, "operation_spans": False}


def request_started() -> None:
    """A request arrived: called by the request middleware for every HTTP request."""
    if _on.metrics:
        from .metrics import request_started as started  # noqa: PLC0415

        started()


def request_ended(scope: Scope, status: int, seconds: float) -> None:
    """A request was answered with `status` after `seconds` (the access line's figures)."""
    if _on.metrics:
        from .metrics import request_ended as ended  # noqa: PLC0415

        ended(scope, status, seconds)


def job_middleware() -> list[Middleware]:
    """Dramatiq middleware of the parts switched on, to go first on the broker: the trace spans
    every other hook. (Sentry's Dramatiq integration adds its own middleware itself.)"""
    if _on.tracing:
        from .tracing import TraceContext  # noqa: PLC0415

        return [TraceContext()]
    return []


def job_ended(job: str, outcome: str, seconds: float) -> None:
    """Count and time a job by its outcome: done, retried or failed (core/jobs/broker.py)."""
    if _on.metrics:
        from .metrics import job_ended as ended  # noqa: PLC0415

        ended(job, outcome, seconds)


def watch_queue(queue: str, depths: Callable[[], Mapping[str, int]]) -> None:
    """Publish a queue's depths and dead letters in /metrics (worker), read by `depths` at
    each scrape."""
    if _on.metrics:
        from .metrics import watch_queue as watch  # noqa: PLC0415

        watch(queue, depths)


def tag_error(**tags: str | None) -> None:
    """Tag the error being handled: Sentry's Starlette integration reports it as it leaves the
    app, once the request's log context is gone (nothing while Sentry is off)."""
    if _on.errors:
        import sentry_sdk  # noqa: PLC0415

        for name, value in tags.items():
            sentry_sdk.set_tag(name, value)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span of our own around a block (the clock's tick); nothing when tracing is off."""
    if not _on.tracing:
        yield
        return
    from .tracing import span as traced  # noqa: PLC0415

    with traced(name, **attributes):
        yield


def count_scheduled(schedule: str) -> None:
    """Count a job the clock enqueued for a schedule entry."""
    if _on.metrics:
        from .metrics import SCHEDULED  # noqa: PLC0415

        SCHEDULED.labels(schedule).inc()


def shutdown() -> None:
    """Send what is still buffered (spans, error reports) before the process exits; for exits
    that skip atexit (os._exit), where the SDKs would do it themselves."""
    if _on.tracing:
        from .tracing import shutdown as stop_tracing  # noqa: PLC0415

        stop_tracing()
    if _on.errors:
        from .errors import flush  # noqa: PLC0415

        flush()
