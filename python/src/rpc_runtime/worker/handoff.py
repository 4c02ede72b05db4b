"""Handing back a job this worker does not know (a rolling deploy: a
worker of an older schema shares the queue with newer ones), through the
schedule, at most 32 times (docs/PROTOCOL.md, step 4.5; the mirror of
``rpc-runtime/src/worker/handoff.rs``)."""

from __future__ import annotations

import secrets

from .. import limits

FIRST_DELAY_MS = 20
DELAY_STEP_MS = 2
LEAST_ROOM_MS = 20
MOST_ROOM_MS = 100
#: The time a trip through the schedule is counted for.
TRIP_ALLOWANCE_MS = 5


def least_delay_ms(handoffs: int) -> int:
    return FIRST_DELAY_MS + DELAY_STEP_MS * handoffs


def _delay_ms(handoffs: int) -> int:
    least = least_delay_ms(handoffs)
    half = least // 2
    return least + (secrets.randbits(64) % (half + 1) if half else 0)


def hand_back(handoffs: int, left_ms: int | None, service: str, job: str) -> int | str:
    """The delay (ms) before the job comes back, or the ``unknown_job``
    answer's message when it is not handed back again."""
    nobody = f"no worker that took it knows job `{job}` of service `{service}`"
    if handoffs >= limits.MAX_HANDOFFS:
        return f"{nobody} (handed back {limits.MAX_HANDOFFS} times)"
    delay = _delay_ms(handoffs)
    if left_ms is None:
        return delay
    room = min(max(left_ms // 2, LEAST_ROOM_MS), MOST_ROOM_MS)
    delay = min(delay, max(0, left_ms - (room + TRIP_ALLOWANCE_MS)))
    # Rust compares Durations: half the least delay, exactly.
    if delay * 2 < least_delay_ms(handoffs):
        return (
            f"{nobody} (handed back {handoffs} times; too little of the call's time is left "
            "for another hand-back)"
        )
    return delay
