"""Redis's clock as this process sees it (docs/PROTOCOL.md, "Deadlines and
clocks").

A client stamps ``sent_ms`` and turns a delay into ``run_at_ms`` on Redis's
clock, never its own: it keeps the offset between the two, sampled with
``TIME`` when it connects and again every five minutes (half the round trip
counted on each side). Until a sample succeeds (a Redis user without
``+time``), the local clock stands in and ``sent_ms`` is left out.
"""

from __future__ import annotations

import time
from typing import Any

#: Resample after this long (seconds).
RESAMPLE_AFTER = 300.0
#: A sample whose round trip took longer than this (seconds) does not
#: replace a finer one.
COARSE_SAMPLE = 0.25


def local_ms() -> int:
    """This machine's time, ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


class RedisClock:
    """The offset of Redis's clock from this machine's."""

    def __init__(self) -> None:
        self._offset_ms = 0
        self._rtt: float | None = None
        self._sampled_at: float | None = None

    @property
    def offset_ms(self) -> int:
        """Redis's time minus local time, in ms."""
        return self._offset_ms

    def is_sampled(self) -> bool:
        """Whether Redis's clock was ever read (until then the local clock
        stands in)."""
        return self._sampled_at is not None

    def is_stale(self) -> bool:
        """Whether it is time to sample again."""
        return self._sampled_at is None or time.monotonic() - self._sampled_at >= RESAMPLE_AFTER

    def now_ms(self) -> int:
        """Redis's time now, as estimated, ms since the Unix epoch."""
        return max(0, local_ms() + self._offset_ms)

    async def sample(self, redis: Any) -> None:
        """Reads ``TIME`` on ``redis`` (a ``redis.asyncio.Redis``) and updates
        the offset; raises what Redis raises."""
        before = local_ms()
        started = time.monotonic()
        seconds, micros = await redis.execute_command("TIME")
        rtt = time.monotonic() - started
        if rtt > COARSE_SAMPLE and self._rtt is not None:
            self._sampled_at = time.monotonic()
            return
        redis_ms = int(seconds) * 1000 + int(micros) // 1000
        self._offset_ms = redis_ms - (before + int(rtt * 1000) // 2)
        self._rtt = rtt
        self._sampled_at = time.monotonic()
