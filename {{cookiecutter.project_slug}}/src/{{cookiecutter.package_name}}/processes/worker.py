"""The worker process: runs jobs from Redis in WORKER_THREADS threads; stops gracefully.

One process per worker, started by our own entry point rather than the `dramatiq` command:
that command forks worker processes which, given SIGTERM twice (a platform signals the whole
process group), abandon their job or never exit. Here SIGTERM or SIGINT (once or many times)
stops taking jobs, gives the running ones WORKER_SHUTDOWN_TIMEOUT to finish, hands back any
that did not, and exits 0. A job of a worker killed outright (SIGKILL, a lost machine) stays
unacknowledged in Redis and is redelivered once the worker's heartbeat is older than
WORKER_HEARTBEAT_TIMEOUT.
"""

from __future__ import annotations

import os
import sys
import time

from dramatiq import Worker

{% if cookiecutter.observability %}from ..core import observability
{% endif %}from ..core.heartbeat import Heartbeat
from ..core.logs import get_logger
from ..core.redis_connection import blocking_client
from ..core.signals import StopSignal
from ..core.startup import begin, exit_unreachable, unreachable

log = get_logger("worker")


def main() -> None:
    """Entry point of the `worker` process type."""
    settings = begin("worker")
    stop = StopSignal().install()
    # Imported once the settings are known good: the broker is built from them on import, and
    # the features declare their jobs on it. The backing services are reached first.
    from ..core.db.engine import worker_engine  # noqa: PLC0415

    engine = worker_engine()
    with blocking_client(settings) as client:
        problems = unreachable(redis=client, postgres=engine)
    if problems:
        exit_unreachable("worker not started", problems)
    from .. import features  # noqa: F401, PLC0415  # every job, declared on the broker
    from ..core.jobs.broker import POLL_MS, broker, job_context  # noqa: PLC0415
{%- if cookiecutter.observability %}
    from ..core.jobs.queues import QUEUE, queue_depths  # noqa: PLC0415
{%- else %}
    from ..core.jobs.queues import QUEUE  # noqa: PLC0415
{%- endif %}

{% if cookiecutter.observability %}    observability.watch_queue(QUEUE, lambda: queue_depths(broker, QUEUE))
{% endif %}    # What Dramatiq's own command does in each worker process it starts: the TimeLimit
    # middleware starts its watcher on this signal.
    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=settings.worker_threads, worker_timeout=POLL_MS)
    worker.start()
    log.info(
        "worker started",
        threads=settings.worker_threads,
        queues=sorted(broker.get_declared_queues()),
        heartbeat_timeout=settings.worker_heartbeat_timeout,
        shutdown_timeout=settings.worker_shutdown_timeout,
        pid=os.getpid(),
    )

    heartbeat = Heartbeat(settings.liveness_file)
    heartbeat.beat()
    while not stop.sleep(heartbeat.INTERVAL if heartbeat.path else 3600):
        # Alive means able to work: every job thread running and the broker answering.
        if all(thread.is_alive() for thread in worker.workers) and not unreachable(
            redis=broker.client
        ):
            heartbeat.beat()
    signal_name = stop.received or "SIGTERM"
    started = time.monotonic()
    log.info("worker stopping", signal=signal_name, timeout=settings.worker_shutdown_timeout)
    # Stops every thread from taking new jobs, waits up to the timeout for the running ones,
    # and puts prefetched messages back on their queue.
    worker.stop(timeout=round(settings.worker_shutdown_timeout * 1000))
    unfinished = job_context.in_progress()
    # Back to the head of the work, through the worker's consumer as Dramatiq hands back the
    # messages it had prefetched: another worker takes them at once, without waiting for this
    # worker's heartbeat to expire. If a job still finishes before we exit, its acknowledgement
    # finds nothing to remove and the job runs once more (jobs are idempotent).
    if unfinished:
        worker.consumers[QUEUE].requeue_messages(unfinished)
    for message in unfinished:
        log.warning("job handed back", job=message.actor_name, message_id=message.message_id)
    broker.client.close()
    log.info(
        "worker stopped",
        handed_back=len(unfinished),
        seconds=round(time.monotonic() - started, 2),
    )
{%- if cookiecutter.observability %}
    observability.shutdown()  # the spans of the jobs that ran, before the exit below skips atexit
{%- endif %}
    if unfinished:
        # Threads still run those jobs; leave without waiting for them or tidying up after them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    engine.dispose()
