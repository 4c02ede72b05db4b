"""Leases: every visibility/3 a worker renews the leases of the jobs it
still runs (``XPENDING`` of its own entries, then ``XCLAIM ... 0 ... JUSTID``)
and, with free slots, reclaims entries idle past the visibility timeout
(``XPENDING IDLE`` then ``XCLAIM``) (docs/PROTOCOL.md, "Leases"). Both per
queue and lane: every shard of a service, and every priority lane of a
shard this worker reads, has its own stream and group."""

from __future__ import annotations

import logging
from typing import Any

from ..keys import GROUP
from .complete import Delivery
from .shared import Shared

log = logging.getLogger("rpc_runtime.worker")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def renew(shared: Shared) -> None:
    """Resets the idle time of the entries this worker runs and still owns."""
    by_stream: dict[str, set[str]] = {}
    for queue, entry, lane in list(shared.leases):
        by_stream.setdefault(shared.keys.jobs_at(queue, lane), set()).add(entry)
    for key, mine in by_stream.items():
        pending = await shared.redis.xpending_range(
            key, GROUP, min="-", max="+", count=len(mine) + 1000,
            consumername=shared.settings.consumer,
        )
        owned: list[Any] = [_s(p["message_id"]) for p in pending if _s(p["message_id"]) in mine]
        if owned:
            await shared.redis.xclaim(key, GROUP, shared.settings.consumer, 0, owned, justid=True)


async def reclaim(shared: Shared, free: int) -> list[Delivery]:
    """Takes over up to ``free`` entries idle past the visibility timeout,
    each queue's lanes most urgent first."""
    out: list[Delivery] = []
    vis = shared.settings.visibility_timeout_ms
    lanes = [(queue, service, lane) for queue, service in list(shared.queues.items())
             for lane in shared.lanes.of(queue)]
    for queue, service, lane in lanes:
        if free <= 0:
            break
        if service in shared.paused:
            continue
        key = shared.keys.jobs_at(queue, lane)
        try:
            pending = await shared.redis.xpending_range(
                key, GROUP, min="-", max="+", count=free, idle=vis
            )
        except Exception as e:  # noqa: BLE001 - NOGROUP and the like: next turn
            log.debug("XPENDING on %s: %s", key, e)
            continue
        if not pending:
            continue
        counts = {_s(p["message_id"]): int(p["times_delivered"]) for p in pending}
        claimed = await shared.redis.xclaim(
            key, GROUP, shared.settings.consumer, vis, list[Any](counts)
        )
        gone: list[str] = []
        for item in claimed:
            entry_id, fields = item if isinstance(item, (tuple, list)) else (item, None)
            if entry_id is None:
                continue
            eid = _s(entry_id)
            if not fields:
                gone.append(eid)
                continue
            payload = fields.get(b"m", b"")
            out.append(
                Delivery(
                    service=service,
                    queue=queue,
                    lane=lane,
                    entry_id=eid,
                    payload=payload if isinstance(payload, bytes) else str(payload).encode(),
                    deliveries=counts.get(eid, 0) + 1,
                    cancelled=fields.get(b"c") == b"1",
                )
            )
            free -= 1
        if gone:
            await shared.redis.xack(key, GROUP, *gone)
    return out
