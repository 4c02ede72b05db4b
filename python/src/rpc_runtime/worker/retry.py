"""How long a failed job waits before its next attempt: the backoff grammar
``none | fixed(d) | exponential(base, max)`` and its delays with equal
jitter, as ``rpc-protocol/src/backoff.rs`` reads and computes them
(docs/PROTOCOL.md, "Retries with backoff")."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

_GRAMMAR = "`none`, `fixed(<delay>)` or `exponential(<base>, <max>)`"
_UNITS = (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))
_MAX_DELAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Backoff:
    """A retry policy. ``kind`` is ``none``, ``fixed`` or ``exponential``."""

    kind: str
    base_ms: int = 0
    max_ms: int = 0

    def delay_ms(self, attempt: int, random: int | None = None) -> int:
        """The delay after failed attempt ``attempt`` (from 1), jitter
        included: half of an exponential delay is fixed, half random."""
        if self.kind == "none":
            return 0
        if self.kind == "fixed":
            return self.base_ms
        doublings = min(max(attempt - 1, 0), 63)
        full = min(self.base_ms * (1 << doublings), max(self.max_ms, self.base_ms))
        half = full // 2
        r = secrets.randbits(64) if random is None else random
        return full - half + r % (half + 1)

    def __str__(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "fixed":
            return f"fixed({_duration_text(self.base_ms)})"
        return f"exponential({_duration_text(self.base_ms)}, {_duration_text(self.max_ms)})"


DEFAULT = Backoff("exponential", 100, 30_000)


def parse(text: str) -> Backoff:
    """Reads a policy; raises ``ValueError`` with the Rust parser's message."""
    text = text.strip()
    name, paren, rest = text.partition("(")
    args: str | None = None
    if paren:
        rest = rest.rstrip()
        if not rest.endswith(")"):
            raise ValueError(f"expected {_GRAMMAR}: `)` is missing at the end of `{text}`")
        name, args = name.rstrip(), rest[:-1]
    if name == "none" and args is None:
        return Backoff("none")
    if name == "fixed" and args is not None:
        ds = _durations(args)
        if len(ds) != 1:
            raise ValueError("expected `fixed(<delay>)` with one duration, such as `fixed(500ms)`")
        return Backoff("fixed", ds[0], ds[0])
    if name == "exponential" and args is not None:
        ds = _durations(args)
        if len(ds) != 2:
            raise ValueError(
                "expected `exponential(<base>, <max>)` with two durations, such as "
                "`exponential(100ms, 30s)`"
            )
        if ds[0] > ds[1]:
            raise ValueError(
                "expected `exponential(<base>, <max>)` with base <= max, found base "
                f"{_duration_text(ds[0])} > max {_duration_text(ds[1])}"
            )
        return Backoff("exponential", ds[0], ds[1])
    if name == "none":
        raise ValueError("expected `none` without parentheses")
    if name == "fixed":
        raise ValueError("expected `fixed(<delay>)`, such as `fixed(500ms)`")
    if name == "exponential":
        raise ValueError("expected `exponential(<base>, <max>)`, such as `exponential(100ms, 30s)`")
    raise ValueError(f"expected {_GRAMMAR}, found `{text}`")


def _durations(args: str) -> list[int]:
    if not args.strip():
        return []
    return [_duration_ms(part) for part in args.split(",")]


def _duration_ms(text: str) -> int:
    text = text.strip()
    i = 0
    while i < len(text) and text[i] in "0123456789":
        i += 1
    number, unit = text[:i], text[i:]
    per_unit = dict(_UNITS).get(unit)
    if not number or per_unit is None:
        raise ValueError(
            "expected a duration such as `100ms`, `30s`, `5m` or `1h` (a whole number, then "
            f"`ms`, `s`, `m` or `h`), found `{text}`"
        )
    ms = int(number) * per_unit
    if ms == 0:
        raise ValueError(f"expected a duration above zero (`none` retries at once), found `{text}`")
    if ms > _MAX_DELAY_MS:
        raise ValueError(f"expected a duration of at most 24h, found `{text}`")
    return ms


def _duration_text(ms: int) -> str:
    for unit, per in _UNITS:
        if ms != 0 and ms % per == 0:
            return f"{ms // per}{unit}"
    return f"{ms}ms"
