"""A call's progress as a handler reports it, a worker writes it and a
watcher reads it (docs/PROTOCOL.md, "Progress"): the checks of a reported
value, the message's limit, the key's TTL, the JSON written to
``P:progress:{call}`` and :func:`decode`, the strict reading of what the key
holds (:class:`Progress`, or :class:`~rpc_runtime.BadProgress`). The mirror
of ``rpc_protocol::progress``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .errors import BadProgress

#: The longest message kept, in characters.
MESSAGE_CHARS = 200
#: A worker writes a call's progress at most once per this many seconds.
WRITE_INTERVAL_S = 0.2
#: The TTL of a call's progress without a deadline or a kept result.
DEFAULT_TTL_MS = 3_600_000
#: The longest TTL a progress value is given.
MAX_TTL_MS = 86_400_000
#: The largest value a watcher reads, in bytes (``GETRANGE key 0 2048``
#: gives at most one more, which is refused).
MAX_VALUE_BYTES = 2048
#: How often a watcher reads the key, in seconds.
WATCH_INTERVAL_S = 0.2

_U64 = 2**64 - 1
_U32 = 2**32 - 1

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


@dataclass(frozen=True)
class Progress:
    """One progress value of a call, as its handler reported it."""

    #: The report's number within its attempt, from 1 (values written less
    #: often than reported skip numbers).
    seq: int
    #: The attempt that reported it, from 1.
    attempt: int
    #: When it was reported, ms since the epoch (the broker's clock as the
    #: worker saw it).
    at_ms: int
    #: How far along, 0 to 1 (for steps, ``done / total``).
    fraction: float
    #: Steps done, with ``total``; both None for a plain fraction.
    done: int | None
    #: The number of steps (at least 1 and at least ``done``), or None.
    total: int | None
    #: What the handler said, at most :data:`MESSAGE_CHARS` characters.
    message: str

    def is_after(self, seen: tuple[int, int] | None) -> bool:
        """Whether this value comes after ``seen``, the ``(attempt, seq)``
        of the last value passed on (None: nothing yet)."""
        return seen is None or (self.attempt, self.seq) > seen


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's members in order (duplicates kept, to be refused)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _integer(fields: dict[str, Any], name: str, low: int, high: int) -> int:
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadProgress(f"the progress value is not the documented JSON object: `{name}` is not an integer")
    if not low <= value <= high:
        raise BadProgress(
            f"the progress value is not the documented JSON object: `{name}` is out of range ({value})"
        )
    return int(value)


def decode(raw: bytes) -> Progress:
    """Reads a stored progress value strictly, as
    ``rpc_protocol::progress::ProgressValue::decode`` does: at most
    :data:`MAX_VALUE_BYTES`, UTF-8, a JSON object (not an array), ``seq``
    and ``at_ms`` integers from 0, ``attempt`` from 1 (absent: 1),
    ``done``/``total`` both or neither (``1 <= total``, ``done <= total``),
    ``fraction`` a number from 0 to 1, ``message`` a string (absent: "",
    cut to :data:`MESSAGE_CHARS`); unknown members are ignored. Raises
    :class:`~rpc_runtime.BadProgress` for anything else, never another
    exception."""
    if len(raw) > MAX_VALUE_BYTES:
        raise BadProgress(
            f"the progress value is {len(raw)} bytes or more, over the limit of {MAX_VALUE_BYTES}"
        )
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise BadProgress(f"the progress value is not the documented JSON object: {e}") from None
    if not isinstance(parsed, _Pairs):
        raise BadProgress("the progress value is not the documented JSON object: not a JSON object")
    fields: dict[str, Any] = {}
    for name, value in parsed:
        if name in _FIELDS and name in fields:
            raise BadProgress(f"the progress value is not the documented JSON object: duplicate field `{name}`")
        fields[name] = value
    for name in ("seq", "at_ms", "fraction"):
        if name not in fields:
            raise BadProgress(f"the progress value is not the documented JSON object: missing field `{name}`")
    seq = _integer(fields, "seq", 0, _U64)
    at_ms = _integer(fields, "at_ms", 0, _U64)
    attempt = _integer(fields, "attempt", 1, _U32) if "attempt" in fields else 1
    fraction = fields["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise BadProgress("the progress value is not the documented JSON object: `fraction` is not a number")
    if isinstance(fraction, int) and not 0 <= fraction <= 1:
        raise BadProgress(f"a progress fraction must be a number from 0 to 1, not {fraction}")
    try:
        checked, _, _ = check(float(fraction))
    except ValueError as e:
        raise BadProgress(str(e)) from None
    done = None if fields.get("done") is None else _integer(fields, "done", 0, _U64)
    total = None if fields.get("total") is None else _integer(fields, "total", 0, _U64)
    if (done is None) != (total is None):
        raise BadProgress("progress has `done` or `total` without the other")
    if done is not None and total is not None:
        try:
            check((done, total))
        except ValueError as e:
            raise BadProgress(str(e)) from None
    message = fields.get("message", "")
    if not isinstance(message, str):
        raise BadProgress("the progress value is not the documented JSON object: `message` is not a string")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise BadProgress("the progress value is not the documented JSON object: a lone surrogate") from None
    return Progress(
        seq=seq,
        attempt=attempt,
        at_ms=at_ms,
        fraction=checked,
        done=done,
        total=total,
        message=cut_message(message),
    )


_FIELDS = frozenset({"seq", "at_ms", "attempt", "done", "total", "fraction", "message"})
