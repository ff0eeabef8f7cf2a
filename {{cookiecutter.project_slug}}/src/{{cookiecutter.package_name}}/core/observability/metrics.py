"""Prometheus metrics with prometheus_client, served at /metrics on METRICS_PORT (never on PORT).

Web counts requests by route template, method and status; the worker counts jobs by outcome and
reads the queue depths and dead letters from Redis at each scrape; the clock counts the jobs it
enqueued. Web's workers write their values to files (prometheus_client's multiprocess mode, in
a directory granian's server process makes) and that process serves their sum. Imported only
when METRICS_PORT is set; for web, only after PROMETHEUS_MULTIPROC_DIR is set (__init__.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as serve_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import Scope

from ..logs import get_logger
from . import ObservabilityError

if TYPE_CHECKING:
    from ..settings import Settings

UNMATCHED = "unmatched"  # the route label of a request no route took (a 404): bounded labels
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

log = get_logger("metrics")

REQUESTS = Counter("http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to its response's end",
    ["method", "route", "status"],
)
IN_FLIGHT = Gauge(
    "http_requests_in_flight", "HTTP requests being answered", multiprocess_mode="livesum"
)
POOL_SIZE = Gauge(
    "db_pool_connections", "PostgreSQL connections open in the pool", multiprocess_mode="livesum"
)
POOL_IDLE = Gauge(
    "db_pool_idle_connections",
    "PostgreSQL connections open and idle in the pool",
    multiprocess_mode="livesum",
)
JOBS = Counter("jobs", "Jobs run, by outcome: done, retried or failed (dead)", ["job", "outcome"])
SCHEDULED = Counter(
    "clock_jobs_scheduled", "Jobs the clock enqueued, by schedule entry", ["schedule"]
)
JOB_DURATION = Histogram(
    "job_duration_seconds", "Time a job ran, by outcome", ["job", "outcome"], buckets=JOB_BUCKETS
)


def serve(settings: Settings, process_type: str, shared: str | None = None) -> None:
    """Serve /metrics on METRICS_PORT from this process (web's server process reading the values
    its workers write to the `shared` directory)."""
    assert settings.metrics_port is not None  # noqa: S101  # called only when it is set
    registry: Collector = REGISTRY
    if shared is not None:
        multiprocess = CollectorRegistry()
        MultiProcessCollector(multiprocess, path=shared)  # type: ignore[no-untyped-call]
        registry = multiprocess
    # All interfaces, like $PORT: the scraper reaches the host's address; the port is its own.
    try:
        serve_metrics(settings.metrics_port, addr="0.0.0.0", registry=registry)  # noqa: S104
    except OSError as error:
        raise ObservabilityError(
            f"METRICS_PORT {settings.metrics_port} cannot be served ({error.strerror})"
        ) from None
    log.info("metrics served", port=settings.metrics_port, process=process_type)


def route_template(scope: Scope) -> str:
    """The template of the route that took the request: `/api/v1/notes/{note_id}`.

    FastAPI puts the matched route in the scope; an included router's route knows its path below
    the router's prefix only, and the prefix is that many segments of the request's path less.
    """
    path: str = scope["path"]
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        # A plain Starlette route (the probes) leaves its endpoint only; without parameters
        # its path is its template.
        matched = "endpoint" in scope and not scope.get("path_params")
        return path if matched else UNMATCHED
    if ":path}" in template:  # a path-converter template spans any number of segments
        return template
    kept = path.count("/") - template.count("/") + 1
    return "/".join(path.split("/")[:kept]) + template if kept > 1 else template


def request_started() -> None:
    """A request arrived (the access-log middleware, core/http, calls this and the next)."""
    IN_FLIGHT.inc()


def request_ended(scope: Scope, status: int, seconds: float) -> None:
    """Count and time a request by its route template, method and final status."""
    IN_FLIGHT.dec()
    labels = (scope["method"], route_template(scope), str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_DURATION.labels(*labels).observe(seconds)
    services = getattr(scope["app"].state, "services", None)
    if services is not None:
        size, idle = services.db.usage()
        POOL_SIZE.set(size)
        POOL_IDLE.set(idle)


def job_ended(job: str, outcome: str, seconds: float) -> None:
    """Count and time a job by its outcome."""
    JOBS.labels(job, outcome).inc()
    JOB_DURATION.labels(job, outcome).observe(seconds)


class QueueCollector(Collector):
    """A queue's depths and dead letters, read from Redis at each scrape (core/jobs/queues.py)."""

    def __init__(self, queue: str, depths: Callable[[], Mapping[str, int]]) -> None:
        self.queue = queue
        self.depths = depths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depths = self.depths()
        except Exception as error:  # a scrape must answer even when Redis does not
            log.warning("queue depths unavailable", error=type(error).__name__)
            return
        depth = GaugeMetricFamily(
            "jobs_queue_depth", "Messages in the job queue, by state", labels=["queue", "state"]
        )
        for state in ("waiting", "in_progress", "delayed"):
            depth.add_metric([self.queue, state], depths[state])
        yield depth
        dead = GaugeMetricFamily(
            "jobs_dead_letters", "Messages that failed their last retry", labels=["queue"]
        )
        dead.add_metric([self.queue], depths["dead"])
        yield dead


def watch_queue(queue: str, depths: Callable[[], Mapping[str, int]]) -> None:
    """Publish a queue's depths in /metrics."""
    REGISTRY.register(QueueCollector(queue, depths))
