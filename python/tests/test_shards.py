"""``rpc_runtime.shards`` names queues, marks ids and places keys exactly as
``rpc-protocol/src/shards.rs`` does: the same vectors as its unit tests and
doctest, and the FNV-1a reference values."""

from __future__ import annotations

import pytest

from rpc_runtime.keys import Keys
from rpc_runtime.shards import (
    MAX_SHARDS,
    ShardCount,
    fnv1a64,
    queue,
    service_of_queue,
    shard_of_id,
    shard_of_key,
    split_queue,
    with_shard,
)


def test_the_rust_doctest_values() -> None:
    assert queue("Calculator", 0) == "Calculator"
    assert queue("Calculator", 3) == "Calculator~3"
    assert split_queue("Calculator~3") == ("Calculator", 3)
    assert split_queue("Calculator") == ("Calculator", 0)
    assert shard_of_id("c1-9f2e~3") == 3
    assert shard_of_id("c1-9f2e") is None
    assert shard_of_key("order-42", 8) == shard_of_key("order-42", 8)


def test_queue_names_round_trip() -> None:
    for k in [0, 1, 7, MAX_SHARDS - 1]:
        assert split_queue(queue("Svc", k)) == ("Svc", k)
        assert service_of_queue(queue("Svc", k)) == "Svc"


@pytest.mark.parametrize("name", ["S~", "S~0", "S~01", "S~-1", "S~+1", "S~256", "S~x", "~3", "S~1000",
                                  "S~\u0663"])  # the last: an Arabic-Indic three, not an ASCII digit
def test_what_is_not_a_shard_mark_is_part_of_the_name(name: str) -> None:
    assert split_queue(name) == (name, 0)


def test_the_last_mark_is_the_shard() -> None:
    assert split_queue("a~b~2") == ("a~b", 2)


def test_ids_name_their_shard() -> None:
    assert shard_of_id(with_shard("abc", 0)) == 0
    assert shard_of_id(with_shard("abc", 5)) == 5
    for call_id in ["abc", "abc~", "abc~07", "abc~999", "abc~-1"]:
        assert shard_of_id(call_id) is None, call_id


def test_fnv1a_matches_the_published_vectors() -> None:
    # From the FNV reference test suite (and shards.rs's test).
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_keys_spread_over_shards() -> None:
    counts = [0] * 8
    for i in range(8000):
        counts[shard_of_key(f"order-{i}", 8)] += 1
    assert all(800 <= c < 1200 for c in counts), counts
    assert shard_of_key("anything", 1) == 0
    assert shard_of_key("anything", 0) == 0


def test_a_key_is_placed_by_its_utf8_bytes() -> None:
    # The hash of the UTF-8 bytes, not of code points: what Rust's as_bytes() gives.
    assert shard_of_key("é", 1 << 20) == fnv1a64("é".encode()) % (1 << 20)
    assert fnv1a64("é".encode()) != fnv1a64(b"\xe9")


def test_shard_counts_read_like_rusts() -> None:
    assert ShardCount().placing(3) == 3
    assert ShardCount(count=2, seen=8).placing(3) == 2
    # Without a count: the most the service had (its workers' schema).
    assert ShardCount(seen=8).placing(3) == 8
    assert ShardCount(seen=2).placing(3) == 3
    assert ShardCount(seen=4).placing(1) == 4
    assert ShardCount().serving(3) == 3
    assert ShardCount(count=2, seen=8).serving(3) == 8
    assert ShardCount(count=5).serving(1) == 5
    assert ShardCount.of_fields([b"4", b"7"]) == ShardCount(4, 7)
    assert ShardCount.of_fields([4, 0]) == ShardCount(4, None)
    assert ShardCount.of_fields([b"+4", b"004"]) == ShardCount(4, 4)  # as Rust's i64 parse
    for garbage in [b"0", b"257", b"-1", b"4.0", b" 4", b"x", b"", None, True, [b"4"]]:
        assert ShardCount.of_fields([garbage, garbage]) == ShardCount(), garbage
    assert ShardCount.of_fields(b"nonsense") == ShardCount()
    assert ShardCount.of_fields([b"1"]) == ShardCount()


def test_the_per_service_keys() -> None:
    k = Keys("rpc")
    assert k.shards("Calc") == "rpc:{Calc}:shards"
    assert k.ready("Calc~3") == "rpc:{Calc~3}:ready"
    assert k.jobs(queue("Calc", 3)) == "rpc:{Calc~3}:jobs"


#: ``shard_of_key(key, count)`` for counts 2, 3, 4, 7, 8, 16, 100 and 256, as
#: rpc-protocol's Rust ``shards::shard_of_key`` computed them (a throwaway
#: program linking rpc-protocol, run once): the cross-check of the two.
RUST_SHARD_OF_KEY = {
    "order-42": [0, 2, 0, 0, 4, 4, 4, 212],
    "order-43": [1, 0, 3, 3, 7, 7, 15, 135],
    "a": [0, 1, 0, 5, 4, 12, 96, 140],
    "": [1, 2, 1, 2, 5, 5, 37, 37],
    "é": [1, 1, 1, 2, 1, 1, 17, 1],
    "日本語-key": [1, 2, 1, 4, 5, 5, 45, 133],
    "x" * 200: [1, 2, 1, 4, 5, 5, 61, 69],
}
RUST_COUNTS = [2, 3, 4, 7, 8, 16, 100, 256]


def test_keys_land_where_the_rust_implementation_puts_them() -> None:
    for key, shards in RUST_SHARD_OF_KEY.items():
        assert [shard_of_key(key, n) for n in RUST_COUNTS] == shards, key
