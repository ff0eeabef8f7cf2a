"""The clock process: enqueues periodic jobs on a schedule kept in code; stops on SIGTERM.

Time is cut into ticks of CLOCK_TICK_SECONDS (a minute by default, like cron), numbered from the
Unix epoch so that every clock process agrees on them. At each tick the clock enqueues the
entries due at that tick, each after taking a Redis lock for that entry and tick
(SET NX with an expiry): a second clock, started by mistake or during a deploy, finds the lock
taken and enqueues nothing. A tick during which no clock runs is skipped, not made up later,
so periodic jobs must tolerate a missed run (the backfill job catches up on its own).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Sequence

import redis
from dramatiq.brokers.redis import RedisBroker

{% if cookiecutter.observability %}from ..core import observability
{% endif %}from ..core.heartbeat import Heartbeat
from ..core.jobs.schedule import Periodic
from ..core.logs import get_logger
from ..core.redis_connection import blocking_client
from ..core.signals import StopSignal
from ..core.startup import begin, exit_unreachable, reason, unreachable

log = get_logger("clock")


class Clock:
    """Fires the schedule's entries at their ticks, once across every clock process."""

    def __init__(
        self, broker: RedisBroker, tick_seconds: float, entries: Sequence[Periodic]
    ) -> None:
        self.broker = broker
        self.tick_seconds = tick_seconds
        self.schedule = tuple(entries)
        self.clock_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def tick_at(self, timestamp: float) -> int:
        """The number of the tick a Unix time falls in."""
        return math.floor(timestamp / self.tick_seconds)

    def fire(self, tick: int) -> int:
        """Enqueue the entries due at this tick whose lock this clock wins; return how many."""
        enqueued = 0
        for entry in self.schedule:
            if tick % entry.every:
                continue
            key = f"{self.broker.namespace}:clock:{entry.name}:{tick}"
            # The lock outlives the tick by far, so a clock whose time is a little off
            # still finds it taken.
            expiry = max(60, math.ceil(entry.every * self.tick_seconds * 2))
            try:
                if not self.broker.client.set(key, self.clock_id, nx=True, ex=expiry):
                    log.debug("tick taken by another clock", schedule=entry.name, tick=tick)
                    continue
                message = entry.job.send_with_options(scheduled=f"{entry.name}:{tick}")
            except redis.RedisError as error:
                log.warning("tick failed", schedule=entry.name, tick=tick, error=reason(error))
                continue
            enqueued += 1
{%- if cookiecutter.observability %}
            observability.count_scheduled(entry.name)
{%- endif %}
            log.info("job scheduled", schedule=entry.name, tick=tick, message_id=message.message_id)
        return enqueued

    def run(self, stop: StopSignal, heartbeat: Heartbeat) -> None:
        """Sleep to each tick's start and fire it, until a stop signal arrives; beat meanwhile."""
        tick = self.tick_at(time.time()) + 1
        heartbeat.beat()
        while True:
            remaining = tick * self.tick_seconds - time.time()
            if remaining > 0:
                if stop.sleep(min(remaining, heartbeat.INTERVAL)):
                    return
                heartbeat.beat()
                continue
{%- if cookiecutter.observability %}
            with observability.span("clock tick", tick=tick):
                self.fire(tick)
{%- else %}
            self.fire(tick)
{%- endif %}
            heartbeat.beat()
            # After a long pause (a suspended machine), skip the ticks that were missed.
            tick = max(tick + 1, self.tick_at(time.time()) + 1)


def main() -> None:
    """Entry point of the `clock` process type."""
    settings = begin("clock")
    stop = StopSignal().install()
    with blocking_client(settings) as client:
        problems = unreachable(redis=client)
    if problems:
        exit_unreachable("clock not started", problems)
    # Imported once the settings are known good (the broker is built from them on import).
    from ..core.jobs.broker import broker  # noqa: PLC0415
    from ..features import SCHEDULE  # noqa: PLC0415

    clock = Clock(broker, settings.clock_tick_seconds, SCHEDULE)
    log.info(
        "clock started",
        tick_seconds=settings.clock_tick_seconds,
        schedule={entry.name: entry.every for entry in clock.schedule},
        clock_id=clock.clock_id,
    )
    clock.run(stop, Heartbeat(settings.liveness_file))
    broker.client.close()
    log.info("clock stopped", signal=stop.received)
{%- if cookiecutter.observability %}
    observability.shutdown()  # the last ticks' spans, within a bound (not left to atexit)
{%- endif %}
