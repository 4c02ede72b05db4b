"""Sharded services on the Python runtime (docs/PROTOCOL.md, "Sharded
services"): a worker reads every shard the service's shard count in Redis
says (and starts on new ones when it grows, and keeps draining the ones a
lowered count left), the service's pause covers every shard, the client
places calls round robin or by idempotency key and marks their ids, and
cancel finds a call's shard, or looks in every one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from rpc_runtime import CallError, CallOptions, Client, InvalidCall, JobSpec, Request, Worker
from rpc_runtime.keys import Keys
from rpc_runtime.shards import queue, shard_of_id, shard_of_key

from conftest import RedisServer, wait_for

K = Keys("rpc")
SCRIPT = (Path(__file__).resolve().parents[2] / "rpc-protocol" / "scripts" / "shards.lua").read_text()


def set_count(server: RedisServer, service: str, n: int) -> list[int]:
    """What `rpc shards <service> <n>` does: shards.lua set."""
    return server.r.eval(SCRIPT, 1, K.shards(service), "set", n, 256)  # type: ignore[no-any-return]


def push_raw(server: RedisServer, q: str, job: str, call_id: str, **extra: Any) -> str:
    """Adds a job message straight to queue ``q``'s stream (as another
    language's client would); returns the inbox its reply goes to."""
    inbox = K.inbox(f"c-{call_id}")
    msg = {"v": 1, "id": call_id, "job": job, "params": {"n": call_id}, "reply_to": inbox,
           "timeout_ms": 60_000, **extra}
    if "run_at_ms" in extra:
        msg["v"] = 2
    server.r.xadd(K.jobs(q), {"m": json.dumps(msg)})
    return inbox


def reply(server: RedisServer, inbox: str, timeout: int = 60) -> dict[str, Any]:
    popped = server.r.blpop([inbox], timeout)
    assert popped is not None, f"no reply in {inbox}"
    return json.loads(popped[1])  # type: ignore[no-any-return]


started: set[str] = set()


async def wait_cancelled(req: Request) -> Any:
    started.add(req.id)
    await req.context.wait_cancelled()
    raise RuntimeError("stopped")  # a handler that stops on cancel: answered `cancelled`


def sharded_worker(server: RedisServer) -> Worker:
    return (
        Worker(server.url, concurrency=8, cancel_grace=0.5)
        .handle("Sh.echo", lambda req: req.data)
        .handle("Sh.wait", wait_cancelled)
        .handle("Other.echo", lambda req: req.data)
    )


@pytest.fixture
def client(server: RedisServer) -> Iterator[Client]:
    c = Client.connect(server.url, timeout=60)
    try:
        yield c
    finally:
        c.close()


def test_a_worker_answers_calls_on_every_shard_the_count_in_redis_says(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker, client: Client
) -> None:
    # The count set in Redis (4) wins over the schema's 1, for the client
    # placing and for the worker reading.
    assert set_count(server, "Sh", 4) == [4, 4]
    start_worker(sharded_worker(server))
    shards_hit = set()
    for i in range(8):
        r = client.call_and_wait("Sh.echo", {"i": i})
        assert r.data == {"i": i}
        k = shard_of_id(r.id)
        assert k is not None, r.id
        shards_hit.add(k)
    # Round robin: eight calls in a row cover four shards.
    assert shards_hit == {0, 1, 2, 3}
    # Another client's call added straight to shard 3's stream.
    assert reply(server, push_raw(server, "Sh~3", "Sh.echo", "raw-3"))["ok"] == {"n": "raw-3"}
    # The daily counts are the service's (shard 0's slot): all nine calls.
    day = time.strftime("%Y-%m-%d", time.gmtime())
    wait_for(lambda: server.r.get(K.stat_processed("Sh", day)) == b"9", 30, "the daily count")
    assert not server.r.keys("rpc:{Sh~*}:stat:*")


def test_lowering_the_count_still_drains_the_shards_above_it(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    set_count(server, "Sh", 4)
    inbox = push_raw(server, "Sh~3", "Sh.echo", "left-on-3")
    # An operator lowers the count: clients place on two shards now, but
    # `seen` remembers four.
    assert set_count(server, "Sh", 2) == [2, 4]
    start_worker(sharded_worker(server))
    assert reply(server, inbox)["ok"] == {"n": "left-on-3"}
    with Client.connect(server.url, timeout=60) as c:
        ids = [c.call_and_wait("Sh.echo", {}).id for _ in range(6)]
    assert {shard_of_id(i) for i in ids} == {0, 1}, ids


def test_a_worker_starts_reading_new_shards_when_the_count_grows(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    running = start_worker(sharded_worker(server))
    assert running.worker.wait_ready(30)
    # One shard served, what an absent count means: nothing written.
    assert server.r.exists(K.shards("Sh")) == 0
    inbox = push_raw(server, "Sh~2", "Sh.echo", "early-on-2")
    set_count(server, "Sh", 3)
    # Within the worker's next look at the count (every 5 s).
    assert reply(server, inbox)["ok"] == {"n": "early-on-2"}
    assert running.worker.shared is not None
    assert set(running.worker.shared.queues) >= {"Sh", "Sh~1", "Sh~2", "Other"}


def test_the_services_pause_leaves_every_shard_unread(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker, client: Client
) -> None:
    set_count(server, "Sh", 4)
    running = start_worker(sharded_worker(server))
    assert client.pause("Sh")
    wait_for(lambda: running.worker.shared and "Sh" in running.worker.shared.paused, 30,
             "the worker knows Sh is paused")
    # A read that began before the worker knew ends with this call's entry;
    # every read after it leaves Sh's shards out.
    assert client.call_and_wait("Other.echo", {"x": 0}).data == {"x": 0}
    inboxes = [push_raw(server, queue("Sh", k), "Sh.echo", f"paused-{k}") for k in range(4)]
    # A call of another service added after them is answered: the reads
    # that took it would have taken the paused shards' jobs too.
    assert client.call_and_wait("Other.echo", {"x": 1}).data == {"x": 1}
    for k in range(4):
        key = K.jobs(queue("Sh", k))
        assert server.r.xpending(key, "workers")["pending"] == 0, key
        assert server.r.xlen(key) >= 1, key
        assert server.r.llen(inboxes[k]) == 0
    assert client.resume("Sh")
    for k in range(4):
        assert reply(server, inboxes[k])["ok"] == {"n": f"paused-{k}"}


def test_an_idempotency_key_always_lands_on_the_same_shard(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker, client: Client
) -> None:
    set_count(server, "Sh", 4)
    start_worker(sharded_worker(server))
    for key in ["order-42", "order-43", "order-44", "order-45", "é"]:
        k = shard_of_key(key, 4)
        answers = [client.call_and_wait("Sh.echo", {"key": key},
                                        options=CallOptions(idempotency_key=key))
                   for _ in range(3)]
        # Every duplicate met the first call's claim, on the key's shard.
        first = answers[0].id
        assert all(a.id == first for a in answers), [a.id for a in answers]
        assert shard_of_id(first) == k
        assert server.r.exists(K.once(queue("Sh", k), key)) == 1
        for other in range(4):
            if other != k:
                assert server.r.exists(K.once(queue("Sh", other), key)) == 0


def test_cancel_finds_the_calls_shard_or_looks_in_every_one(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker, client: Client
) -> None:
    set_count(server, "Sh", 4)
    start_worker(sharded_worker(server))
    spec: JobSpec[Any] = JobSpec("Sh", "wait")
    # Marked ids: each goes to its own shard's intake, and the running job hears of it.
    for _ in range(4):
        pending = client.send_job(spec, {})
        wait_for(lambda: pending.id in started, 30, "the job runs")
        pending.cancel()
        with pytest.raises(CallError) as e:
            pending.result()
        assert e.value.kind == "cancelled"
    # An id without a mark (another client's): every shard's intake is told.
    inbox = push_raw(server, "Sh~2", "Sh.wait", "plain-id")
    wait_for(lambda: "plain-id" in started, 30, "the unmarked job runs")
    client.cancel("plain-id", "Sh")
    assert reply(server, inbox)["error"]["kind"] == "cancelled"
    for k in range(4):
        wait_for(lambda k=k: server.r.zscore(K.cancelled(queue("Sh", k)), "plain-id"), 30,
                 f"the cancellation reached shard {k}")


def test_a_delayed_call_and_its_retry_stay_on_their_shard(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    set_count(server, "Sh", 4)
    start_worker(sharded_worker(server))
    # Due in 300 ms: the worker puts it on shard 3's own schedule, and
    # shard 3's lifecycle poll brings it back.
    due = int(server.r.time()[0]) * 1000 + 300
    inbox = push_raw(server, "Sh~3", "Sh.echo", "later-3", run_at_ms=due)
    assert reply(server, inbox)["ok"] == {"n": "later-3"}
    assert server.r.exists(K.schedule("Sh")) == 0


@pytest.mark.parametrize("garbage", ["a string", "count abc", "count 9999", "count 2.5", "seen 1e3"])
def test_garbage_in_the_shard_count_serves_the_schemas_number(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker, client: Client, garbage: str
) -> None:
    key = K.shards("Sh")
    if garbage == "a string":
        server.r.set(key, "4")
    else:
        field, value = garbage.split()
        server.r.hset(key, mapping={"seen": "-3", field: value})
    running = start_worker(sharded_worker(server))
    r = client.call_and_wait("Sh.echo", {"g": garbage})
    assert r.data == {"g": garbage}
    assert shard_of_id(r.id) is None, r.id  # one shard: the id is not marked
    assert running.worker.shared is not None
    assert [q for q in running.worker.shared.queues if q.startswith("Sh")] == ["Sh"]


def test_a_service_name_that_spells_a_shard_is_refused(client: Client) -> None:
    for name in ["Sh~3.echo", "Sh~x.echo"]:
        with pytest.raises(ValueError, match="shard"):
            Worker("redis://127.0.0.1:1").handle(name, lambda req: None)
        with pytest.raises(InvalidCall, match="shard"):
            client.call(name, {})


def _roles(server: RedisServer) -> None:
    """The users of deploy/redis/roles.acl, each with the password ``pw``."""
    import re

    text = (Path(__file__).resolve().parents[2] / "deploy" / "redis" / "roles.acl").read_text()
    for line in text.splitlines():
        if not line.startswith("user "):
            continue
        tokens = re.findall(r"\([^)]*\)|\S+", line)
        rules = [">pw" if t.startswith(">") else t for t in tokens[2:]]
        server.r.execute_command("ACL", "SETUSER", tokens[1], *rules)


def test_the_deploy_roles_may_run_shards_lua(server: RedisServer) -> None:
    # shards.lua runs TYPE, HMGET and HSET on P:{S}:shards: a worker's
    # `serve` and an operator's `set` need all three, not only EVALSHA.
    _roles(server)
    sha = server.r.script_load(SCRIPT)
    for user, verb in [("rpc-worker", "serve"), ("rpc-operator", "set")]:
        r = redis.Redis(port=server.port, username=user, password="pw")
        assert r.evalsha(sha, 1, K.shards("Sh"), verb, 2, 256) is not None
    assert server.r.hmget(K.shards("Sh"), "count", "seen") == [b"2", b"2"]


def test_the_deploy_roles_let_a_sharded_service_work(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    # The worker and the client as deploy/redis/roles.acl's rpc-worker and
    # rpc-client: the client reads the count (HMGET) and, refused XADD,
    # sends through every shard's intake; the worker runs shards.lua and
    # moves every shard's intake.
    _roles(server)
    set_count(server, "Sh", 4)
    base = f"127.0.0.1:{server.port}/"
    w = Worker(f"redis://rpc-worker:pw@{base}", concurrency=8, cancel_grace=0.5)
    w.handle("Sh.echo", lambda req: req.data).handle("Sh.wait", wait_cancelled)
    start_worker(w)
    with Client.connect(f"redis://rpc-client:pw@{base}", timeout=60) as c:
        ids = [c.call_and_wait("Sh.echo", {"i": i}).id for i in range(4)]
        assert c.async_client.via_intake
        assert {shard_of_id(i) for i in ids} == {0, 1, 2, 3}, ids
        keyed = c.call_and_wait("Sh.echo", {}, options=CallOptions(idempotency_key="role-key"))
        assert shard_of_id(keyed.id) == shard_of_key("role-key", 4)
        pending = c.send_job(JobSpec("Sh", "wait"), {})
        wait_for(lambda: pending.id in started, 30, "the job runs")
        pending.cancel()
        with pytest.raises(CallError) as e:
            pending.result()
        assert e.value.kind == "cancelled"
    assert server.r.hmget(K.shards("Sh"), "count", "seen") == [b"4", b"4"]


def test_one_read_takes_about_the_free_slots_not_that_many_per_shard(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    # XREADGROUP's COUNT is per stream: with COUNT = free slots, a worker of
    # 2 slots reading 4 shards would take 8 jobs at once and hold the 6 it
    # cannot run. Shared among the shards, one read takes fewer than 2 + 4.
    import threading

    set_count(server, "Sh", 4)
    inboxes = [push_raw(server, queue("Sh", k), "Sh.block", f"b{k}-{i}")
               for k in range(4) for i in range(4)]
    release = threading.Event()
    running: list[str] = []

    def block(req: Request) -> Any:
        running.append(req.id)
        release.wait(60)
        return None

    w = Worker(server.url, concurrency=2).handle("Sh.block", block)
    start_worker(w)
    wait_for(lambda: len(running) >= 2, 30, "two jobs running")
    taken = sum(server.r.xpending(K.jobs(queue("Sh", k)), "workers")["pending"] for k in range(4))
    assert 2 <= taken < 2 + 4, taken
    release.set()
    for inbox in inboxes:
        assert "ok" in reply(server, inbox)
