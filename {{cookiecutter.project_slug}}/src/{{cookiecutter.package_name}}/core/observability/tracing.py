"""OpenTelemetry traces: the SDK exporting over OTLP/HTTP, the libraries' instrumentations, and a
Dramatiq middleware of our own that carries the trace from the sender to the job.

The SDK reads the standard variables itself (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT,
OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, ...). Imported only when tracing is on.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dramatiq import Broker, Middleware
from opentelemetry import context, propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from structlog.typing import EventDict

    from ..settings import Settings

# The message option that carries the W3C trace context from the sender to the worker.
TRACE_OPTION = "trace_context"
tracer = trace.get_tracer("{{ cookiecutter.package_name }}")
_provider: TracerProvider | None = None


class NoOrphanClientSpans(Sampler):
    """The configured sampler, except that a client call outside any trace is not recorded.

    The worker polls Redis and the clock takes its locks a few times a second; each of those
    calls would otherwise be a trace of its own. Calls made within a request, job or tick are kept.
    """

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(  # noqa: PLR0917  # the SDK's signature
        self,
        parent_context: context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind == SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "NoOrphanClientSpans(" + self.delegate.get_description() + ")"


def configure(settings: Settings, process_type: str) -> None:
    """Install the tracer provider and instrument what this process type uses."""
    global _provider  # noqa: PLW0603  # one provider per process, installed at start-up
    attributes: dict[str, str] = {
        SERVICE_VERSION: settings.release_version,
        "deployment.environment.name": settings.app_env,
        "process.type": process_type,
    }
    if not settings.otel_service_name:  # else the SDK takes OTEL_SERVICE_NAME itself
        attributes[SERVICE_NAME] = f"{{ cookiecutter.project_slug }}-{process_type}"
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    provider.sampler = NoOrphanClientSpans(provider.sampler)  # OTEL_TRACES_SAMPLER's, or default
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    atexit.register(shutdown)
    RedisInstrumentor().instrument()
    if process_type == "web":
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor  # noqa: PLC0415

        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    else:  # the worker's engine (SQLAlchemy on psycopg) connects through psycopg.connect
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor  # noqa: PLC0415

        PsycopgInstrumentor().instrument()


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span of our own, the root of a trace when no span is current (the clock's tick)."""
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


def add_trace_ids(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the current span's trace and span ids, in hex, on every line."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(span_context.trace_id)
        event_dict["span_id"] = trace.format_span_id(span_context.span_id)
    return event_dict


class TraceContext(Middleware):
    """Carries the trace into jobs: the sender's context goes into the message options, and the
    worker runs each job in a consumer span that continues it.

    No OpenTelemetry instrumentation for Dramatiq exists; this is the W3C propagation of the
    OpenTelemetry docs applied to Dramatiq's middleware hooks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[trace.Span, object]] = {}

    def before_enqueue(self, broker: Broker, message: Any, delay: int | None) -> None:
        if TRACE_OPTION not in message.options:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            if carrier:
                message.options[TRACE_OPTION] = carrier

    def before_process_message(self, broker: Broker, message: Any) -> None:
        parent = propagate.extract(message.options.get(TRACE_OPTION) or {})
        job_span = tracer.start_span(
            f"{message.actor_name} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "process",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.dramatiq.retries": message.options.get("retries", 0),
            },
        )
        token = context.attach(trace.set_span_in_context(job_span))
        with self._lock:
            self._running[message.message_id] = (job_span, token)

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        self._end(message, exception)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        self._end(message, None)

    def _end(self, message: Any, exception: BaseException | None) -> None:
        with self._lock:
            running = self._running.pop(message.message_id, None)
        if running is None:
            return
        job_span, token = running
        if exception is not None:
            job_span.record_exception(exception)
            job_span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        job_span.end()
        with contextlib.suppress(ValueError):  # detached in another context: nothing to undo
            context.detach(token)  # type: ignore[arg-type]


# At exit, the spans still buffered get this long to reach the collector: an unreachable one
# would otherwise hold the exit for the exporter's retries (6-7 s measured, up to
# OTEL_EXPORTER_OTLP_TIMEOUT), past what a platform waits after SIGTERM.
EXPORT_AT_EXIT_SECONDS = 2.0


def shutdown() -> None:
    """Export the spans still buffered, then stop the exporter; give up after
    EXPORT_AT_EXIT_SECONDS (the thread doing it ends with the process)."""
    global _provider  # shut down once, by the exit path or at exit
    if _provider is not None:
        provider, _provider = _provider, None
        stopping = threading.Thread(target=provider.shutdown, name="span-export", daemon=True)
        try:
            stopping.start()
        except RuntimeError:  # at interpreter shutdown (atexit) no thread starts: export here
            provider.shutdown()
            return
        stopping.join(EXPORT_AT_EXIT_SECONDS)
