"""Sending jobs from the async web process: Dramatiq is loaded on first use, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, ParamSpec

from ..settings import Settings
from .job import QUEUE, Job

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker

P = ParamSpec("P")


class JobSender:
    """Sends jobs to the worker. Building the broker costs an import of Dramatiq and redis-py;
    the first send pays it, in a worker thread, so neither web start-up nor the event loop do."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._broker: RedisBroker | None = None

    def broker(self) -> RedisBroker:
        """The broker, built on first use (blocking: call it from a thread). Its actors are
        not declared: a message names its job, and only the worker runs jobs."""
        with self._lock:
            if self._broker is None:
                from .broker import build_broker  # noqa: PLC0415  # deferred: see the class

                self._broker = build_broker(self._settings, declare=False)
            return self._broker

    async def send(self, job: Job[P], *args: P.args, **kwargs: P.kwargs) -> str:
        """Send a job with its arguments to the worker; return the message id.

        The request id bound in this context travels with the message (asyncio.to_thread copies
        the context). Redis' socket timeouts (REDIS_TIMEOUT) bound the wait.
        """

        def send() -> str:
            from dramatiq import Message  # noqa: PLC0415  # loaded with the broker, see above

            broker = self.broker()
            message: Message[object] = Message(
                queue_name=QUEUE, actor_name=job.name, args=args, kwargs=kwargs, options={}
            )
            return str(broker.enqueue(message).message_id)

        return await asyncio.to_thread(send)

    def close(self) -> None:
        """Close the broker's Redis connections, if it was ever built."""
        with self._lock:
            if self._broker is not None:
                self._broker.client.close()
                self._broker = None
