"""How a feature declares a job and a schedule entry: plain objects, importable by web without
Dramatiq; the worker declares them as actors (jobs/registry.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, ParamSpec

P = ParamSpec("P")
QUEUE = "default"  # the queue every job is sent to and every worker takes from


@dataclass(frozen=True, slots=True)
class Job(Generic[P]):
    """A function the worker runs, and how long one run may take (seconds). Send it with
    `await jobs.send(job, *args)`: the arguments are checked against the function's."""

    fn: Callable[P, None]
    time_limit: float

    @property
    def name(self) -> str:
        """The actor name the worker knows the job by."""
        return self.fn.__name__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        self.fn(*args, **kwargs)


def job(*, time_limit: float) -> Callable[[Callable[P, None]], Job[P]]:
    """Declare the decorated function as a job."""

    def declare(fn: Callable[P, None]) -> Job[P]:
        return Job(fn, time_limit)

    return declare


@dataclass(frozen=True, slots=True)
class Periodic:
    """A schedule entry: the clock enqueues `job` every `every` ticks (CLOCK_TICK_SECONDS)."""

    name: str
    every: int
    job: Job[[]]
