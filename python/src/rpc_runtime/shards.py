"""A sharded service: one service spread over N queues, each under its own
hash tag. The mirror of ``rpc-protocol/src/shards.rs`` (docs/PROTOCOL.md,
"Sharded services", is the normative text).

Shard 0 of service ``S`` is the queue ``S`` itself, with the keys an
unsharded service has always had (``P:{S}:jobs``, ...): a service of one
shard is exactly an unsharded one. Shard ``k >= 1`` is the queue ``S~k``
(``P:{S~k}:jobs``, ...). What is per service lives once, in shard 0's
slot: the pause flag, the periodic definitions, the worker set and the
shard count (``P:{S}:shards``, a hash of ``count`` and ``seen``).

A client places a call on a shard: by its idempotency key when it has one
(:func:`shard_of_key`, so every duplicate meets the same claim), else
spread evenly (round robin from a random start). The call id then ends in
``~k`` (:func:`with_shard`), so cancelling it goes straight to its shard
(:func:`shard_of_id`).

>>> queue("Calculator", 3), split_queue("Calculator~3"), shard_of_id("c1-9f2e")
('Calculator~3', ('Calculator', 3), None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The most shards a service may have.
MAX_SHARDS = 256

#: What separates a service's name from its shard number in a queue name
#: and a call id.
SEPARATOR = "~"

#: The hash field of ``P:{S}:shards`` that holds the count clients place on.
FIELD_COUNT = "count"
#: The hash field of ``P:{S}:shards`` that holds the most shards the
#: service ever had (set or served): workers read every one of them.
FIELD_SEEN = "seen"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def queue(service: str, shard: int) -> str:
    """The queue of shard ``shard`` of ``service``: the service itself for
    shard 0, ``service~shard`` after."""
    return service if shard == 0 else f"{service}{SEPARATOR}{shard}"


def split_queue(name: str) -> tuple[str, int]:
    """The service and shard of a queue name: ``("S", k)`` for ``S~k`` with
    ``k`` in ``1..MAX_SHARDS``, else the name itself as shard 0."""
    service, sep, shard = name.rpartition(SEPARATOR)
    if sep and service:
        k = _parse_shard(shard)
        if k is not None and k > 0:
            return service, k
    return name, 0


def service_of_queue(name: str) -> str:
    """The service a queue belongs to."""
    return split_queue(name)[0]


def with_shard(call_id: str, shard: int) -> str:
    """``call_id`` marked with the shard its call goes to: ``id~shard``."""
    return f"{call_id}{SEPARATOR}{shard}"


def shard_of_id(call_id: str) -> int | None:
    """The shard a call id names (``...~k``), if it names one in range; an
    id without the mark names none (look in every shard)."""
    _, sep, shard = call_id.rpartition(SEPARATOR)
    return _parse_shard(shard) if sep else None


def shard_of_key(key: str, count: int) -> int:
    """The shard of an idempotency key among ``count``: 64-bit FNV-1a of the
    key's UTF-8 bytes, modulo ``count`` (0 when ``count`` is 0 or 1)."""
    if count <= 1:
        return 0
    return fnv1a64(key.encode("utf-8")) % count


def is_count(count: int) -> bool:
    """Whether ``count`` is a valid shard count (1 to :data:`MAX_SHARDS`)."""
    return 1 <= count <= MAX_SHARDS


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3)."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _U64
    return h


def _parse_shard(s: str) -> int | None:
    """A shard number as written: ASCII digits, no sign or leading zero (but
    ``0`` itself), below :data:`MAX_SHARDS`."""
    if not 1 <= len(s) <= 3 or any(c not in "0123456789" for c in s):
        return None
    if len(s) > 1 and s[0] == "0":
        return None
    k = int(s)
    return k if k < MAX_SHARDS else None


@dataclass(frozen=True)
class ShardCount:
    """A service's shard count as Redis keeps it (``P:{S}:shards``): None
    where a field is absent or garbage. The mirror of the Rust runtime's
    ``backend::ShardCount``."""

    #: The shards clients place calls on.
    count: int | None = None
    #: The most shards the service ever had.
    seen: int | None = None

    def placing(self, schema: int) -> int:
        """How many shards to place calls on, given the schema's number (1
        for an untyped call): the count an operator set, else the most the
        service has had (what its workers' schema says), so a typed and an
        untyped client agree and an idempotency key lands on one shard."""
        if self.count is not None:
            return max(self.count, 1)
        return max(schema, self.seen or 1, 1)

    def serving(self, schema: int) -> int:
        """How many shards a worker reads, given the schema's number: every
        one a client may have written to."""
        return max(schema, self.count or 1, self.seen or 1, 1)

    @classmethod
    def of_fields(cls, fields: Any) -> ShardCount:
        """From ``HMGET count seen`` or ``shards.lua``'s ``{count, seen}``
        (0 for absent there); anything else is garbage, read as absent."""
        if not isinstance(fields, (list, tuple)) or len(fields) != 2:
            return cls()
        return cls(_valid_count(fields[0]), _valid_count(fields[1]))


def _valid_count(v: Any) -> int | None:
    """A whole number in ``1..=MAX_SHARDS`` as Redis returns one (an
    integer, or decimal text as Rust's ``str::parse::<i64>`` reads it: an
    optional sign, then ASCII digits), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        n = v
    elif isinstance(v, (bytes, str)):
        text = v.decode("ascii", "replace") if isinstance(v, bytes) else v
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not 1 <= len(digits) <= 19 or any(c not in "0123456789" for c in digits):
            return None
        n = -int(digits) if text[0] == "-" else int(digits)
    else:
        return None
    return n if is_count(n) else None
