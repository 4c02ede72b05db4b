"""Rate limits: how many starts of a job (or of any job of a service) the
whole fleet may make per period, written ``"50/s"``, ``"1000/m"``,
``"10/500ms"``, ``"100/s burst 20"`` (docs/PROTOCOL.md, "Rate limits";
the Rust twin is ``rpc_protocol::rate``, and both read a limit alike).

A limit is a GCRA: starts are spaced ``period / count`` apart (rounded up to
the microsecond), and ``burst`` of them may start at once after a quiet
spell. The fleet shares one state per limit in Redis (``rate_limit.lua``),
so Rust and Python workers given the same limit keep it together.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_COUNT = 1_000_000
MAX_PERIOD_MS = 24 * 60 * 60 * 1000
MAX_PER_SECOND = 1_000_000

USAGE = (
    '`"<count>/<period>"` with an optional `burst <n>`: `"50/s"`, `"1000/m"`, `"10/500ms"`, '
    '`"100/s burst 20"` (periods: ms, s, m, h, or a number before one, up to 24h)'
)

_UNITS = {
    "ms": 1,
    "s": 1000, "sec": 1000, "second": 1000,
    "m": 60_000, "min": 60_000, "minute": 60_000,
    "h": 3_600_000, "hour": 3_600_000,
}


class RateError(ValueError):
    """A rate limit that is not one, with why."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` starts per ``per_ms``, of which ``burst`` may come at once."""

    count: int
    per_ms: int
    burst: int = 1

    @property
    def interval_us(self) -> int:
        """The spacing of starts, in µs, rounded up (never more than the limit)."""
        return -(-self.per_ms * 1000 // self.count)

    @property
    def tolerance_us(self) -> int:
        """How far ahead of its turn a start may come (the burst), in µs."""
        return (self.burst - 1) * self.interval_us

    def __str__(self) -> str:
        ms = self.per_ms
        if ms == 1000:
            period = "s"
        elif ms == 60_000:
            period = "m"
        elif ms == 3_600_000:
            period = "h"
        elif ms % 3_600_000 == 0:
            period = f"{ms // 3_600_000}h"
        elif ms % 60_000 == 0:
            period = f"{ms // 60_000}m"
        elif ms % 1000 == 0:
            period = f"{ms // 1000}s"
        else:
            period = f"{ms}ms"
        text = f"{self.count}/{period}"
        return f"{text} burst {self.burst}" if self.burst > 1 else text


def parse_rate(text: str) -> RateLimit:
    """The limit ``text`` writes; :class:`RateError` saying why and how to
    write it otherwise."""
    try:
        return _parse(text)
    except RateError as e:
        raise RateError(f"bad rate limit {text[:80]!r}: {e}; write {USAGE}") from None


def _parse(text: str) -> RateLimit:
    if len(text.encode("utf-8")) > 64:
        raise RateError("longer than 64 bytes")
    rate, sep, burst_text = text.partition("burst")
    rate = rate.strip().rstrip(",").rstrip() if sep else text.strip()
    count_text, slash, period_text = rate.partition("/")
    if not slash:
        raise RateError("no `/` between the count and the period")
    count = _whole(count_text.strip(), "the count")
    per_ms = _period_ms(period_text.strip())
    burst = _whole(burst_text.strip(), "the burst") if sep else 1
    if not 1 <= count <= MAX_COUNT:
        raise RateError(f"the count must be 1 to {MAX_COUNT}")
    if count * 1000 > MAX_PER_SECOND * per_ms:
        raise RateError(f"that is over {MAX_PER_SECOND} starts a second, the most a limit can space")
    if not 1 <= burst <= count:
        raise RateError(f"the burst must be 1 to the count ({count})")
    return RateLimit(count, per_ms, burst)


def _whole(text: str, what: str) -> int:
    if not text or not all("0" <= c <= "9" for c in text):
        raise RateError(f"{what} must be a whole number, not {text!r}")
    return int(text)


def _period_ms(text: str) -> int:
    digits = len(text) - len(text.lstrip("0123456789"))
    n_text, unit = text[:digits], text[digits:].strip()
    n = _whole(n_text, "the period") if n_text else 1
    if unit not in _UNITS:
        raise RateError(f"unknown period unit {unit!r}")
    ms = n * _UNITS[unit]
    if not 1 <= ms <= MAX_PERIOD_MS:
        raise RateError("the period must be 1ms to 24h")
    return ms
