"""The handles a running job uses: the worker's (or clock's) settings, database engine and
broker, bound once when that process starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker
    from sqlalchemy.engine import Engine

    from ..settings import Settings


@dataclass(frozen=True, slots=True)
class JobHandles:
    """The process's settings, its blocking database engine and its broker."""

    settings: Settings
    engine: Engine | None
    broker: RedisBroker


_bound: JobHandles | None = None


def bind(handles: JobHandles) -> None:
    """Make the handles available to jobs run by this process."""
    global _bound  # noqa: PLW0603  # one set of handles per process, bound at start-up
    _bound = handles


def current() -> JobHandles:
    """The handles bound by this process; jobs run only where a worker bound them."""
    if _bound is None:
        raise RuntimeError("no job handles bound: jobs run inside the worker process")
    return _bound


def engine() -> Engine:
    """The blocking database engine of the worker."""
    bound = current().engine
    if bound is None:
        raise RuntimeError("this process has no database engine for jobs")
    return bound
