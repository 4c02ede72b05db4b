"""What a worker's loops share: its settings, connections, clock, mounted
jobs, the queues it serves (every shard of every service), the
cancellations and pauses it learned, its leases and counters, the
progress its jobs reported."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as aredis

from ..keys import Keys
from ..spec import JobBinding
from .clock import BrokerClock
from .counts import DailyCounts
from .idle_polls import IdlePolls
from .lanes import Lanes
from .progress import ProgressBoard
from .settings import Settings

if TYPE_CHECKING:
    from .rate_limit import RateBook
    from .metrics import Metrics

#: The most cancellations a worker remembers (then it asks Redis per job).
CANCEL_MEMORY_MAX = 200_000


@dataclass
class Mounted:
    """A job this worker runs."""

    binding: JobBinding
    #: Untyped (``Worker.handle``): ``params`` may be any JSON value.
    untyped: bool = False


class Cancellations:
    """The cancelled call ids this worker learned, and the running jobs
    waiting to hear of theirs."""

    def __init__(self) -> None:
        self._known: OrderedDict[str, int] = OrderedDict()
        self._watch: dict[str, list[tuple[threading.Event, asyncio.Event]]] = {}
        #: Redis's ms until which this worker forgot some (it then asks Redis).
        self.forgot_until_ms = 0

    def note(self, call_id: str, at_ms: int) -> None:
        if call_id not in self._known:
            self._known[call_id] = at_ms
            while len(self._known) > CANCEL_MEMORY_MAX:
                _, forgotten_at = self._known.popitem(last=False)
                self.forgot_until_ms = max(self.forgot_until_ms, forgotten_at + 86_400_000)
        for thread_event, loop_event in self._watch.get(call_id, ()):
            thread_event.set()
            loop_event.set()

    def is_cancelled(self, call_id: str) -> bool:
        return call_id in self._known

    def overflowed(self, now_ms: int) -> bool:
        return now_ms < self.forgot_until_ms

    def prune(self, now_ms: int) -> None:
        horizon = now_ms - 86_400_000
        while self._known:
            first = next(iter(self._known.items()))
            if first[1] >= horizon:
                break
            self._known.popitem(last=False)

    def watch(self, call_id: str) -> tuple[threading.Event, asyncio.Event]:
        pair = (threading.Event(), asyncio.Event())
        self._watch.setdefault(call_id, []).append(pair)
        if call_id in self._known:
            pair[0].set()
            pair[1].set()
        return pair

    def unwatch(self, call_id: str, pair: tuple[threading.Event, asyncio.Event]) -> None:
        watching = self._watch.get(call_id)
        if watching is not None:
            watching.remove(pair)
            if not watching:
                del self._watch[call_id]


@dataclass
class Shared:
    settings: Settings
    keys: Keys
    redis: aredis.Redis
    services: dict[str, dict[str, Mounted]]
    executor: ThreadPoolExecutor
    clock: BrokerClock = field(default_factory=BrokerClock)
    cancels: Cancellations = field(default_factory=Cancellations)
    #: The paused services (``P:{S}:paused``: every shard of theirs).
    paused: set[str] = field(default_factory=set)
    counts: DailyCounts = field(default_factory=DailyCounts)
    metrics: Metrics | None = None
    #: The queues served, each to its service: ``S`` (shard 0) and ``S~k``
    #: for every shard of ``S`` this worker reads (it only ever grows).
    queues: dict[str, str] = field(default_factory=dict)
    #: Live workers per service, and when each queue was last polled.
    idle_polls: IdlePolls = field(default_factory=IdlePolls)
    #: The priority lanes seen, per queue (``lanes.py``).
    lanes: Lanes = field(default_factory=Lanes)
    #: Entries whose lease this worker holds: (queue, entry id, lane), the
    #: lane the priority of the stream it was read from (``P:{Q}:jobs`` is 3).
    leases: set[tuple[str, str, int]] = field(default_factory=set)
    #: Jobs running now (a slot each).
    running: int = 0
    #: Set when a slot frees (the reader waits on it when full).
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Quiet: take no new jobs (a shutdown, or an operator's ``quiet``).
    quiet: bool = False
    #: Progress reported by running jobs, not written yet (``progress.py``).
    progress: ProgressBoard = field(default_factory=ProgressBoard)
    #: The mounted jobs' rate limits (``rate_limit.py``).
    rates: RateBook | None = None
    #: Tasks ending jobs (running or completing), awaited on shutdown.
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
