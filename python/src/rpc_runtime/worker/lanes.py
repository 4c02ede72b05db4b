"""The priority lanes a worker reads (docs/PROTOCOL.md, "Priorities"; the
mirror of ``rpc-runtime/src/worker/lanes.rs``).

A queue ``Q``'s calls at priority ``p`` other than 3 wait on a stream of
their own, ``P:{Q}:jobs:<p>``. A worker reads such a lane once a lifecycle
poll of ``Q`` has reported it (``poll.lua``'s ninth value, bit ``p - 1``),
and from then on: the runtime never deletes a stream. So a worker of a
service nobody sends priorities to reads one stream per queue, as it
always did, and pays nothing for the feature.

Kept here: which lanes each queue has, where a stream key's lane is read
back from, and the creation of a new lane's consumer group.
"""

from __future__ import annotations

import logging

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from ..keys import GROUP, Keys
from ..priority import DEFAULT, LANES, OTHER_LANES, bit

log = logging.getLogger("rpc_runtime.worker")

#: The bits of the lanes other than the default one (1, 2, 8, 16).
LANE_BITS = sum(bit(p) for p in OTHER_LANES)


class Lanes:
    """The lanes seen, per queue."""

    def __init__(self) -> None:
        #: Queue -> its lanes seen besides the default one (bit ``p - 1``).
        self._seen: dict[str, int] = {}
        #: The lanes whose group Redis refused, logged once.
        self.told: set[str] = set()

    def any(self) -> bool:
        """Whether some queue has a lane other than the default: until one
        has, the worker reads as it always did."""
        return any(self._seen.values())

    def learn(self, queue: str, bits: int) -> list[int]:
        """Learns the lanes of ``queue`` a poll reported; returns the
        priorities of the lanes new to this worker, most urgent first."""
        known = self._seen.get(queue, 0)
        new = bits & ~known & LANE_BITS
        if not new:
            return []
        self._seen[queue] = known | new
        return [p for p in OTHER_LANES if new & bit(p)]

    def forget(self, queue: str, p: int) -> None:
        """Stops reading lane ``p`` of ``queue`` (its key is not a stream);
        the next poll that reports it makes the worker try again."""
        self._seen[queue] = self._seen.get(queue, 0) & ~bit(p)

    def of(self, queue: str) -> list[int]:
        """The lanes of ``queue`` this worker reads, most urgent first: the
        default one always, the others once seen."""
        bits = self._seen.get(queue, 0) | bit(DEFAULT)
        return [p for p in LANES if bits & bit(p)]


def lane_of_key(stream_key: str) -> int:
    """The priority of a jobs stream's key: ``p`` for ``P:{Q}:jobs:<p>``, 3
    for ``P:{Q}:jobs``."""
    head, sep, tail = stream_key.rpartition(":jobs:")
    if sep and head.endswith("}") and tail in ("1", "2", "4", "5"):
        return int(tail)
    return DEFAULT


async def create_groups(redis: aredis.Redis, keys: Keys, lanes: Lanes, queue: str,
                        priorities: list[int]) -> None:
    """Creates the consumer group on lanes ``priorities`` of ``queue``
    (``XGROUP CREATE ... 0 MKSTREAM``; one that exists is fine). A lane
    Redis refuses it for (a key that is not a stream, a user not allowed
    the lanes) is forgotten, logged once: the other lanes are read, and the
    next poll that reports the lane tries again."""
    for p in priorities:
        key = keys.jobs_at(queue, p)
        try:
            await redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" in str(e):
                lanes.told.discard(key)
                continue
            if key not in lanes.told:
                lanes.told.add(key)
                log.error("cannot read %s (%s): not reading lane %d of %s until it can be",
                          key, e, p, queue)
            lanes.forget(queue, p)
            continue
        lanes.told.discard(key)
