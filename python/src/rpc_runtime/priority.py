"""A call's priority: which of a queue's five lanes it waits in, and how a
worker shares its slots between the lanes (docs/PROTOCOL.md, "Priorities";
the mirror of ``rpc-protocol/src/priority.rs``).

Priorities run from :data:`HIGHEST` (1, taken first) to :data:`LOWEST`
(5); :data:`DEFAULT` (3) is the middle, and a call at 3 waits where every
call always did, on ``P:{Q}:jobs``. A call at another priority ``p`` waits
on ``P:{Q}:jobs:<p>`` (``Keys.jobs_at``), in the same slot. Workers take
from the lanes by weight (:func:`weight`: 256, 64, 16, 4, 1), never
strictly, so a flood of urgent calls delays the rest but never starves it.
"""

from __future__ import annotations

#: The most urgent priority.
HIGHEST = 1
#: The least urgent priority.
LOWEST = 5
#: A call's priority when none is given.
DEFAULT = 3
#: Every lane, most urgent first.
LANES = (1, 2, 3, 4, 5)
#: The lanes other than the default one, most urgent first.
OTHER_LANES = (1, 2, 4, 5)


def is_priority(p: object) -> bool:
    """Whether ``p`` is a priority: an integer (not a bool) from 1 to 5."""
    return isinstance(p, int) and not isinstance(p, bool) and HIGHEST <= p <= LOWEST


def weight(p: int) -> int:
    """Lane ``p``'s share of a worker's starts while every lane has work:
    ``4^(LOWEST - p)``."""
    p = min(max(p, HIGHEST), LOWEST)
    return int(4 ** (LOWEST - p))


def bit(p: int) -> int:
    """Lane ``p``'s bit in the lanes ``poll.lua`` reports (bit ``p - 1``)."""
    return 1 << (p - 1)


def out_of_range(p: object) -> str:
    """A priority out of range, as a client or a worker says it (the same
    words as ``priority::out_of_range``)."""
    return (f"`priority` {p} is outside {HIGHEST}..={LOWEST} "
            f"(1 is the most urgent, {DEFAULT} the default)")
