"""Which shard of a sharded service a client puts a call on
(docs/PROTOCOL.md, "Sharded services"; ``rpc_runtime.shards``).

The shard count is read with ``HMGET P:{S}:shards count seen`` (the
client's ACL role allows that, and no script) and kept for
:data:`CACHE_S`; a valid ``count`` wins, else the larger of the schema's
``N`` and ``seen`` (an untyped call's ``N`` is 1). A call
with an idempotency key goes to the key's shard (every duplicate meets the
same claim), one with a group key (and none) to its group key's shard (one
key's slots are one slot's state); the others go round robin from a random start, one turn per
service. A count that cannot be read (a key of another type, a user
without ``+hmget`` on it) is taken as unset: the schema's ``N`` places the
call. When Redis is slow or away the last count known stands (the push
itself reports a Redis that is away).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from redis.exceptions import ResponseError

from . import shards
from .keys import Keys

log = logging.getLogger("rpc_runtime.client")

#: How long a service's shard count is kept before it is read again.
CACHE_S = 5.0
#: The longest the read of a shard count may hold a call up.
READ_BOUND_S = 1.0


class Placement:
    """One client's view of its services' shard counts, and its turns."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._counts: dict[str, tuple[float, shards.ShardCount]] = {}
        #: Reads under way: the calls that find the count stale meanwhile wait for it.
        self._reading: dict[str, asyncio.Future[shards.ShardCount | None]] = {}
        self._turn: dict[str, int] = {}
        self._told: set[str] = set()

    async def count(self, redis: Any, service: str) -> shards.ShardCount:
        """``service``'s shard count, read at most every :data:`CACHE_S`."""
        now = time.monotonic()
        cached = self._counts.get(service)
        if cached is not None and now < cached[0]:
            return cached[1]
        reading = self._reading.get(service)
        if reading is None:
            reading = asyncio.ensure_future(self._read(redis, service))
            self._reading[service] = reading

            def settle(done: asyncio.Future[shards.ShardCount | None]) -> None:
                if self._reading.get(service) is done:
                    del self._reading[service]
                if not done.cancelled() and done.exception() is None:
                    # A read that failed keeps the last count known.
                    read = done.result()
                    known = read if read is not None else self._known(service)
                    self._counts[service] = (time.monotonic() + CACHE_S, known)

            reading.add_done_callback(settle)
        read = await asyncio.shield(reading)
        return read if read is not None else self._known(service)

    def _known(self, service: str) -> shards.ShardCount:
        cached = self._counts.get(service)
        return cached[1] if cached is not None else shards.ShardCount()

    async def _read(self, redis: Any, service: str) -> shards.ShardCount | None:
        """The count in Redis; None when Redis did not answer in time."""
        key = self._keys.shards(service)
        try:
            fields = await asyncio.wait_for(
                redis.execute_command("HMGET", key, shards.FIELD_COUNT, shards.FIELD_SEEN),
                READ_BOUND_S,
            )
        except ResponseError as e:
            # WRONGTYPE (garbage in the key) or NOPERM (a role from before
            # sharding): as if unset.
            if service not in self._told:
                self._told.add(service)
                log.info("cannot read the shard count %s (%s); placing calls of %s by the "
                         "schema's number of shards", key, e, service)
            return shards.ShardCount()
        except Exception as e:  # noqa: BLE001 - slow or away: the push will tell
            log.debug("reading the shard count %s failed: %s", key, e)
            return None
        return shards.ShardCount.of_fields(fields)

    async def place(self, redis: Any, service: str, schema: int,
                    idempotency_key: str | None) -> tuple[int, int]:
        """The shard for a call of ``service`` and the count it was placed
        among: ``(k, count)``. ``idempotency_key`` is the call's key that
        names its shard: its idempotency key, else its group key."""
        count = (await self.count(redis, service)).placing(_schema(schema))
        if count <= 1:
            return 0, 1
        if idempotency_key is not None:
            return shards.shard_of_key(idempotency_key, count), count
        turn = self._turn.get(service)
        if turn is None:
            turn = secrets.randbelow(shards.MAX_SHARDS)
        self._turn[service] = (turn + 1) % (1 << 30)
        return turn % count, count

    async def serving(self, redis: Any, service: str, schema: int) -> int:
        """How many shards may hold a call of ``service``: where an unmarked
        cancellation looks."""
        return (await self.count(redis, service)).serving(_schema(schema))


def _schema(n: int) -> int:
    """The schema's number of shards, held to ``1..=MAX_SHARDS``."""
    return min(max(n, 1), shards.MAX_SHARDS)
