"""Redis's clock as this worker sees it: the offset between the local
clock and ``TIME``, sampled at start and with every lease renewal, half the
round trip counted on each side (docs/PROTOCOL.md, "Deadlines and clocks")."""

from __future__ import annotations

import time

import redis.asyncio as aredis


class BrokerClock:
    """Milliseconds since the Unix epoch on Redis's clock, estimated."""

    def __init__(self) -> None:
        self.offset_ms = 0.0

    async def sample(self, redis: aredis.Redis) -> None:
        t0 = time.time()
        sec, usec = await redis.time()
        t1 = time.time()
        redis_ms = int(sec) * 1000 + int(usec) / 1000.0
        self.offset_ms = redis_ms - (t0 + t1) * 500.0

    def now_ms(self) -> int:
        return int(time.time() * 1000.0 + self.offset_ms)


def started_ms(entry_ms: int | None, sent_ms: int | None, run_at_ms: int | None) -> int | None:
    """When a call's time started: its entry's stamp, or ``sent_ms`` when
    earlier, or ``run_at_ms`` when later."""
    if entry_ms is None:
        return None
    start = min(entry_ms, sent_ms) if sent_ms is not None else entry_ms
    return max(start, run_at_ms) if run_at_ms is not None else start


def time_left_ms(
    clock: BrokerClock, timeout_ms: int | None, started: int | None, deadline_ms: int | None
) -> int | None:
    """Milliseconds left to the call's deadline (0 when passed), None
    without one: ``timeout_ms`` on Redis's clock, else ``deadline_ms`` on
    this machine's."""
    if timeout_ms is not None and started is not None:
        return max(0, started + timeout_ms - clock.now_ms())
    if deadline_ms is not None:
        return max(0, deadline_ms - int(time.time() * 1000))
    return None


def entry_ms(entry_id: str) -> int | None:
    """The time part of a stream entry id (``<ms>-<seq>``)."""
    head = entry_id.partition("-")[0]
    return int(head) if head.isdigit() else None
