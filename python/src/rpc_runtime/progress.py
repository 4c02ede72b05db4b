"""A call's progress as a handler reports it and a worker writes it
(docs/PROTOCOL.md, "Progress"): the checks of a reported value, the
message's limit, the key's TTL and the JSON written to
``P:progress:{call}``. The mirror of ``rpc_protocol::progress``.
"""

from __future__ import annotations

import json
import math

#: The longest message kept, in characters.
MESSAGE_CHARS = 200
#: A worker writes a call's progress at most once per this many seconds.
WRITE_INTERVAL_S = 0.2
#: The TTL of a call's progress without a deadline or a kept result.
DEFAULT_TTL_MS = 3_600_000
#: The longest TTL a progress value is given.
MAX_TTL_MS = 86_400_000

#: A reported value, checked: (fraction, done, total).
Checked = tuple[float, "int | None", "int | None"]


def check(progress: float | tuple[int, int]) -> Checked:
    """The fraction (and steps) of a report: a number from 0 to 1, or
    ``(done, total)`` with ``1 <= total`` and ``0 <= done <= total``.
    Raises ``ValueError`` for anything else (NaN, infinities, bools)."""
    if isinstance(progress, tuple):
        if len(progress) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in progress
        ):
            raise ValueError(f"progress steps are (done, total) integers, not {progress!r}")
        done, total = progress
        if total < 1 or done < 0 or done > total:
            raise ValueError(
                "progress steps must be done/total with 0 <= done <= total and total >= 1, "
                f"not {done}/{total}"
            )
        return done / total, done, total
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        raise ValueError(f"progress is a fraction or (done, total), not {progress!r}")
    fraction = float(progress)
    if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a progress fraction must be a number from 0 to 1, not {progress}")
    return fraction, None, None


def cut_message(message: str) -> str:
    """``message`` cut to at most :data:`MESSAGE_CHARS` characters."""
    return message[:MESSAGE_CHARS]


def ttl_ms(left_ms: int | None, kept_ms: int | None) -> int:
    """What is left of the deadline plus how long the result is kept (1 h
    with neither), from 1 s to 24 h."""
    if left_ms is None and not kept_ms:
        ttl = DEFAULT_TTL_MS
    else:
        ttl = (DEFAULT_TTL_MS if left_ms is None else left_ms) + (kept_ms or 0)
    return min(max(ttl, 1000), MAX_TTL_MS)


def encode(
    *,
    seq: int,
    at_ms: int,
    attempt: int,
    fraction: float,
    done: int | None,
    total: int | None,
    message: str,
) -> str:
    """The compact JSON a worker writes (``done``/``total`` only for steps)."""
    value: dict[str, object] = {"seq": seq, "at_ms": at_ms, "attempt": attempt}
    if done is not None and total is not None:
        value["done"] = done
        value["total"] = total
    value["fraction"] = fraction
    value["message"] = message
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
