"""The worker's progress: what its jobs report, kept until it is written
(:class:`ProgressBoard`, safe from handler threads and the loop alike),
and the one task that writes it (:func:`write_loop`), at most one value
per call every 200 ms, the newest. The mirror of rpc-runtime's
``context/progress.rs`` and ``worker/progress_writer.rs``.

Reporting never waits on Redis: a report replaces the call's value not
yet written and, the first time, wakes the writer. Writes are best
effort: a failed one is logged and dropped (the next report replaces it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..progress import WRITE_INTERVAL_S, encode

if TYPE_CHECKING:
    from .shared import Shared  # it holds the board

log = logging.getLogger("rpc_runtime.worker")


@dataclass
class _Report:
    seq: int
    attempt: int
    fraction: float
    done: int | None
    total: int | None
    message: str
    #: When it was reported (Unix seconds, this machine's clock).
    at: float


@dataclass
class _Slot:
    seq: int = 0
    unwritten: _Report | None = None
    ttl_ms: int = 0
    next_write: float = 0.0
    finished: bool = False
    touched: float = 0.0


@dataclass
class _Write:
    call_id: str
    report: _Report
    ttl_ms: int


class ProgressBoard:
    """Reports not written yet, by call id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
        """The writer's loop and event, woken by reports."""
        self._loop, self._wake = loop, wake

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def report(self, call_id: str, attempt: int, ttl_ms: int, fraction: float,
               done: int | None, total: int | None, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            slot = self._slots.get(call_id)
            if slot is None:
                slot = self._slots[call_id] = _Slot(next_write=now)
            slot.seq += 1
            slot.touched = now
            slot.ttl_ms = ttl_ms
            first = slot.unwritten is None
            slot.unwritten = _Report(slot.seq, attempt, fraction, done, total, message,
                                     time.time())
        if first:
            self._notify()

    def finish(self, call_id: str) -> None:
        """The handler returned: its newest value is written now, then the
        slot goes."""
        with self._lock:
            slot = self._slots.get(call_id)
            if slot is None:
                return
            if slot.unwritten is None:
                del self._slots[call_id]
                return
            slot.finished = True
            slot.next_write = time.monotonic()
        self._notify()

    def take_due(self, now: float) -> tuple[list[_Write], float | None]:
        due: list[_Write] = []
        next_due: float | None = None
        with self._lock:
            for call_id, slot in list(self._slots.items()):
                if slot.next_write <= now:
                    if slot.unwritten is not None:
                        due.append(_Write(call_id, slot.unwritten, slot.ttl_ms))
                        slot.unwritten = None
                        slot.next_write = now + WRITE_INTERVAL_S
                elif slot.unwritten is not None:
                    next_due = slot.next_write if next_due is None else min(next_due,
                                                                            slot.next_write)
                stale = now - slot.touched > slot.ttl_ms / 1000
                if slot.unwritten is None and (slot.finished or stale):
                    del self._slots[call_id]
        return due, next_due

    def take_all(self) -> list[_Write]:
        with self._lock:
            writes = [_Write(i, s.unwritten, s.ttl_ms) for i, s in self._slots.items()
                      if s.unwritten is not None]
            self._slots.clear()
        return writes


async def _write(shared: Shared, write: _Write) -> None:
    report = write.report
    ago_ms = max(0, int((time.time() - report.at) * 1000))
    value = encode(seq=report.seq, at_ms=max(0, shared.clock.now_ms() - ago_ms),
                   attempt=report.attempt, fraction=report.fraction, done=report.done,
                   total=report.total, message=report.message)
    try:
        await shared.redis.set(shared.keys.progress(write.call_id), value, px=write.ttl_ms)
    except Exception as e:  # noqa: BLE001 - best effort
        log.debug("progress of %s not written: %s", write.call_id, e)


async def write_loop(shared: Shared) -> None:
    """Writes what jobs report until cancelled (then :func:`flush`)."""
    wake = asyncio.Event()
    board = shared.progress
    board.bind(asyncio.get_running_loop(), wake)
    while True:
        wake.clear()
        due, next_due = board.take_due(time.monotonic())
        for write in due:
            await _write(shared, write)
        timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
        try:
            await asyncio.wait_for(wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass


async def flush(shared: Shared) -> None:
    """Writes every value not written yet (a stopping worker's last)."""
    for write in shared.progress.take_all():
        await _write(shared, write)
