"""The lifecycle poll: ``poll.lua`` per queue (every shard of every
service). It moves due scheduled jobs onto the stream, reports the pause
flag and the calls cancelled since the last look, and now and then sweeps
the scheduled messages for garbage (docs/PROTOCOL.md, "Delayed calls",
"Cancellation", "Pause and resume"), and tells which priority lanes the
queue has (``lanes.py``).

The pause flag is the service's (``P:{S}:paused``, in shard 0's slot) and
pauses every shard: shard 0's poll reads it. A poll is one script on one
slot, so shard ``k``'s poll is given its own queue's flag, which nobody
sets, and its answer about pausing is not listened to.

How often is the rule of docs/PROTOCOL.md, "The lifecycle poll's cadence",
as ``rpc-runtime/src/worker/lifecycle.rs`` follows it: a service is *busy*
while the worker holds a lease of one of its jobs, and for a second after
that or after a poll of it that moved a job, learned a cancellation or saw
its pause flag change. A busy service is polled every 100 ms, an idle one
every second times the live workers of its service, at most ten
(``idle_polls.py``); either at once when it turns busy and at the next due time
its last poll reported. All of this per queue: "service" below is a
shard's queue. The worker looks at its leases at least every
100 ms, and this one also hears of every lease as it is taken (``leases``
is watched), so even a job that ends within a millisecond makes its
service busy: a retry it put on the schedule is learned by the next polls
and moved on time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import limits, scripts
from .lanes import create_groups as create_lane_groups
from .shared import Shared

log = logging.getLogger("rpc_runtime.worker")

POLL_EVERY_S = 0.1
IDLE_AFTER_S = 1.0
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


class _WatchedLeases(set[tuple[str, str, int]]):
    """The worker's leases (``Shared.leases``), telling the lifecycle of
    each one taken: (service, entry id, lane)."""

    def __init__(self, leases: Iterable[tuple[str, str, int]],
                 on_add: Callable[[str], None]) -> None:
        super().__init__(leases)
        self._on_add = on_add

    def add(self, lease: tuple[str, str, int]) -> None:
        super().add(lease)
        self._on_add(lease[0])


class Lifecycle:
    """One worker's polls of every service it serves."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._seen: dict[str, int] = {}
        self._cursor: dict[str, str] = {}
        self._next_sweep = 0.0
        #: Wakes the loop early (a service turned busy).
        self.wake = asyncio.Event()
        now = time.monotonic()
        #: Per service: when it is polled next, and until when it is busy
        #: (busy at first: a worker that starts often starts to work).
        self._next_poll: dict[str, float] = {}
        self._busy_until: dict[str, float] = {}
        for queue in shared.queues:
            self.add(queue)
        shared.leases = _WatchedLeases(shared.leases, self._leased)

    def add(self, queue: str) -> None:
        """Polls ``queue`` too (a shard the worker started serving), at once."""
        now = time.monotonic()
        self._next_poll.setdefault(queue, now)
        self._busy_until.setdefault(queue, now + IDLE_AFTER_S)
        self.wake.set()

    def _leased(self, service: str) -> None:
        """A lease of ``service``'s was taken: busy, polled at once if it was idle."""
        now = time.monotonic()
        if self._busy_until.get(service, 0.0) <= now:
            self._next_poll[service] = now
            self.wake.set()
        self._busy_until[service] = now + IDLE_AFTER_S

    def _look_at_leases(self, now: float) -> None:
        """The services of the leases held are busy (for long jobs)."""
        for service in {lease[0] for lease in self.shared.leases}:
            if self._busy_until.get(service, 0.0) <= now:
                self._next_poll[service] = now
            self._busy_until[service] = now + IDLE_AFTER_S

    async def poll(self, service: str, cursor: str = "") -> tuple[bool, str]:
        """One poll of queue ``service``; True when it should be polled again at once."""
        sh = self.shared
        k = sh.keys
        # Shard 0's poll tells whether the service is paused; another
        # shard's reads a flag of its own queue, which nobody sets.
        tells_pause = sh.queues.get(service, service) == service
        started = time.monotonic()
        since = self._seen.get(service, 0)
        answer = await scripts.poll().run(
            sh.redis,
            [k.schedule(service), k.scheduled(service), k.jobs(service), k.cancelled(service),
             k.paused(service), k.dead(service)],
            [MAX_MOVED, max(0, since - 1), MAX_CANCELS, HORIZON_MS, limits.DEAD_LETTER_CAP,
             cursor],
        )
        sh.idle_polls.polled(service, started)
        now_ms, moved, next_due, paused = (_int(answer[i]) for i in range(4))
        cancels = answer[4] or []
        errors = answer[5] or []
        next_cursor = _text(answer[7]) if len(answer) > 7 else ""
        # The queue's priority lanes (a poll.lua of before lanes answers 8 values).
        new_lanes = sh.lanes.learn(service, _int(answer[8]) if len(answer) > 8 else 0)
        if new_lanes:
            log.info("reading the priority lanes %s of %s from now on",
                     ", ".join(str(p) for p in new_lanes), service)
            # The taker's NOGROUP creates them too, should this fail.
            try:
                await create_lane_groups(sh.redis, k, sh.lanes, service, new_lanes)
            except Exception as refused:  # noqa: BLE001
                log.debug("could not create the groups of the lanes of %s: %s", service, refused)
        if not tells_pause:
            paused = 0
        was_paused = service in sh.paused
        if paused:
            if not was_paused:
                log.info("service %s is paused", service)
            sh.paused.add(service)
        elif was_paused:
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
        # Something happened in the service: busy for a while.
        if moved > 0 or cancels or new_lanes or was_paused != bool(paused):
            self._busy_until[service] = started + IDLE_AFTER_S
        busy = self._busy_until.get(service, 0.0) > started
        next_poll = started + (POLL_EVERY_S if busy else sh.idle_polls.idle_every_s(service))
        if next_due >= 0:
            next_poll = min(next_poll, started + max(0, next_due - now_ms) / 1000 + 0.002)
        again = moved >= MAX_MOVED or len(cancels) // 2 >= MAX_CANCELS
        self._next_poll[service] = started if again else next_poll
        return again, next_cursor

    async def _poll_services(self, services: list[str]) -> None:
        """One poll of each of ``services`` (again at once while there is more)."""
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + SWEEP_EVERY_S
        for service in services:
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

    async def poll_all(self) -> None:
        """One poll of every service (again at once while there is more)."""
        await self._poll_services(list(self.shared.queues))

    def next_wait_s(self) -> float:
        """Until the next poll of some service, or the next look at the leases."""
        now = time.monotonic()
        first = min(self._next_poll.values(), default=now + POLL_EVERY_S)
        return max(0.0, min(POLL_EVERY_S, first - now))

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            now = time.monotonic()
            self._look_at_leases(now)
            due = [q for q in list(self.shared.queues) if self._next_poll.get(q, now) <= now]
            try:
                await self._poll_services(due)
                delay = 0.1
            except Exception as e:  # noqa: BLE001 - Redis away: try again
                log.warning("the lifecycle poll failed: %s", e)
                for s in due:
                    self._next_poll[s] = max(self._next_poll.get(s, now), time.monotonic() + delay)
                delay = min(delay * 2, 5.0)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.next_wait_s())
            except asyncio.TimeoutError:
                pass
