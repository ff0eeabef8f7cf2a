"""The Dramatiq broker on Redis, built from the environment's settings when this module is first
imported, and the middleware every job runs through.

Features declare their jobs with Dramatiq's own decorator on this broker
(`@dramatiq.actor(broker=broker, time_limit=...)`) and send them with `.send(...)`. Every process
type validates its settings before it imports this module (startup.begin), so a bad
configuration is refused with one line, not a traceback here.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import structlog
from dramatiq import Broker, Middleware
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Callbacks, Pipelines, Retries, TimeLimit

{% if cookiecutter.observability %}from .. import observability
{% endif %}from ..logs import get_logger
from ..redis_connection import blocking_client
from ..settings import Settings, load_settings
from ..startup import reason

NAMESPACE = "dramatiq"  # prefix of every key Dramatiq keeps in Redis
# How long idle worker threads and consumers wait before looking again (ms). It bounds how
# fast a worker notices a stop, and how often an idle worker refreshes its heartbeat.
POLL_MS = 250
# Message options that describe one delivery attempt; a requeued dead letter starts afresh.
ATTEMPT_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "redis_message_id", "eta", "dead_letter_reason"}
)

log = get_logger("jobs")


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class JobContext(Middleware):
    """Carries the request id into jobs, logs each job's life, remembers jobs in progress.

    Enqueueing copies the `request_id` bound in structlog's context (the web request, or the job
    that enqueues) into the message options; the worker binds it, with the message id and actor,
    into every log line of that job{% if cookiecutter.observability %}, and counts each job's outcome in the metrics (when on){% endif %}.
    This middleware comes first, so its `after_` hooks run last, once Retries has decided
    whether a failed message is retried or dead-lettered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Any, float]] = {}

    def before_enqueue(self, broker: Broker, message: Any, delay: int | None) -> None:
        if "request_id" not in message.options:
            request_id = structlog.contextvars.get_contextvars().get("request_id")
            if request_id:
                message.options["request_id"] = request_id

    def before_process_message(self, broker: Broker, message: Any) -> None:
        with self._lock:
            self._running[message.message_id] = (message, time.monotonic())
        structlog.contextvars.clear_contextvars()
        context = {"job": message.actor_name, "message_id": message.message_id}
        for option in ("request_id", "scheduled"):
            if option in message.options:
                context[option] = message.options[option]
        structlog.contextvars.bind_contextvars(**context)
        log.info("job started", retries=message.options.get("retries", 0))

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            _, started = self._running.get(message.message_id, (None, time.monotonic()))
        seconds = time.monotonic() - started
{%- if cookiecutter.observability %}
        outcome = "done" if exception is None else "failed" if message.failed else "retried"
        observability.job_ended(message.actor_name, outcome, seconds)
{%- endif %}
        took = round(seconds * 1000, 1)
        if exception is None:
            log.info("job done", duration_ms=took)
        else:
            if message.failed:  # Retries gave up: the reason goes with it to the dead letters
                message.options["dead_letter_reason"] = reason(exception)
            log.warning(
                "job failed",
                duration_ms=took,
                error=reason(exception),
                retries=message.options.get("retries", 0),
                will_retry=not message.failed,
            )

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        log.info("job skipped")

    def before_nack(self, broker: Broker, message: Any) -> None:
        why = message.options.get("dead_letter_reason", "unknown")
        log.error("job dead-lettered", error=why, retries=message.options.get("retries", 0))
        if isinstance(broker, RedisBroker):
            # The nack moves the message as it was stored at enqueue time; store it once more,
            # with its last traceback and the reason, so the dead-letter queue says why.
            # Dramatiq has no API for this: the key is its broker's (see queues.py).
            key = f"{broker.namespace}:{message.queue_name}.msgs"
            redis_id = message.options.get("redis_message_id")
            if redis_id and broker.client.hexists(key, redis_id):
                broker.client.hset(key, redis_id, message.encode())

    def after_ack(self, broker: Broker, message: Any) -> None:
        self._finished(message)

    def after_nack(self, broker: Broker, message: Any) -> None:
        self._finished(message)

    def _finished(self, message: Any) -> None:
        with self._lock:
            self._running.pop(message.message_id, None)
        structlog.contextvars.clear_contextvars()

    def in_progress(self) -> list[Any]:
        """Messages taken by a worker thread and not yet acknowledged."""
        with self._lock:
            return [message for message, _ in self._running.values()]


def build_broker(settings: Settings, context: JobContext) -> RedisBroker:
    """A Redis broker whose every wait is bounded, with the retry policy from settings."""
{%- if cookiecutter.observability %}
    first = observability.job_middleware()  # none while observability is off
{%- endif %}
    return RedisBroker(  # type: ignore[no-untyped-call]  # Dramatiq leaves it unannotated
        client=blocking_client(settings),
        namespace=NAMESPACE,
        heartbeat_timeout=_milliseconds(settings.worker_heartbeat_timeout),
        maintenance_chance=settings.worker_maintenance_chance,
        middleware=[
{%- if cookiecutter.observability %}
            *first,
{%- endif %}
            context,
            TimeLimit(),
            Callbacks(),
            Pipelines(),
            Retries(
                max_retries=settings.job_max_retries,
                min_backoff=_milliseconds(settings.job_min_backoff),
                max_backoff=_milliseconds(settings.job_max_backoff),
            ),
        ],
    )


# The process's broker: the jobs of every feature are declared on it when their module is imported.
job_context = JobContext()
broker = build_broker(load_settings(), job_context)
dramatiq.set_broker(broker)
