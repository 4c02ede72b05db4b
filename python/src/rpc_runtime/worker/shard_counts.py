"""How many shards of each service a worker reads: ``shards.lua serve <N>``
on the service's shard count (``P:{S}:shards``), at start and every
:data:`EVERY_S`, which records that this worker serves the schema's ``N``
(raising ``seen``) and answers ``{count, seen}``. The worker reads shards
``0 .. max(N, count, seen)`` (``ShardCount.serving``): every shard a client
may have placed a call on, so lowering the count loses nothing. The mirror
of the Rust worker's use of ``backend::ShardCounts``."""

from __future__ import annotations

import logging

import redis.asyncio as aredis

from .. import scripts, shards
from ..keys import Keys

log = logging.getLogger("rpc_runtime.worker")

#: How often a worker looks at the shard counts again.
EVERY_S = 5.0


async def serve(redis: aredis.Redis, keys: Keys, service: str, schema: int) -> shards.ShardCount:
    """Records that ``service``'s ``schema`` shards are served; returns the
    count as it is after (a field that is garbage reads as absent)."""
    answer = await scripts.shards().run(
        redis, [keys.shards(service)], ["serve", schema, shards.MAX_SHARDS]
    )
    return shards.ShardCount.of_fields(answer)


async def serving(
    redis: aredis.Redis, keys: Keys, schema: dict[str, int], before: dict[str, int]
) -> dict[str, int]:
    """How many shards of each service to read now: what Redis says, never
    fewer than ``before`` (a worker never stops reading a shard it read) nor
    the schema's. A service whose count cannot be read (Redis away, a user
    without the script's rights) keeps what it had."""
    out: dict[str, int] = {}
    for service, n in schema.items():
        had = max(before.get(service, 0), n)
        try:
            count = await serve(redis, keys, service, n)
        except Exception as e:  # noqa: BLE001 - the count is read again soon
            log.warning("could not read the shard count of %s (%s); serving %d shard(s)",
                        service, e, had)
            out[service] = had
            continue
        out[service] = max(had, count.serving(n))
    return out
