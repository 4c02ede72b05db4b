"""Watching a call's progress (docs/PROTOCOL.md, "Progress"):
:class:`AsyncProgressWatch`, an async iterator, from an
:class:`~rpc_runtime.AsyncPending` (``pending.progress()``) or by call id
(``AsyncClient.watch_progress(call_id, timeout)``), and
:class:`ProgressWatch`, the same as a plain iterator for the synchronous
client. The mirror of rpc-runtime's ``ProgressWatch``.

A watch reads ``GETRANGE P:progress:{id} 0 2048`` every
:data:`~rpc_runtime.progress.WATCH_INTERVAL_S` and yields each value whose
``(attempt, seq)`` is newer than the last it yielded (progress is a state:
values written between two reads are skipped, never queued). It ends when
the call is answered (its reply reached this client, or for a call watched
by id its kept result is there), with the value read after that, or at its
deadline; no read outlasts the deadline. A value that is not progress is
yielded once as a :class:`~rpc_runtime.BadProgress` item and then skipped;
a read that fails is yielded as a :class:`~rpc_runtime.ProgressError` item
(its ``__cause__`` the error). Neither ends the watch, and neither is
raised: check each item with ``isinstance(item, Progress)``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Union

from .errors import BadProgress, ProgressError
from .progress import WATCH_INTERVAL_S, Progress, decode

if TYPE_CHECKING:
    from . import reply as replies
    from .client import AsyncClient

#: What a watch yields: a new value, or an error it goes on after.
ProgressItem = Union[Progress, ProgressError]

#: The longest watch by id: a timeout of more is this (a century).
LONGEST_WATCH_S = 100 * 365 * 24 * 3600.0


class AsyncProgressWatch:
    """A watch on one call's progress: ``async for item in watch`` until the
    call is answered or the deadline passes. Each item is a
    :class:`~rpc_runtime.progress.Progress` or a
    :class:`~rpc_runtime.ProgressError` (the watch goes on after it)."""

    def __init__(
        self,
        client: AsyncClient,
        call_id: str,
        deadline: float,
        *,
        answer: asyncio.Future[replies.Reply] | None,
    ) -> None:
        self._client = client
        self._id = call_id
        self._deadline = deadline
        # The call's reply is routed to this client: it is answered once its
        # future is done (None: look for the kept result).
        self._answer = answer
        self._seen: tuple[int, int] | None = None
        self._refused: bytes | None = None
        self._next_read: float | None = None
        self._ended = False

    @property
    def id(self) -> str:
        """The call watched."""
        return self._id

    @property
    def deadline(self) -> float:
        """When the watch ends at the latest, on ``time.monotonic()``."""
        return self._deadline

    def __aiter__(self) -> AsyncProgressWatch:
        return self

    async def __anext__(self) -> ProgressItem:
        item = await self.next()
        if item is None:
            raise StopAsyncIteration
        return item

    async def next(self) -> ProgressItem | None:
        """The next new value or error; None once the call is answered or
        the deadline has passed (and ever after)."""
        while True:
            if self._ended:
                return None
            if self._next_read is not None:
                wait = min(self._next_read, self._deadline) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            if time.monotonic() >= self._deadline:
                self._ended = True
                return None
            self._next_read = time.monotonic() + WATCH_INTERVAL_S
            # Looked at before the read: the value read after an answer is
            # the last there will be.
            answered = await self._answered()
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._ended = True
                return None
            try:
                raw = await asyncio.wait_for(self._client._read_progress(self._id), timeout=left)
            except asyncio.TimeoutError:
                self._ended = True
                return None
            except Exception as e:
                self._ended = answered
                error = ProgressError(f"could not read the progress of call {self._id}: {e}")
                error.__cause__ = e
                return error
            self._ended = answered
            if not raw:
                continue
            try:
                value = decode(raw)
            except BadProgress as e:
                if raw != self._refused:
                    self._refused = raw
                    return e
                continue
            if value.is_after(self._seen):
                self._seen = (value.attempt, value.seq)
                return value

    async def _answered(self) -> bool:
        """Whether the call has been answered (within the deadline)."""
        if self._answer is not None:
            # The reader drops a call's waiter as it hands over its reply (and
            # a call that gave up or got its answer elsewhere drops its own).
            answer = self._answer
            return answer.done() or not self._client._inbox.is_waiting(self._id, answer)
        left = self._deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            kept = await asyncio.wait_for(self._client._get_result(self._id), timeout=left)
        except (asyncio.TimeoutError, Exception):
            return False
        return kept is not None

    def __repr__(self) -> str:
        return f"AsyncProgressWatch(id={self._id!r}, seen={self._seen!r}, ended={self._ended!r})"


class ProgressWatch:
    """:class:`AsyncProgressWatch` for the synchronous client: ``for item in
    watch`` blocks the thread between values, at most until the deadline."""

    def __init__(self, inner: AsyncProgressWatch, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._inner = inner
        self._run = run

    @property
    def id(self) -> str:
        """The call watched."""
        return self._inner.id

    @property
    def deadline(self) -> float:
        """When the watch ends at the latest, on ``time.monotonic()``."""
        return self._inner.deadline

    def __iter__(self) -> ProgressWatch:
        return self

    def __next__(self) -> ProgressItem:
        item = self.next()
        if item is None:
            raise StopIteration
        return item

    def next(self) -> ProgressItem | None:
        """See :meth:`AsyncProgressWatch.next`."""
        item: ProgressItem | None = self._run(self._inner.next())
        return item

    def __repr__(self) -> str:
        return f"ProgressWatch(id={self.id!r})"
