"""What a handler knows about the call it runs: its id, attempt, deadline,
metadata and whether it was cancelled (the mirror of Rust's ``Context``),
and where it reports its progress (``progress``).

The worker makes one per run; handlers only read it. Cancellation is a
``threading.Event`` so that synchronous handlers (in worker threads) and
asynchronous ones (on the event loop) can both watch it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import MappingProxyType
from typing import Callable, Mapping

from . import progress as _progress
from .options import CallOptions

#: Where a context's progress goes: (fraction, done, total, message,
#: seconds left or None).
Reporter = Callable[[float, "int | None", "int | None", str, "float | None"], None]


class Context:
    """One run of one job."""

    def __init__(
        self,
        *,
        call_id: str,
        job: str,
        attempt: int = 1,
        max_attempts: int = 3,
        metadata: Mapping[str, str] | None = None,
        deadline: float | None = None,
        cancelled: threading.Event | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self._id = call_id
        self._job = job
        self._attempt = attempt
        self._max_attempts = max_attempts
        self._metadata: Mapping[str, str] = MappingProxyType(dict(metadata or {}))
        self._deadline = deadline
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self._reporter = reporter

    @property
    def id(self) -> str:
        """The call id."""
        return self._id

    @property
    def job(self) -> str:
        """``Service.job``."""
        return self._job

    @property
    def attempt(self) -> int:
        """Which attempt this run is, from 1 (redeliveries count)."""
        return self._attempt

    @property
    def max_attempts(self) -> int:
        """The attempt limit that applies to this call."""
        return self._max_attempts

    @property
    def metadata(self) -> Mapping[str, str]:
        """The caller's ``meta`` (trace context, tenant...), read-only."""
        return self._metadata

    @property
    def deadline(self) -> float | None:
        """The call's deadline as Unix seconds on this machine's clock, or
        None when the call has none."""
        return self._deadline

    def time_left(self) -> float | None:
        """Seconds to the deadline (0 when passed), None without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.time())

    def is_cancelled(self) -> bool:
        """Whether the call was cancelled while it ran: a handler that sees
        it should stop (it is answered ``cancelled`` unless it succeeds)."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Returns once the call is cancelled (for ``asyncio.wait`` races)."""
        while not self._cancelled.is_set():
            await asyncio.sleep(0.05)

    def progress(self, progress: float | tuple[int, int], message: str = "") -> None:
        """Reports how far along the job is: a fraction (``0.5``) or steps
        (``(3, 10)``), with a message (cut to 200 characters). It never
        waits: the worker writes the newest value at most every 200 ms.
        Raises ``ValueError`` for a value out of range (NaN, outside 0..1,
        ``done > total``, ``total`` 0); without a worker (a context made by
        hand) the report goes nowhere."""
        fraction, done, total = _progress.check(progress)
        if self._reporter is not None:
            self._reporter(fraction, done, total, _progress.cut_message(str(message)),
                           self.time_left())

    def call_options(self) -> CallOptions:
        """Options for a call a handler makes on the job's behalf: the time
        left as its timeout and the trace context passed on."""
        carried = {k: v for k, v in self._metadata.items() if k in ("traceparent", "tracestate")}
        left = self.time_left()
        # A call made after the deadline still gets a (1 ms) timeout: it
        # times out at once rather than being refused as malformed.
        timeout = None if left is None else max(left, 0.001)
        return CallOptions(timeout=timeout, metadata=carried or None)
