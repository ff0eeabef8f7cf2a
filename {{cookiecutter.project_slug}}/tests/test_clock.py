"""The clock as real processes: two clocks running at once enqueue each tick once."""

from __future__ import annotations

import collections
import signal
from typing import cast

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from support import Service, base_redis_url, service_env, wait_until

pytestmark = pytest.mark.process


def _scheduled(broker: RedisBroker) -> list[str]:
    bodies = cast(list[bytes], broker.client.hvals(f"{broker.namespace}:default.msgs"))
    messages = [Message.decode(body) for body in bodies]
    return [message.options["scheduled"] for message in messages if "scheduled" in message.options]


def test_two_clocks_enqueue_every_tick_exactly_once(database_url: str, broker: RedisBroker) -> None:
    tick = 0.2
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=base_redis_url(), CLOCK_TICK_SECONDS=str(tick)
    )
    clocks = [Service("clock", env), Service("clock", env)]
    try:
        for clock in clocks:
            clock.wait_for("clock started", timeout=20)
        # Both run: wait for four more ticks.
        first = len(_scheduled(broker))
        wait_until(lambda: len(_scheduled(broker)) >= first + 4, timeout=10)
        for clock in clocks:
            clock.signal(signal.SIGTERM)
        codes = [clock.wait(timeout=5) for clock in clocks]
    finally:
        for clock in clocks:
            clock.kill()
    assert codes == [0, 0]
    enqueued = collections.Counter(_scheduled(broker))
    assert max(enqueued.values()) == 1, enqueued.most_common(3)
    logged = [
        line["schedule"] + f":{line['tick']}" for c in clocks for line in c.events("job scheduled")
    ]
    assert sorted(logged) == sorted(enqueued)
    assert all(clock.events("clock stopped") for clock in clocks)
