"""Taking by priority: how a worker that reads several lanes shares its
free slots between them (docs/PROTOCOL.md, "Priorities"; the mirror of
``rpc-runtime/src/worker/lane_take.rs``).

Each free slot goes to a lane by smooth weighted round robin over the
lanes read, weights ``priority.weight`` (256, 64, 16, 4, 1): lane ``p`` gets
``weight(p)`` of every ``sum of weights`` slots, evenly spread, so a less
urgent lane is delayed by the more urgent ones but never starved. The
lanes are then read without waiting (``XREADGROUP`` without ``BLOCK``), most
urgent first, each for its share; slots a lane could not fill go to the
others, most urgent first. Only when every lane is empty does the worker
wait, on all of them in one ``XREADGROUP`` (``COUNT 1``). FIFO holds within
a lane.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..keys import GROUP
from ..priority import LANES, weight

#: What ``XREADGROUP`` answers: (stream key, [(entry id, fields)]) per stream.
Read = list[Any]


class LanePicker:
    """The weighted round robin's memory between takes."""

    def __init__(self) -> None:
        #: Each lane's credit, by priority.
        self._credit = {p: 0 for p in LANES}

    def share(self, read: Sequence[int], free: int) -> dict[int, int]:
        """How many of ``free`` slots each lane of ``read`` (priorities)
        gets."""
        out = {p: 0 for p in LANES}
        lanes = [p for p in LANES if p in read]
        total = sum(weight(p) for p in lanes)
        if total == 0:
            return out
        for _ in range(free):
            best: int | None = None
            for p in lanes:
                self._credit[p] += weight(p)
                # Most urgent first: a tie stays with the more urgent lane.
                if best is None or self._credit[p] > self._credit[best]:
                    best = p
            assert best is not None
            self._credit[best] -= total
            out[best] += 1
        return out


async def take(reader: Any, consumer: str, picker: LanePicker,
               streams: Mapping[int, Sequence[str]], free: int, block_ms: int) -> Read:
    """Leases up to about ``free`` jobs of ``streams`` (each lane's stream
    keys, by priority) by weight, waiting up to ``block_ms`` when all are
    empty."""
    read = [p for p in LANES if streams.get(p)]
    share = picker.share(read, free)
    out: Read = []
    taken = 0
    # Lanes that gave all they were asked for may hold more.
    more: dict[int, bool] = {}
    for p in read:
        if share[p] == 0:
            continue
        got = await _look(reader, consumer, streams[p], share[p], out)
        taken += got
        more[p] = got >= share[p]
    for p in read:
        left = free - taken
        if left <= 0:
            break
        if more.get(p, share[p] == 0):
            taken += await _look(reader, consumer, streams[p], left, out)
    if taken == 0:
        every = {key: ">" for p in read for key in streams[p]}
        out = list(await reader.xreadgroup(GROUP, consumer, every, count=1, block=block_ms) or [])
    return out


async def _look(reader: Any, consumer: str, keys: Sequence[str], want: int, out: Read) -> int:
    """Leases up to about ``want`` jobs of one lane's streams without
    waiting (``COUNT`` is per stream: the want shared among them); returns
    how many."""
    per_stream = -(-want // len(keys))
    got = await reader.xreadgroup(GROUP, consumer, {key: ">" for key in keys}, count=per_stream)
    n = 0
    for stream, entries in got or []:
        out.append([stream, entries])
        n += len(entries or [])
    return n
