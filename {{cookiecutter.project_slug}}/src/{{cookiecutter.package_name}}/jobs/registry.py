"""Every job and schedule entry of the service, found in the modules that declare them."""

from __future__ import annotations

import importlib
from types import ModuleType

import dramatiq
from dramatiq import Broker

from ..features import feature_modules
from .job import QUEUE, Job, Periodic


def declaring_modules() -> list[ModuleType]:
    """The service's own jobs (jobs/queues.py) and each feature's tasks.py."""
    return [importlib.import_module(f"{__package__}.queues"), *feature_modules("tasks")]


def _declared(kind: type[Job[...]] | type[Periodic]) -> list[object]:
    found: dict[str, object] = {}
    for module in declaring_modules():
        for value in vars(module).values():
            if isinstance(value, kind):
                found.setdefault(value.name, value)
    return list(found.values())


def declared_jobs() -> list[Job[...]]:
    """Every job declared at module level in a declaring module (by name; first wins)."""
    return [value for value in _declared(Job) if isinstance(value, Job)]


def schedule() -> list[Periodic]:
    """Every schedule entry declared at module level in a declaring module."""
    return [value for value in _declared(Periodic) if isinstance(value, Periodic)]


def declare_actors(broker: Broker) -> None:
    """Declare every job as an actor named after its function, on the given broker."""
    for declared in declared_jobs():
        dramatiq.actor(
            broker=broker,
            actor_name=declared.name,
            queue_name=QUEUE,
            time_limit=round(declared.time_limit * 1000),
        )(declared.fn)
