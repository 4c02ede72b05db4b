"""Backing off the lifecycle poll of idle queues as the fleet grows,
without widening the window in which a cancelled call still runs
(docs/PROTOCOL.md, "The lifecycle poll's cadence"; the mirror of
``rpc-runtime/src/worker/idle_polls.rs``).

A fleet of F workers each polling an idle queue every second polls it F
times a second; with many services of many shards that is thousands of
scripts a second doing nothing. So an idle queue's poll waits
:data:`IDLE_EVERY_S` times the number of live workers of its service (read
from its registry by the janitor every beat TTL), at most
:data:`MAX_IDLE_FACTOR` times. What an idle poll learns late that matters
is a call cancelled while queued: a job taken from a queue whose last poll
is older than :data:`FRESH_FOR_S` asks Redis whether its call was
cancelled (one ``ZSCORE``) before it runs. A worker alone on its service
polls every second, and its polls are never that old.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .. import shards
from ..keys import is_client_id

if TYPE_CHECKING:
    from .shared import Shared

log = logging.getLogger("rpc_runtime.worker")

#: How often an idle queue is polled by a worker alone on its service.
IDLE_EVERY_S = 1.0
#: The most an idle poll backs off, as a multiple of :data:`IDLE_EVERY_S`.
MAX_IDLE_FACTOR = 10
#: How old a queue's last poll may be for what it said about cancellations
#: to be the whole answer.
FRESH_FOR_S = 1.5
#: A beat lives at most this long (``rpc-protocol``'s ``MAX_BEAT_TTL_MS``):
#: older registry entries are of workers gone.
MAX_BEAT_TTL_MS = 10 * 60_000
#: The most registry entries read per service.
MAX_WORKERS_LISTED = 1_000


class IdlePolls:
    """How many live workers serve each service, and when each queue was
    last polled."""

    def __init__(self) -> None:
        self._fleet: dict[str, int] = {}
        self._polled: dict[str, float] = {}

    def fleet_is(self, service: str, workers: int) -> None:
        """Records how many live workers (this one included) serve ``service``."""
        self._fleet[service] = max(1, workers)

    def idle_every_s(self, queue: str) -> float:
        """How long an idle ``queue`` waits between polls."""
        factor = self._fleet.get(shards.service_of_queue(queue), 1)
        return IDLE_EVERY_S * min(max(factor, 1), MAX_IDLE_FACTOR)

    def polled(self, queue: str, at: float) -> None:
        """Records a poll of ``queue`` that answered (``time.monotonic()``)."""
        self._polled[queue] = at

    def is_stale(self, queue: str, now: float | None = None) -> bool:
        """Whether what the last poll of ``queue`` said may be out of date."""
        at = self._polled.get(queue)
        now = time.monotonic() if now is None else now
        return at is None or now - at > FRESH_FOR_S


async def count_fleets(shared: Shared) -> None:
    """Reads each service's live workers: the registry's entries of the
    last beat TTL whose beat still exists, this worker counted once."""
    now_ms = shared.clock.now_ms()
    me = shared.settings.consumer
    redis: Any = shared.redis  # execute_command is untyped in redis-py
    for service in list(shared.services):
        try:
            # ZRANGE ... BYSCORE REV: what the worker role may run, newest first.
            listed = await redis.execute_command(
                "ZRANGE", shared.keys.workers(service), "+inf", now_ms - MAX_BEAT_TTL_MS,
                "BYSCORE", "REV", "LIMIT", 0, MAX_WORKERS_LISTED,
            )
            others = [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w)
                      for w in listed]
            # Anyone with a worker's rights may write the registry: what
            # could not be a worker's id is left out.
            others = [w for w in others if w != me and is_client_id(w)]
            alive = 0
            if others:
                async with shared.redis.pipeline(transaction=False) as pipe:
                    for w in others:
                        pipe.getrange(shared.keys.worker(w), 0, 0)
                    beats = await pipe.execute()
                alive = sum(1 for b in beats if b)
        except Exception as e:  # noqa: BLE001 - read again next time
            log.debug("could not count the live workers of %s: %s", service, e)
            continue
        shared.idle_polls.fleet_is(service, alive + 1)
