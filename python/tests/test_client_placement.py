"""The client's placement of calls on shards (``placement.py``), against a
Redis stand-in that counts its reads: the count is read once per 5 s
(once for calls that find it stale together), the schema's number stands
in when Redis has none or refuses the read, the last count known stands
while Redis is slow, keys go to their FNV-1a shard and the rest round
robin."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from redis.exceptions import NoPermissionError, ResponseError

from rpc_runtime import placement
from rpc_runtime.keys import Keys
from rpc_runtime.placement import Placement
from rpc_runtime.shards import shard_of_key


class FakeRedis:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def execute_command(self, *args: Any) -> Any:
        assert args[0] == "HMGET" and args[1] == "rpc:{S}:shards" and args[2:] == ("count", "seen")
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_round_robin_covers_every_shard_evenly_and_reads_the_count_once() -> None:
    async def main() -> None:
        r = FakeRedis([b"4", b"4"])
        p = Placement(Keys())
        placed = [await p.place(r, "S", 1, None) for _ in range(400)]
        assert Counter(placed) == {(k, 4): 100 for k in range(4)}
        assert r.reads == 1

    asyncio.run(main())


def test_calls_that_find_the_count_stale_together_share_one_read() -> None:
    async def main() -> None:
        r = FakeRedis([b"3", None])
        r.gate = asyncio.Event()
        p = Placement(Keys())
        calls = [asyncio.ensure_future(p.place(r, "S", 1, "k")) for _ in range(20)]
        await asyncio.sleep(0)
        r.gate.set()
        assert {await c for c in calls} == {(shard_of_key("k", 3), 3)}
        assert r.reads == 1

    asyncio.run(main())


def test_the_count_is_read_again_after_five_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        r = FakeRedis([b"2", None])
        p = Placement(Keys())
        assert (await p.count(r, "S")).count == 2
        r.answer = [b"5", b"5"]
        assert (await p.count(r, "S")).count == 2  # cached
        monkeypatch.setattr(placement, "CACHE_S", 0.0)
        p2 = Placement(Keys())
        assert (await p2.count(r, "S")).count == 5
        r.answer = [b"6", b"6"]
        assert (await p2.count(r, "S")).count == 6
        assert r.reads == 3

    asyncio.run(main())


@pytest.mark.parametrize("answer", [
    [None, None], [b"0", b"0"], [b"abc", b"x"], [b"300", None], [None, b"2"],
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    NoPermissionError("NOPERM this user has no permissions to access the 'rpc:{S}:shards' key"),
])
def test_without_a_valid_count_the_schemas_number_places(answer: Any) -> None:
    async def main() -> None:
        p = Placement(Keys())
        assert (await p.place(FakeRedis(answer), "S", 3, "order-1")) == (shard_of_key("order-1", 3), 3)
        if not (isinstance(answer, list) and answer[1] == b"2"):
            assert (await Placement(Keys()).place(FakeRedis(answer), "S", 1, None)) == (0, 1)

    asyncio.run(main())


def test_without_a_count_the_most_shards_the_service_had_places() -> None:
    # `seen` (raised by the workers' `serve N`): an untyped client agrees
    # with a typed one, and a key lands on one shard whoever sends it.
    async def main() -> None:
        assert await Placement(Keys()).place(FakeRedis([None, b"4"]), "S", 1, "k") == (
            shard_of_key("k", 4), 4)
        assert await Placement(Keys()).place(FakeRedis([b"2", b"4"]), "S", 8, "k") == (
            shard_of_key("k", 2), 2)

    asyncio.run(main())


def test_a_slow_redis_leaves_the_last_count_known(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        monkeypatch.setattr(placement, "CACHE_S", 0.0)
        monkeypatch.setattr(placement, "READ_BOUND_S", 0.05)
        r = FakeRedis([b"4", b"4"])
        p = Placement(Keys())
        assert (await p.count(r, "S")).count == 4
        r.gate = asyncio.Event()  # never set: every read times out
        assert (await p.count(r, "S")).count == 4
        assert (await p.place(r, "S", 1, "x")) == (shard_of_key("x", 4), 4)

    asyncio.run(main())


def test_an_absurd_schema_number_is_held_to_the_limit() -> None:
    async def main() -> None:
        p = Placement(Keys())
        k, count = await p.place(FakeRedis([None, None]), "S", 10_000, "x")
        assert count == 256 and k == shard_of_key("x", 256)
        assert await p.place(FakeRedis([None, None]), "S", 0, "x") == (0, 1)

    asyncio.run(main())
