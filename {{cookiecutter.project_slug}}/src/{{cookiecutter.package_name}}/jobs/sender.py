"""Sending jobs from the async web process, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import ParamSpec

from dramatiq.brokers.redis import RedisBroker

from ..settings import Settings
from .broker import build_broker
from .job import Job

P = ParamSpec("P")


class JobSender:
    """Sends jobs to the worker through a broker built on first use (it connects then)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._broker: RedisBroker | None = None

    def broker(self) -> RedisBroker:
        """The broker, built on first use."""
        with self._lock:
            if self._broker is None:
                self._broker = build_broker(self._settings)
            return self._broker

    async def send(self, job: Job[P], *args: P.args, **kwargs: P.kwargs) -> str:
        """Send a job with its arguments to the worker; return the message id.

        The request id bound in this context travels with the message (asyncio.to_thread copies
        the context). Redis' socket timeouts (REDIS_TIMEOUT) bound the wait.
        """

        def send() -> str:
            message = self.broker().get_actor(job.name).send(*args, **kwargs)
            return str(message.message_id)

        return await asyncio.to_thread(send)

    def close(self) -> None:
        """Close the broker's Redis connections, if it was ever built."""
        with self._lock:
            if self._broker is not None:
                self._broker.client.close()
                self._broker = None
