"""The lifecycle poll: ``poll.lua`` per service, at least every 100 ms and
at the next due time it knows of. It moves due scheduled jobs onto the
stream, reports the pause flag and the calls cancelled since the last look,
and now and then sweeps the scheduled messages for garbage
(docs/PROTOCOL.md, "Delayed calls", "Cancellation", "Pause and resume")."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .. import limits, scripts
from .shared import Shared

log = logging.getLogger("rpc_runtime.worker")

POLL_EVERY_S = 0.1
SWEEP_EVERY_S = 60.0
MAX_MOVED = 1000
MAX_CANCELS = 10_000
HORIZON_MS = 31_708_800_000


def _int(v: Any) -> int:
    if isinstance(v, bytes):
        v = v.decode()
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class Lifecycle:
    """One worker's polls of every service it serves."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._seen: dict[str, int] = {}
        self._cursor: dict[str, str] = {}
        self._next_sweep = 0.0
        #: Wakes the loop early (a retry or delayed call due sooner).
        self.wake = asyncio.Event()
        self._next_due_ms: dict[str, int] = {}

    async def poll(self, service: str, cursor: str = "") -> tuple[bool, str]:
        """One poll of ``service``; True when it should be polled again at once."""
        sh = self.shared
        k = sh.keys
        since = self._seen.get(service, 0)
        answer = await scripts.poll().run(
            sh.redis,
            [k.schedule(service), k.scheduled(service), k.jobs(service), k.cancelled(service),
             k.paused(service), k.dead(service)],
            [MAX_MOVED, max(0, since - 1), MAX_CANCELS, HORIZON_MS, limits.DEAD_LETTER_CAP,
             cursor],
        )
        now_ms, moved, next_due, paused = (_int(answer[i]) for i in range(4))
        cancels = answer[4] or []
        errors = answer[5] or []
        next_cursor = _text(answer[7]) if len(answer) > 7 else ""
        if paused:
            if service not in sh.paused:
                log.info("service %s is paused", service)
            sh.paused.add(service)
        elif service in sh.paused:
            log.info("service %s is resumed", service)
            sh.paused.discard(service)
        newest = since
        for i in range(0, len(cancels) - 1, 2):
            call_id = _text(cancels[i])
            at = _int(cancels[i + 1])
            newest = max(newest, at)
            if len(call_id.encode("utf-8")) > limits.MAX_ID_BYTES:
                log.info("ignoring a cancellation of an id over %d bytes", limits.MAX_ID_BYTES)
                continue
            sh.cancels.note(call_id, at)
        # Redis forgets a cancellation after a day; so does the worker.
        sh.cancels.prune(now_ms)
        self._seen[service] = newest
        for e in errors:
            log.warning("the lifecycle poll of %s: %s", service, _text(e))
        self._next_due_ms[service] = next_due
        again = moved >= MAX_MOVED or len(cancels) // 2 >= MAX_CANCELS
        return again, next_cursor

    async def poll_all(self) -> None:
        """One poll of every service (again at once while there is more)."""
        loop = asyncio.get_running_loop()
        sweep = loop.time() >= self._next_sweep
        if sweep:
            self._next_sweep = loop.time() + SWEEP_EVERY_S
        for service in self.shared.services:
            cursor = ""
            if sweep:
                cursor = "0"
            elif self._cursor.get(service, "0") not in ("", "0"):
                cursor = self._cursor[service]
            for _ in range(100):
                again, next_cursor = await self.poll(service, cursor)
                if cursor:
                    self._cursor[service] = next_cursor
                cursor = ""
                if not again:
                    break

    def next_wait_s(self) -> float:
        """Until the next poll: 100 ms, or sooner for a due time known."""
        wait = POLL_EVERY_S
        now = self.shared.clock.now_ms()
        for due in self._next_due_ms.values():
            if due >= 0:
                wait = min(wait, max(0.002, (due - now) / 1000 + 0.002))
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                await self.poll_all()
                delay = 0.1
                wait = self.next_wait_s()
            except Exception as e:  # noqa: BLE001 - Redis away: try again
                log.warning("the lifecycle poll failed: %s", e)
                wait = delay
                delay = min(delay * 2, 5.0)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
