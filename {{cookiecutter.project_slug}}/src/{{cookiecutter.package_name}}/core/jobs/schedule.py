"""A schedule entry: which job the clock enqueues, and how often (processes/clock.py fires them)."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq import Actor


@dataclass(frozen=True, slots=True)
class Periodic:
    """The clock enqueues `job` every `every` ticks (CLOCK_TICK_SECONDS); `name` keys its lock."""

    name: str
    every: int
    job: Actor[[], None]
