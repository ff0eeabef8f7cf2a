"""Traces, metrics and error reports over their real protocols, received on loopback; and none of
their packages loaded while their variables are unset."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from dramatiq.brokers.redis import RedisBroker
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from prometheus_client.parser import text_string_to_metric_families

from support import (
    FAST_JOBS,
    TEST_SECRET,
    Service,
    auth,
    base_redis_url,
    free_port,
    insert_note,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.process

# FastAPI itself imports the OpenTelemetry API (a no-op until an SDK is installed); what
# tracing adds is the SDK, its exporter and the instrumentations.
OBSERVABILITY_PACKAGES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
    "prometheus_client",
    "sentry_sdk",
)


class _Receiver(ThreadingHTTPServer):
    """A loopback HTTP server that keeps the body of every POST it is sent."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.bodies)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        with self.server.lock:
            self.server.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    yield server
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class _Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def _spans(receiver: _Receiver) -> list[_Span]:
    """Every span the receiver was sent over OTLP/HTTP, decoded with opentelemetry-proto."""
    spans = []
    for path, body in receiver.received():
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {}
                    for attribute in span.attributes:
                        value = attribute.value
                        attributes[attribute.key] = getattr(value, value.WhichOneof("value"))
                    spans.append(
                        _Span(
                            resource["service.name"],
                            span.name,
                            span.kind,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                        )
                    )
    return spans


def _is_db(span: _Span, system: str | None = None) -> bool:
    """A client span of a database call (of that system): old and new semantic conventions."""
    found = span.attributes.get("db.system.name", span.attributes.get("db.system"))
    return found is not None and system in (None, found)


def _env(database_url: str, **overrides: str) -> dict[str, str]:
    return service_env(
        DATABASE_URL=database_url, REDIS_URL=base_redis_url(), **(FAST_JOBS | overrides)
    )


def _tracing(receiver: _Receiver) -> dict[str, str]:
    # Spans are exported in batches; a short delay makes the test quick.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.mark.usefixtures("redis_sync")
def test_a_request_its_queries_and_the_job_it_enqueued_are_one_trace(
    database_url: str, receiver: _Receiver
) -> None:
    port = free_port()
    env = _env(database_url, PORT=str(port), **_tracing(receiver))
    worker = Service("worker", env)
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        worker.wait_for("worker started")
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/notes",
            json={"title": "t", "body": "traced words"},
            headers=auth(database_url),
        )
        assert created.status_code == 201
        worker.wait_for("job done", job="refresh_note_stats")

        def request_trace() -> list[_Span]:
            spans = _spans(receiver)
            roots = [s for s in spans if s.name == "POST /api/v1/notes"]
            if not roots:
                return []
            trace = [s for s in spans if s.trace_id == roots[0].trace_id]
            job = [s for s in trace if s.name == "refresh_note_stats process"]
            job_db = [s for s in trace if s.service.endswith("-worker") and _is_db(s)]
            return trace if job and job_db else []

        trace = wait_until(request_trace, 10)
    finally:
        codes = [web.stop(), worker.stop()]
    assert codes == [0, 0]
    (request,) = [s for s in trace if s.name == "POST /api/v1/notes"]
    assert request.kind == SpanProto.SPAN_KIND_SERVER
    assert request.service == "{{ cookiecutter.project_slug }}-web"
    assert request.attributes["http.route"] == "/api/v1/notes"
    status = request.attributes.get(
        "http.response.status_code", request.attributes.get("http.status_code")
    )
    assert status == 201
    web_spans = [s for s in trace if s.service.endswith("-web")]
    assert any(_is_db(s, "postgresql") for s in web_spans)
    assert any(_is_db(s, "redis") for s in web_spans)
    (job,) = [s for s in trace if s.name == "refresh_note_stats process"]
    assert job.service == "{{ cookiecutter.project_slug }}-worker"
    assert job.kind == SpanProto.SPAN_KIND_CONSUMER
    assert any(s.parent_id == job.span_id and _is_db(s, "postgresql") for s in trace)
    # Log lines carry the ids of the span they were written in.
    access = web.events("request", path="/api/v1/notes", status=201)[0]
    assert access["trace_id"] == request.trace_id
    done = worker.events("job done", job="refresh_note_stats")[0]
    assert (done["trace_id"], done["span_id"]) == (job.trace_id, job.span_id)
    # The worker's polling of Redis, outside any job, is not a trace of its own.
    assert all(s.parent_id or s.kind != SpanProto.SPAN_KIND_CLIENT for s in _spans(receiver))


@pytest.mark.usefixtures("redis_sync")
def test_each_clock_tick_is_a_trace_continued_by_the_jobs_it_scheduled(
    database_url: str, receiver: _Receiver
) -> None:
    env = _env(database_url, CLOCK_TICK_SECONDS="0.5", **_tracing(receiver))
    clock = Service("clock", env)
    worker = Service("worker", env)
    try:
        worker.wait_for("job done", timeout=15, job="report_queue_depths")

        def tick_with_job() -> list[_Span]:
            spans = _spans(receiver)
            ticks = {s.trace_id for s in spans if s.name == "clock tick"}
            return [
                s for s in spans if s.name == "report_queue_depths process" and s.trace_id in ticks
            ]

        jobs = wait_until(tick_with_job, 10)
    finally:
        codes = [clock.stop(), worker.stop()]
    assert codes == [0, 0]
    ticks = [s for s in _spans(receiver) if s.name == "clock tick"]
    assert {s.service for s in ticks} == {"{{ cookiecutter.project_slug }}-clock"}
    assert all(s.parent_id == "" and isinstance(s.attributes["tick"], int) for s in ticks)
    assert jobs[0].service == "{{ cookiecutter.project_slug }}-worker"


def _metrics(port: int) -> dict[str, list[Any]]:
    """/metrics on a metrics port, parsed by prometheus_client's own parser: name -> samples."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def _value(samples: list[Any], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return float(sum(found))


@pytest.mark.parametrize("concurrency", ["1", "2"])
@pytest.mark.usefixtures("redis_sync")
def test_web_serves_request_metrics_on_its_metrics_port_only(
    database_url: str, committed: psycopg.Connection, concurrency: str
) -> None:
    port, metrics_port = free_port(), free_port()
    note_id = insert_note(committed)
    env = _env(
        database_url, PORT=str(port), METRICS_PORT=str(metrics_port), WEB_CONCURRENCY=concurrency
    )
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        with httpx.Client(headers=auth(database_url)) as http:
            for _ in range(10):  # several connections: with two processes, both answer some
                answered = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/notes/{note_id}", headers=auth(database_url)
                )
                assert answered.status_code == 200
            assert http.get(f"http://127.0.0.1:{port}/api/v1/notes/999999999").status_code == 404
            assert http.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        families = _metrics(metrics_port)
    finally:
        code = web.stop()
    assert code == 0
    route = {"route": "/api/v1/notes/{note_id}", "method": "GET"}
    requests = families["http_requests"]
    assert _value(requests, "http_requests_total", status="200", **route) == 10
    assert _value(requests, "http_requests_total", status="404", **route) == 1
    assert _value(requests, "http_requests_total", route="/healthz", status="200") >= 1
    assert _value(requests, "http_requests_total", route="/metrics") == 0
    assert _value(requests, "http_requests_total", route="unmatched", status="404") == 1
    latency = families["http_request_duration_seconds"]
    assert _value(latency, "http_request_duration_seconds_count", status="200", **route) == 10
    assert _value(latency, "http_request_duration_seconds_bucket", le="+Inf", **route) == 11
    assert _value(families["http_requests_in_flight"], "http_requests_in_flight") == 0
    assert _value(families["db_pool_connections"], "db_pool_connections") >= 1


@pytest.mark.parametrize("process_type", ["web", "worker", "clock"])
def test_a_taken_metrics_port_stops_the_process_with_one_line(
    database_url: str, process_type: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104  # where the metrics server binds
        taken.listen()
        metrics_port = taken.getsockname()[1]
        env = _env(database_url, PORT=str(free_port()), METRICS_PORT=str(metrics_port))
        process = Service(process_type, env)
        code = process.wait(30)
    assert code == 1
    [line] = process.stderr.strip().splitlines()
    assert line.startswith(f"error: METRICS_PORT {metrics_port} cannot be served"), line


@pytest.mark.usefixtures("redis_sync")
def test_worker_and_clock_serve_job_and_queue_metrics(
    database_url: str, committed: psycopg.Connection, broker: RedisBroker
) -> None:
    worker_port, clock_port = free_port(), free_port()
    note_id = insert_note(committed)
    worker = Service("worker", _env(database_url, METRICS_PORT=str(worker_port)))
    clock = Service(
        "clock", _env(database_url, METRICS_PORT=str(clock_port), CLOCK_TICK_SECONDS="0.5")
    )
    try:
        worker.wait_for("worker started")
        clock.wait_for("clock started")
        broker.get_actor("refresh_note_stats").send(note_id)
        broker.get_actor("refresh_note_stats").send(-1)  # fails every retry: a dead letter
        wait_until(
            lambda: _value(_metrics(worker_port)["jobs"], "jobs_total", outcome="failed"), 15
        )
        clock.wait_for("job scheduled", schedule="queue-depths")
        families = _metrics(worker_port)
        clock_families = _metrics(clock_port)
    finally:
        codes = [worker.stop(), clock.stop()]
    assert codes == [0, 0]
    jobs = families["jobs"]
    assert _value(jobs, "jobs_total", job="refresh_note_stats", outcome="done") == 1
    assert _value(jobs, "jobs_total", job="refresh_note_stats", outcome="retried") == 2
    assert _value(jobs, "jobs_total", job="refresh_note_stats", outcome="failed") == 1
    durations = families["job_duration_seconds"]
    done = {"job": "refresh_note_stats", "outcome": "done"}
    assert _value(durations, "job_duration_seconds_count", **done) == 1
    assert _value(families["jobs_dead_letters"], "jobs_dead_letters", queue="default") == 1
    depth = families["jobs_queue_depth"]
    assert {s.labels["state"] for s in depth} == {"waiting", "in_progress", "delayed"}
    assert "process_cpu_seconds" in clock_families
    scheduled = clock_families["clock_jobs_scheduled"]
    assert _value(scheduled, "clock_jobs_scheduled_total", schedule="queue-depths") >= 1


@dataclass(frozen=True)
class _Envelope:
    headers: dict[str, Any]
    items: list[tuple[dict[str, Any], Any]]


def _envelopes(receiver: _Receiver) -> list[_Envelope]:
    """Sentry envelopes: a header line, then for each item a header line and its payload."""
    envelopes = []
    for path, body in receiver.received():
        assert path == "/api/1/envelope/"
        header, *rest = body.split(b"\n")
        items = []
        while len(rest) >= 2:
            item_header, payload, *rest = rest
            if item_header:
                items.append((json.loads(item_header), json.loads(payload)))
        envelopes.append(_Envelope(json.loads(header), items))
    return envelopes


def _events(receiver: _Receiver) -> list[dict[str, Any]]:
    return [
        payload
        for envelope in _envelopes(receiver)
        for header, payload in envelope.items
        if header.get("type") == "event"
    ]


# The web's last-resort handler, in a real process: an app with a route that fails (added by the
# test, never in the product), started the way the web starts, called over ASGI.
_FAILING_WEB = """
import asyncio, httpx, sentry_sdk
from {{ cookiecutter.package_name }}.core.startup import begin
from {{ cookiecutter.package_name }}.processes.app import create_app

settings = begin("web")
app = create_app(settings)

@app.post("/fails")
async def fails() -> None:
    raise RuntimeError("boom with " + settings.secret_key.get_secret_value())

async def main() -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(
            "/fails",
            content=b"the body of the request",
            headers={"authorization": "Bearer key-of-the-caller", "x-api-key": "another-key"},
        )
    print(response.status_code, response.headers["x-request-id"], flush=True)

asyncio.run(main())
sentry_sdk.flush()
"""


def test_an_unhandled_web_error_reaches_sentry_without_secrets(
    database_url: str, receiver: _Receiver
) -> None:
    dsn = f"http://public-key@127.0.0.1:{receiver.server_address[1]}/1"
    env = _env(database_url, SENTRY_DSN=dsn, APP_ENV="test", RELEASE_VERSION="1.2.3")
    result = subprocess.run(
        [sys.executable, "-c", _FAILING_WEB],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    status, request_id = result.stdout.split()[-2:]
    assert status == "500"
    (event,) = _events(receiver)
    assert event["release"] == "1.2.3"
    assert event["environment"] == "test"
    assert event["tags"]["request_id"] == request_id
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    sent = b"".join(body for _, body in receiver.received())
    for secret in (TEST_SECRET, "key-of-the-caller", "another-key", "the body of the request"):
        assert secret.encode() not in sent
    # The SDK notes in the event's metadata that it removed the header; no value is sent.
    headers = {name.lower() for name in event["request"].get("headers", {})}
    assert not headers & {"authorization", "x-api-key", "cookie"}


@pytest.mark.usefixtures("redis_sync")
def test_a_job_that_fails_its_last_retry_reaches_sentry_with_its_request_id(
    database_url: str, broker: RedisBroker, receiver: _Receiver
) -> None:
    dsn = f"http://public-key@127.0.0.1:{receiver.server_address[1]}/1"
    worker = Service("worker", _env(database_url, SENTRY_DSN=dsn, JOB_MAX_RETRIES="0"))
    try:
        worker.wait_for("worker started")
        with structlog.contextvars.bound_contextvars(request_id="sentry-req-0001"):
            broker.get_actor("refresh_note_stats").send(-1)
        worker.wait_for("job dead-lettered")
        events = wait_until(lambda: _events(receiver), 10)
    finally:
        code = worker.stop()
    assert code == 0
    (event,) = events
    assert event["tags"]["request_id"] == "sentry-req-0001"
    assert event["tags"]["job"] == "refresh_note_stats"
    assert event["tags"]["process_type"] == "worker"
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    sent = b"".join(body for _, body in receiver.received())
    assert TEST_SECRET.encode() not in sent
    assert database_url.encode() not in sent


_LOADED = """
import json, sys
from {{ cookiecutter.package_name }}.core.startup import begin

# In the order of the entry points: a web worker starts up before it imports the app.
settings = begin(sys.argv[1])
if sys.argv[1] == "web":
    from {{ cookiecutter.package_name }}.processes.web import app
    app()
else:
    from {{ cookiecutter.package_name }} import features
    from {{ cookiecutter.package_name }}.core.db.engine import worker_engine
    worker_engine()
import threading
threads = [thread.name for thread in threading.enumerate()]
modules = [name for name, module in sys.modules.items() if module is not None]
loaded = {p for p in sys.argv[2:] for name in modules if (name + ".").startswith(p + ".")}
print(json.dumps([sorted(loaded), threads]))
"""


@pytest.mark.parametrize("process_type", ["web", "worker"])
def test_with_nothing_switched_on_no_observability_package_is_loaded(
    database_url: str, process_type: str
) -> None:
    # redis-py imports the SDK's metrics module whenever it is installed, for metrics of its own
    # that stay off: a module loaded, no exporter and no thread.
    ignored = {"opentelemetry.sdk"}
    threads: list[list[str]] = []

    def loaded(**overrides: str) -> str:
        env = service_env(DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:1/0", **overrides)
        result = subprocess.run(
            [sys.executable, "-c", _LOADED, process_type, *OBSERVABILITY_PACKAGES],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        found, running = json.loads(result.stdout.strip().splitlines()[-1])
        threads.append(running)
        return str(sorted(set(found) - ignored))

    assert loaded() == "[]"
    assert threads == [["MainThread"]], "a thread runs for a part that is off"
    # The same check sees each of them when all three are switched on.
    switched_on = loaded(
        METRICS_PORT=str(free_port()),
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1",
        SENTRY_DSN="http://key@127.0.0.1:1/1",
    )
    assert switched_on == str(sorted(set(OBSERVABILITY_PACKAGES) - ignored))


@pytest.mark.parametrize("concurrency", ["1", "2"])
@pytest.mark.usefixtures("redis_sync")
def test_spans_still_buffered_are_exported_when_web_stops(
    database_url: str, receiver: _Receiver, concurrency: str
) -> None:
    port = free_port()
    # A batch delay longer than the test: only the exit path can send these spans.
    tracing = _tracing(receiver) | {"OTEL_BSP_SCHEDULE_DELAY": "600000"}
    env = _env(database_url, PORT=str(port), WEB_CONCURRENCY=concurrency, **tracing)
    web = Service("web", env)
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        assert _spans(receiver) == []
    finally:
        code = web.stop()
    assert code == 0
    assert {"GET /healthz", "GET /readyz"} <= {span.name for span in _spans(receiver)}


@pytest.mark.parametrize("concurrency", ["1", "2"])
def test_an_unreachable_collector_does_not_hold_the_exit(
    database_url: str, concurrency: str
) -> None:
    with socket.socket() as closed:  # a port that refuses: bound, never listening
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        port = free_port()
        env = _env(
            database_url,
            PORT=str(port),
            WEB_CONCURRENCY=concurrency,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        )
        web = Service("web", env)
        try:
            # Every worker serving (a stop while one still starts is another test's), then
            # spans to export in each.
            wait_until(lambda: len(web.events("started")) == int(concurrency), 30)
            for _ in range(4):
                web.wait_http(f"http://127.0.0.1:{port}/readyz")
        finally:
            sent = web.signal()
            code = web.wait(30)
        seconds = time.monotonic() - sent
    assert code in {0, -signal.SIGTERM}
    # The exporter alone would retry for 6-7 s; the exit path gives it 2 s.
    assert seconds < 5, f"web took {seconds:.1f} s to exit"
