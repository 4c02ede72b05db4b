"""Priorities in Python (docs/PROTOCOL.md, "Priorities"): the client puts a
call on its priority's lane and refuses one out of range in Rust's words;
the Python worker reads the lanes a poll reports, by weight, dead-letters a
priority out of range, and keeps a call on its lane through a retry; and
either language's client is served by the other's worker at priority 1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from typing import Any

import pytest

from rpc_runtime import AsyncClient, CallOptions, Client, InvalidCall, JobSpec, Request, Retry, Worker
from rpc_runtime.keys import Keys
from rpc_runtime.priority import weight
from rpc_runtime.worker.decode import Message, decode
from rpc_runtime.worker.lane_take import LanePicker
from rpc_runtime.worker.lanes import Lanes, lane_of_key
from support import RedisServer, rust_bin, rust_process, wait_for

K = Keys("rpc")


def entries_added(server: RedisServer, key: str) -> int:
    """How many entries a stream was ever given (0 when it does not exist)."""
    if not server.r.exists(key):
        return 0
    return int(server.r.xinfo_stream(key)["entries-added"])


def test_the_weighted_round_robin_gives_each_lane_its_weight_evenly_spread() -> None:
    # The same figures as lane_take.rs's tests: the rule is one for both runtimes.
    assert [weight(p) for p in (1, 2, 3, 4, 5)] == [256, 64, 16, 4, 1]
    picker = LanePicker()
    got = {p: 0 for p in (1, 2, 3, 4, 5)}
    for _ in range(257):
        for p, n in picker.share([1, 5], 1).items():
            got[p] += n
    assert got == {1: 256, 2: 0, 3: 0, 4: 0, 5: 1}
    assert picker.share([1, 2, 3, 4, 5], 341) == {1: 256, 2: 64, 3: 16, 4: 4, 5: 1}
    picker = LanePicker()
    low = sum(picker.share([1, 2, 3, 4, 5], 1)[5] for _ in range(10 * 341))
    assert low == 10, "the least urgent lane is never starved"
    assert LanePicker().share([], 8) == {p: 0 for p in (1, 2, 3, 4, 5)}


def test_lanes_are_learned_once_and_named_as_rust_names_them() -> None:
    lanes = Lanes()
    assert not lanes.any() and lanes.of("S") == [3]
    assert lanes.learn("S~1", 0b1_0001 | 0b100) == [1, 5]  # bit 3 (lane 3) is no lane
    assert lanes.learn("S~1", 0b1_0001) == []
    assert lanes.any() and lanes.of("S~1") == [1, 3, 5] and lanes.of("S") == [3]
    assert K.jobs_at("S~1", 1) == "rpc:{S~1}:jobs:1" and K.jobs_at("S", 3) == "rpc:{S}:jobs"
    assert [lane_of_key(K.jobs_at("S", p)) for p in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]
    assert lane_of_key("rpc:{S:jobs:1}:jobs") == 3


def test_the_client_refuses_a_priority_out_of_range_before_sending(server: RedisServer) -> None:
    # Rust's words (rpc_protocol::priority::out_of_range); nothing reaches Redis.
    with Client.connect(server.url) as client:
        for p in (0, 6):
            with pytest.raises(InvalidCall) as refused:
                client.call("T.go", {}, options=CallOptions(priority=p))
            assert str(refused.value) == (
                f"`priority` {p} is outside 1..=5 (1 is the most urgent, 3 the default)")
        with pytest.raises(InvalidCall, match="`priority` is an integer"):
            client.call("T.go", {}, options=CallOptions(priority="1"))  # type: ignore[arg-type]
        urgent: JobSpec[Any] = JobSpec("T", "go", priority=9)
        with pytest.raises(InvalidCall, match="`priority` 9 is outside 1..=5"):
            client.send_one_way(urgent, {})
    assert server.r.keys("rpc:{T}:*") == []


def test_a_call_goes_on_its_prioritys_lane_and_says_its_priority_unless_3(
        server: RedisServer) -> None:
    urgent: JobSpec[Any] = JobSpec("T", "go", priority=1)
    with Client.connect(server.url) as client:
        client.send_one_way(urgent, {"n": 1})  # the job's default
        client.send_one_way(urgent, {"n": 5}, CallOptions(priority=5))  # the call's wins
        client.send_one_way(urgent, {"n": 3}, CallOptions(priority=3))
        client.call("T.go", {"n": 2}, options=CallOptions(priority=2))
    for key, n, p in [("rpc:{T}:jobs:1", 1, 1), ("rpc:{T}:jobs:5", 5, 5), ("rpc:{T}:jobs", 3, None),
                      ("rpc:{T}:jobs:2", 2, 2)]:
        [(_, fields)] = server.r.xrange(key)
        message = json.loads(fields[b"m"])
        assert message["params"] == {"n": n}
        assert message.get("priority") == p, message


def test_a_python_worker_takes_a_backlogs_urgent_calls_first(server: RedisServer,
                                                             start_worker: Any) -> None:
    # 20 calls at priority 5 queued before 10 at priority 1, then one worker
    # of one slot starts: it learns the lanes at its first poll and takes by
    # weight (256 to 1), so the urgent ones run first, each lane in order.
    with Client.connect(server.url) as client:
        for i in range(20):
            client.call("Prio.run", {"p": 5, "i": i}, options=CallOptions(priority=5))
        for i in range(10):
            client.call("Prio.run", {"p": 1, "i": i}, options=CallOptions(priority=1))
    ran: list[tuple[int, int]] = []
    lock = threading.Lock()

    def run(req: Request) -> Any:
        with lock:
            ran.append((req.data["p"], req.data["i"]))
        return None

    running = start_worker(Worker(server.url, concurrency=1).handle("Prio.run", run))
    wait_for(lambda: len(ran) == 30, 60, "every call run")
    assert ran == [(1, i) for i in range(10)] + [(5, i) for i in range(20)]
    running.stop()
    # Each was acked and deleted on its own lane.
    assert server.r.xlen("rpc:{Prio}:jobs:1") == 0 and server.r.xlen("rpc:{Prio}:jobs:5") == 0
    assert server.r.xpending("rpc:{Prio}:jobs:1", "workers")["pending"] == 0


def test_a_priority_out_of_range_is_dead_lettered_with_the_reason(server: RedisServer,
                                                                  start_worker: Any) -> None:
    inbox = "rpc:inbox:{c-prio}"
    start_worker(Worker(server.url).handle("T.go", lambda req: req.data))
    cases = [(9, "`priority` 9 is outside 1..=5 (1 is the most urgent, 3 the default)"),
             (-1, "`priority` -1 is outside 1..=5"),
             ("1", 'invalid type: string "1", expected i64'),
             (2.5, "invalid type: floating point `2.5`, expected i64")]
    for n, (p, _) in enumerate(cases):
        msg = {"v": 1, "id": f"bad-{n}", "job": "T.go", "params": {}, "reply_to": inbox,
               "timeout_ms": 60_000, "priority": p}
        server.r.xadd("rpc:{T}:jobs", {"m": json.dumps(msg)})
    replies = {}
    for _ in cases:
        got = server.r.blpop([inbox], 30)
        assert got is not None
        reply = json.loads(got[1])
        replies[reply["id"]] = reply["error"]
    for n, (_, why) in enumerate(cases):
        error = replies[f"bad-{n}"]
        assert error["kind"] == "bad_request" and why in error["message"], error
    dead = server.r.xrange("rpc:{T}:dead")
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(reasons) == 4 and all(r.startswith("unreadable job message: ") for r in reasons)
    for _, why in cases:
        assert any(why in r for r in reasons), reasons


def test_a_retried_call_keeps_its_priority_and_the_fields_the_worker_does_not_know() -> None:
    # A retry re-encodes the message: `priority` (its lane after the
    # schedule) and a newer sender's fields (`group`) survive it.
    body = (b'{"v":1,"id":"a","job":"T.go","params":{},"attempt":1,"group":"tenant-7",'
            b'"priority":1}')
    msg = decode(body, K, 1 << 20)
    assert isinstance(msg, Message) and msg.priority == 1
    msg.attempt = 2
    again = json.loads(msg.encode())
    assert again["priority"] == 1 and again["group"] == "tenant-7" and again["attempt"] == 2
    assert "priority" not in json.loads(decode(b'{"v":1,"id":"a","job":"T.go","params":{}}', K,
                                               1 << 20).encode())  # type: ignore[union-attr]


def test_a_python_worker_sends_a_retry_and_a_delayed_call_back_to_their_lane(
        server: RedisServer, start_worker: Any) -> None:
    tries: dict[str, int] = {}

    def run(req: Request) -> Any:
        tries[req.id] = tries.get(req.id, 0) + 1
        if req.data.get("fail") and tries[req.id] == 1:
            raise Retry("once more", after=0.2)
        return tries[req.id]

    start_worker(Worker(server.url).handle("Lane.go", run))
    with Client.connect(server.url, timeout=30) as client:
        retried = client.call_and_wait("Lane.go", {"fail": True}, options=CallOptions(priority=1))
        assert retried.data == 2
        delayed = client.call_and_wait("Lane.go", {}, options=CallOptions(priority=1, delay=0.3))
        assert delayed.data == 1
    # Both sent to lane 1, and both came back to it from the schedule.
    assert entries_added(server, "rpc:{Lane}:jobs:1") == 4
    assert entries_added(server, "rpc:{Lane}:jobs") == 0


def test_a_call_pushed_to_the_intake_reaches_its_lane(server: RedisServer,
                                                      start_worker: Any) -> None:
    start_worker(Worker(server.url).handle("In.go", lambda req: req.data["n"]))

    async def main() -> Any:
        async with AsyncClient.connect(server.url, enqueue="intake", timeout=30) as client:
            return await client.call_and_wait("In.go", {"n": 7}, options=CallOptions(priority=2))

    assert asyncio.run(main()).data == 7
    assert entries_added(server, "rpc:{In}:jobs:2") == 1
    assert entries_added(server, "rpc:{In}:jobs") == 0


def test_a_python_clients_urgent_call_is_answered_by_a_rust_worker(server: RedisServer) -> None:
    with rust_process("worker", server.url), Client.connect(server.url, timeout=60) as client:
        answer = client.call_and_wait("Calculator.add", {"a": 2, "b": 3},
                                      options=CallOptions(priority=1))
        assert answer.data == 5
    assert entries_added(server, "rpc:{Calculator}:jobs:1") == 1
    assert server.r.xlen("rpc:{Calculator}:jobs:1") == 0


def test_a_rust_clients_urgent_call_is_answered_by_a_python_worker(server: RedisServer,
                                                                   start_worker: Any) -> None:
    start_worker(Worker(server.url).handle("Echo.go", lambda req: req.data))
    out = subprocess.run(
        [str(rust_bin("rpc")), "--url", server.url, "call", "Echo.go", json.dumps({"n": 1}),
         "--priority", "1", "--full"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"] == {"n": 1}
    assert entries_added(server, "rpc:{Echo}:jobs:1") == 1
    assert entries_added(server, "rpc:{Echo}:jobs") == 0
    assert server.r.xlen("rpc:{Echo}:jobs:1") == 0


def test_a_lane_that_is_not_a_stream_leaves_the_other_lanes_served(server: RedisServer,
                                                                    start_worker: Any) -> None:
    # Garbage written over lane 1: the poll reports it (it exists), its
    # group cannot be made, and the worker reads the other lanes on.
    server.r.set("rpc:{W}:jobs:1", "garbage")
    start_worker(Worker(server.url).handle("W.go", lambda req: req.data["n"]))
    with Client.connect(server.url, timeout=30) as client:
        assert client.call_and_wait("W.go", {"n": 5}, options=CallOptions(priority=5)).data == 5
        assert client.call_and_wait("W.go", {"n": 3}).data == 3


def test_a_lane_being_read_that_turns_into_garbage_stops_nothing(server: RedisServer,
                                                                 start_worker: Any) -> None:
    # The worker reads lane 1 once it answered a call there; then garbage
    # is written over it: the read it fails drops the lane, and the other
    # lanes and services are served on.
    start_worker(Worker(server.url).handle("T.go", lambda req: req.data["n"])
                 .handle("U.go", lambda req: req.data["n"]))
    with Client.connect(server.url, timeout=30) as client:
        assert client.call_and_wait("T.go", {"n": 1}, options=CallOptions(priority=1)).data == 1
        server.r.delete("rpc:{T}:jobs:1")
        server.r.set("rpc:{T}:jobs:1", "garbage")
        assert client.call_and_wait("U.go", {"n": 2}).data == 2
        assert client.call_and_wait("T.go", {"n": 3}, options=CallOptions(priority=5)).data == 3
