"""The worker's statistics in Redis: daily counts of processed and failed
jobs per service (``P:{S}:stat:processed|failed:<day>``, flushed every 5 s
and once at stop) and the recent failed attempts (``P:{S}:failures``)
(docs/PROTOCOL.md, "Daily counts" and "Recent failures")."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

import redis.asyncio as aredis

from .. import limits
from ..keys import Keys

log = logging.getLogger("rpc_runtime.worker")

#: How a job ended, as the Rust worker's ``JobOutcome`` names it.
OUTCOMES = ("succeeded", "failed", "retried", "dead", "timeout", "cancelled", "unknown_job")
_FAILED = frozenset({"failed", "retried", "dead", "unknown_job"})
FLUSH_EVERY_S = 5.0


@dataclass(frozen=True)
class Failure:
    """One failed attempt whose handler ran."""

    id: str
    job: str
    attempt: int
    kind: str
    message: str
    worker: str
    duration_ms: int
    retried: bool


def cut_message(message: str) -> str:
    """At most 1,024 bytes, cut at a character boundary, ending in ``…``."""
    data = message.encode("utf-8", "replace")  # a lone surrogate (a handler's text) as `?`
    if len(data) <= limits.FAILURE_MESSAGE_BYTES:
        return data.decode("utf-8")
    room = limits.FAILURE_MESSAGE_BYTES - len("…".encode("utf-8"))
    return data[:room].decode("utf-8", "ignore") + "…"


def day_of(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix_s))


class DailyCounts:
    """Counts kept in memory between flushes, by (service, day)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        #: Totals since start, by outcome (for tests and logs).
        self.totals: dict[str, int] = defaultdict(int)

    def count(self, service: str, outcome: str, now_s: float | None = None) -> None:
        self.totals[outcome] += 1
        c = self._counts[(service, day_of(time.time() if now_s is None else now_s))]
        c[0] += 1
        if outcome in _FAILED:
            c[1] += 1

    async def flush(self, redis: aredis.Redis, keys: Keys) -> None:
        """Adds the counts to Redis; what Redis refuses is kept for next time."""
        taken, self._counts = self._counts, defaultdict(lambda: [0, 0])
        for (service, day), (processed, failed) in taken.items():
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    if processed:
                        k = keys.stat_processed(service, day)
                        pipe.incrby(k, processed)
                        pipe.expire(k, limits.DAILY_STATS_KEPT_S)
                    if failed:
                        k = keys.stat_failed(service, day)
                        pipe.incrby(k, failed)
                        pipe.expire(k, limits.DAILY_STATS_KEPT_S)
                    await pipe.execute()
            except Exception as e:  # noqa: BLE001 - kept for the next flush
                log.debug("could not add the daily counts of %s: %s", service, e)
                c = self._counts[(service, day)]
                c[0] += processed
                c[1] += failed


async def record_failure(redis: aredis.Redis, keys: Keys, service: str, f: Failure) -> None:
    """``XADD P:{S}:failures MAXLEN ~ 1000 * ...`` then ``PEXPIRE``; a write
    that fails is logged at debug and forgotten (it is statistics)."""
    key = keys.failures(service)
    fields: dict[str, str | int] = {
        "id": f.id,
        "job": f.job,
        "attempt": f.attempt,
        "kind": f.kind,
        "message": cut_message(f.message),
        "worker": f.worker,
        "duration_ms": f.duration_ms,
        "retried": 1 if f.retried else 0,
    }
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=limits.FAILURES_CAP, approximate=True)  # type: ignore[arg-type]
            pipe.pexpire(key, limits.FAILURES_KEPT_MS)
            await pipe.execute()
    except Exception as e:  # noqa: BLE001 - statistics only
        log.debug("could not record a failed attempt of %s: %s", f.id, e)
