"""Enqueueing from the async web process: Dramatiq is imported on first use, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec

from ..settings import Settings

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker

P = ParamSpec("P")


class JobSender:
    """Sends jobs to the worker. Building the broker costs an import of Dramatiq; the first
    enqueue pays it, in a worker thread, so neither web start-up nor the event loop do."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._broker: RedisBroker | None = None

    def broker(self) -> RedisBroker:
        """The broker, built on first use (blocking: call it from a thread)."""
        with self._lock:
            if self._broker is None:
                from .broker import build_broker  # noqa: PLC0415  # deferred: see the docstring

                self._broker = build_broker(self._settings)
            return self._broker

    async def enqueue(self, job: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> str:
        """Send job(*args, **kwargs) to the worker and return the message id.

        The request id bound in this context travels with the message (asyncio.to_thread copies
        the context). Redis' socket timeouts (REDIS_TIMEOUT) bound the wait.
        """

        def send() -> str:
            actor = self.broker().get_actor(job.__name__)
            return str(actor.send(*args, **kwargs).message_id)

        return await asyncio.to_thread(send)

    def close(self) -> None:
        """Close the broker's Redis connections, if it was ever built."""
        with self._lock:
            if self._broker is not None:
                self._broker.client.close()
                self._broker = None
