"""A client's one inbox and its one reader (docs/PROTOCOL.md, "Reading
replies").

Many calls of one client wait at once; one connection reads their replies
with ``BLMPOP <1 s> 1 <inbox> LEFT COUNT 256`` (``BLPOP`` on a Redis that
has no ``BLMPOP``) while any call waits, and hands each reply to the call
it names. Replies nobody waits for (a caller gave up, a duplicate after a
redelivery) and replies that cannot be read are dropped. With no call
waiting nobody reads.

Two failures are handled here: a read answered ``WRONGTYPE`` (something
overwrote the inbox with a key that is not a list) moves the client to a
fresh inbox for later calls; and any failed read counts in
:attr:`Inbox.failures`, since a read cut short by a broken connection may
have popped replies that never arrived: calls whose result is kept then
also poll ``GET P:result:{id}`` (see ``pending.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import ResponseError

from . import reply as replies
from .errors import CallError
from .keys import Keys
from .message import new_id

log = logging.getLogger("rpc_runtime.client")

#: Replies fetched per blocking read.
REPLY_BATCH = 256
#: How long one blocking read waits before looping (seconds).
REPLY_POLL = 1


class Inbox:
    """The inbox of one client and the task that reads it."""

    def __init__(self, reader: Any, keys: Keys, client_id_prefix: str | None) -> None:
        #: A ``redis.asyncio.Redis`` with one connection of its own, no
        #: response timeout shorter than the block time, used for nothing else.
        self._reader = reader
        self._keys = keys
        self._prefix = client_id_prefix
        self.client_id = new_id(client_id_prefix)
        self.name = keys.inbox(self.client_id)
        #: Call id -> (the future its reply goes to, monotonic deadline).
        self._waiters: dict[str, tuple[asyncio.Future[replies.Reply], float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._blmpop = True
        self._closed = False
        #: How many reads failed so far.
        self.failures = 0
        self._next_failure: asyncio.Future[None] | None = None

    def wait_for(self, call_id: str, deadline: float) -> asyncio.Future[replies.Reply]:
        """Registers a call whose reply the reader will hand over (before
        its message is sent: a fast worker may answer first)."""
        future: asyncio.Future[replies.Reply] = asyncio.get_running_loop().create_future()
        self._waiters[call_id] = (future, deadline)
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._read(), name="rpc-inbox-reader")
        return future

    def forget(self, call_id: str, future: asyncio.Future[replies.Reply]) -> None:
        """The call stopped waiting (it timed out, got its answer elsewhere
        or could not be sent)."""
        entry = self._waiters.get(call_id)
        if entry is not None and entry[0] is future:
            del self._waiters[call_id]

    def is_waiting(self, call_id: str, future: asyncio.Future[replies.Reply]) -> bool:
        """Whether ``future`` still waits for call ``call_id``'s reply (not
        handed over, forgotten or purged)."""
        entry = self._waiters.get(call_id)
        return entry is not None and entry[0] is future

    def next_failure(self) -> asyncio.Future[None]:
        """A future that is done when the next read fails."""
        if self._next_failure is None or self._next_failure.done():
            self._next_failure = asyncio.get_running_loop().create_future()
        return self._next_failure

    @property
    def waiting(self) -> int:
        """How many calls wait for a reply."""
        return len(self._waiters)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for future, _ in self._waiters.values():
            if not future.done():
                future.set_exception(CallError("closed", "the client was closed before the call was answered"))
                future.exception()  # retrieved: whoever awaits it gets it; nobody else warns
        self._waiters.clear()

    async def _read(self) -> None:
        backoff = 0.05
        try:
            while self._waiters and not self._closed:
                name = self.name
                try:
                    popped = await self._pop(name)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a broken connection, WRONGTYPE, NOPERM...
                    self._failed(name, e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    self._purge()
                    continue
                backoff = 0.05
                self._route(popped)
                self._purge()
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _pop(self, name: str) -> list[bytes]:
        if self._blmpop:
            try:
                got = await self._reader.execute_command(
                    "BLMPOP", REPLY_POLL, 1, name, "LEFT", "COUNT", REPLY_BATCH
                )
            except ResponseError as e:
                if "unknown command" not in str(e).lower():
                    raise
                self._blmpop = False  # Redis before 7.0
            else:
                return [] if got is None else list(got[1])
        got = await self._reader.execute_command("BLPOP", name, REPLY_POLL)
        return [] if got is None else [got[1]]

    def _failed(self, name: str, error: Exception) -> None:
        if "WRONGTYPE" in str(error) and name == self.name:
            self.client_id = new_id(self._prefix)
            self.name = self._keys.inbox(self.client_id)
            log.warning(
                "the client's inbox %s was overwritten by a key that is not a list; "
                "moving to a fresh inbox %s",
                name,
                self.name,
            )
        else:
            log.warning("reading the inbox %s failed (%s); reading again", name, error)
        self.failures += 1
        if self._next_failure is not None and not self._next_failure.done():
            self._next_failure.set_result(None)

    def _route(self, popped: list[bytes]) -> None:
        for body in popped:
            reply = replies.parse(body)
            if reply is None:
                log.warning("dropping a reply that cannot be read (%d bytes)", len(body))
                continue
            entry = self._waiters.pop(reply.id, None)
            if entry is None:
                continue  # late (its call gave up) or a duplicate
            if not entry[0].done():
                entry[0].set_result(reply)

    def _purge(self) -> None:
        """Drops waiters whose deadline passed (a handle nobody awaited), so
        the reader stops once no call can still be answered."""
        now = time.monotonic()
        expired = [cid for cid, (_, deadline) in self._waiters.items() if deadline < now]
        for cid in expired:
            del self._waiters[cid]
