"""A call in flight and what it answers: :class:`AsyncPending` (await its
``result()``), :class:`Pending` (the same for the synchronous client) and
:class:`Response` (the old library's ``Response(data, id, response_key)``).

A handle waits for its reply until the call's deadline on this machine's
monotonic clock, then raises :class:`~rpc_runtime.CallTimeout`. A call whose
result is kept also polls ``GET P:result:{id}`` once a read of the inbox
failed (the reply may have been popped and lost). A ``holder`` answer (the
call's idempotency key is held by an earlier call for the same job and
parameters) is followed to the holder's kept result, taken only when it
carries the holder answer's ``fingerprint``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Generic, TypeVar

from . import reply as replies
from .errors import CallTimeout
from .progress_watch import AsyncProgressWatch, ProgressWatch
from .spec import JobSpec

if TYPE_CHECKING:
    from .client import AsyncClient

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class Response:
    """The answer of an untyped call: what the job returned (``data``),
    the call id (``id``) and the key its result is kept under
    (``response_key``). For a call whose idempotency key an earlier call
    held, ``id`` and ``response_key`` are that call's."""

    data: Any
    id: str
    response_key: str


class AsyncPending(Generic[R]):
    """A call sent and not yet answered (or re-attached by id)."""

    def __init__(
        self,
        client: AsyncClient,
        spec: JobSpec[R] | None,
        call_id: str,
        *,
        future: asyncio.Future[replies.Reply] | None,
        deadline: float,
        wait: float,
        kept: bool,
    ) -> None:
        self._client = client
        self._spec = spec
        self._id = call_id
        self._future = future
        self._deadline = deadline
        self._wait = wait
        self._kept = kept
        self._failures_seen = client._inbox.failures
        self._holder: replies.Reply | None = None
        self._answer: tuple[str, replies.Reply] | None = None
        self._asked: float | None = None

    @property
    def id(self) -> str:
        """The call id."""
        return self._id

    @property
    def job(self) -> str | None:
        """``Service.job``, when known (not for a call attached by id)."""
        return self._spec.job if self._spec is not None else None

    @property
    def response_key(self) -> str:
        """The key the result is kept under (``P:result:{id}``)."""
        return self._client.keys.result(self._id)

    @property
    def deadline(self) -> float:
        """When the caller stops waiting, on ``time.monotonic()``."""
        return self._deadline

    def progress(self) -> AsyncProgressWatch:
        """Watches this call's progress until it is answered or its deadline
        passes: an async iterator of :class:`~rpc_runtime.progress.Progress`
        values (and :class:`~rpc_runtime.ProgressError` items, after which it
        goes on); see ``progress_watch.py``. Await ``result()`` alongside,
        or after it ends. A call attached by id ends its watch when its kept
        result is there."""
        return AsyncProgressWatch(self._client, self._id, self._deadline, answer=self._future)

    async def result(self, timeout: float | None = None) -> R:
        """Waits for the answer, at most ``timeout`` seconds (None: until the
        call's deadline), and returns it decoded: an ``app`` error raises the
        job's exception, any other error :class:`~rpc_runtime.CallError`, no
        answer :class:`~rpc_runtime.CallTimeout`. A timeout shorter than the
        call's leaves the call pending: ask again."""
        answered_by, reply = await self.answer(timeout)
        spec = self._spec
        result: R = replies.outcome(
            reply,
            job=spec.job if spec is not None else None,
            call_id=answered_by,
            decode_result=spec.decode_result if spec is not None else _identity,
            decode_error=spec.decode_error if spec is not None else None,
        )
        return result

    async def cancel(self) -> None:
        """Cancels the call (through the service's intake): a worker answers
        it ``cancelled`` if it has not run yet, and tells its handler if it
        runs. A call attached by id needs :meth:`AsyncClient.cancel`."""
        if self._spec is None:
            raise ValueError("this call was attached by id: its service is not known; use client.cancel(id, service)")
        await self._client.cancel(self._id, self._spec.service, schema_shards=self._spec.shards)

    async def answer(self, timeout: float | None = None) -> tuple[str, replies.Reply]:
        """The answering call's id and its reply (an answer, never a holder
        answer): this call's, or the holder's for a call answered with one."""
        if self._answer is not None:
            return self._answer
        limit = self._deadline if timeout is None else min(self._deadline, time.monotonic() + max(0.0, timeout))
        self._asked = timeout
        if self._holder is None:
            got = await self._envelope(limit)
            if got.holder is None:
                self._answer = (self._id, got)
                return self._answer
            self._holder = got
        holder = self._holder
        assert holder.holder is not None
        kept = await self._poll_kept(holder.holder, limit, follow=True)
        self._answer = (holder.holder, replies.vouched(kept, holder, self.job))
        return self._answer

    async def _envelope(self, limit: float) -> replies.Reply:
        """This call's reply: routed by the inbox, or its kept result."""
        future = self._future
        if future is None:
            got = await self._poll_kept(self._id, limit, follow=False)
            assert got is not None
            return got
        inbox = self._client._inbox
        polling = False
        delay = 0.1
        while True:
            if future.done():
                return future.result()
            left = limit - time.monotonic()
            if left <= 0:
                return await self._timed_out(limit, future)
            if self._kept and not polling and inbox.failures > self._failures_seen:
                polling = True
            if polling:
                kept = await self._get(self._id)
                if kept is not None:
                    inbox.forget(self._id, future)
                    return kept
                await asyncio.wait({future}, timeout=min(delay, max(0.0, limit - time.monotonic())))
                delay = min(delay * 2, 1.0)
                continue
            waited_on: set[asyncio.Future[Any]] = {future}
            if self._kept:
                waited_on.add(inbox.next_failure())
            await asyncio.wait(waited_on, timeout=left, return_when=asyncio.FIRST_COMPLETED)

    async def _timed_out(self, limit: float, future: asyncio.Future[replies.Reply]) -> replies.Reply:
        if limit < self._deadline:
            raise self._still_pending()
        self._client._inbox.forget(self._id, future)
        if self._kept:
            # Its reply may sit in the kept result (a read that broke).
            kept = await self._get(self._id)
            if kept is not None:
                return kept
        raise await self._client._timeout(self.job, self._id, self._wait)

    def _still_pending(self) -> CallTimeout:
        return CallTimeout(
            f"no answer within the {self._asked or 0.0:.3g} s asked; the call is still pending",
            job=self.job,
            call_id=self._id,
        )

    async def _get(self, call_id: str) -> replies.Reply | None:
        """The readable reply kept under ``call_id``, if any (errors of a
        Redis still away read as none: try again later)."""
        try:
            body = await self._client._get_result(call_id)
        except Exception:
            return None
        return None if body is None else replies.parse(body)

    async def _poll_kept(self, call_id: str, limit: float, *, follow: bool) -> replies.Reply | None:
        """Polls ``P:result:{call_id}`` until ``limit``. Following a holder,
        what is there is returned as it is (``vouched`` judges it, and
        refuses what cannot be read); else only a readable reply is."""
        delay = 0.02
        while True:
            left = limit - time.monotonic()
            try:
                body = await asyncio.wait_for(self._client._get_result(call_id), timeout=max(left, 0.001))
            except (asyncio.TimeoutError, Exception):
                body = None
            if body is not None:
                got = replies.parse(body)
                if follow or got is not None:
                    return got
            now = time.monotonic()
            if now >= limit:
                if limit < self._deadline:
                    raise self._still_pending()
                raise await self._client._timeout(self.job, self._id, self._wait)
            await asyncio.sleep(min(delay, limit - now))
            delay = min(delay * 2, 0.5)


def _identity(value: Any) -> Any:
    return value


class Pending(Generic[R]):
    """A call in flight, for the synchronous :class:`~rpc_runtime.Client`:
    ``.id``, ``.response_key``, ``.result(timeout=None)``, ``.cancel()``,
    ``.progress()``."""

    def __init__(self, inner: AsyncPending[R], run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._inner = inner
        self._run = run

    @property
    def id(self) -> str:
        """The call id."""
        return self._inner.id

    @property
    def job(self) -> str | None:
        return self._inner.job

    @property
    def response_key(self) -> str:
        """The key the result is kept under (``P:result:{id}``)."""
        return self._inner.response_key

    def progress(self) -> ProgressWatch:
        """Watches this call's progress (see :meth:`AsyncPending.progress`):
        an iterator that blocks between values and ends when the call is
        answered or its deadline passes; take ``result()`` after it."""
        return ProgressWatch(self._inner.progress(), self._run)

    def result(self, timeout: float | None = None) -> R:
        """Blocks until the answer (see :meth:`AsyncPending.result`)."""
        result: R = self._run(self._inner.result(timeout))
        return result

    def cancel(self) -> None:
        """Cancels the call (see :meth:`AsyncPending.cancel`)."""
        self._run(self._inner.cancel())

    def __repr__(self) -> str:
        return f"Pending(id={self.id!r}, job={self.job!r})"
