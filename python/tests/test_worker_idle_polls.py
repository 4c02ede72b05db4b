"""Idle lifecycle polls back off with the fleet (1 s times the live workers
of the service, at most 10 s), and a job taken from a queue whose last poll
is old asks Redis whether it was cancelled, so the back-off does not let a
cancelled call run (docs/PROTOCOL.md, "The lifecycle poll's cadence")."""

from __future__ import annotations

import json
import time
from typing import Any

from rpc_runtime import Request, Worker
from rpc_runtime.keys import Keys
from rpc_runtime.worker.idle_polls import FRESH_FOR_S, IDLE_EVERY_S, MAX_IDLE_FACTOR, IdlePolls

from conftest import RedisServer, wait_for
from test_worker_shards import _roles

K = Keys("rpc")


def test_an_idle_poll_backs_off_with_the_fleet_up_to_a_cap() -> None:
    polls = IdlePolls()
    assert polls.idle_every_s("S~3") == IDLE_EVERY_S
    polls.fleet_is("S", 4)
    assert polls.idle_every_s("S~3") == 4 * IDLE_EVERY_S
    assert polls.idle_every_s("S") == 4 * IDLE_EVERY_S
    polls.fleet_is("S", 1000)
    assert polls.idle_every_s("S") == MAX_IDLE_FACTOR * IDLE_EVERY_S
    polls.fleet_is("S", 0)
    assert polls.idle_every_s("S") == IDLE_EVERY_S


def test_a_poll_goes_stale() -> None:
    polls = IdlePolls()
    assert polls.is_stale("S"), "never polled"
    polls.polled("S", time.monotonic())
    assert not polls.is_stale("S")
    polls.polled("S", time.monotonic() - FRESH_FOR_S - 0.01)
    assert polls.is_stale("S")


def fake_fleet(server: RedisServer, service: str, live: int, dead: int) -> None:
    """Registry entries of ``live`` workers with a beat and ``dead`` without."""
    now_ms = int(server.r.time()[0]) * 1000
    for i in range(live + dead):
        server.r.zadd(K.workers(service), {f"w{i}": now_ms})
        if i < live:
            server.r.set(K.worker(f"w{i}"), "{}", px=600_000)
    # Garbage a worker's rights let anyone write: no worker's id.
    server.r.zadd(K.workers(service), {"not a worker}": now_ms, "x" * 200: now_ms})
    server.r.set(K.worker("not a worker}"), "{}", px=600_000)
    server.r.set(K.worker("x" * 200), "{}", px=600_000)


ran: list[str] = []


def record(req: Request) -> Any:
    ran.append(req.id)
    return "ran"


def test_a_fleet_of_ten_polls_each_idle_queue_every_ten_seconds_and_still_skips_cancelled_calls(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    # Nine other live workers (and two gone): with this one, ten.
    fake_fleet(server, "Idle", live=9, dead=2)
    # As deploy/redis/roles.acl's worker: what it reads, the role allows.
    _roles(server)
    url = f"redis://rpc-worker:pw@127.0.0.1:{server.port}/"
    w = Worker(url, concurrency=4, heartbeat=(0.2, 1.0)).handle("Idle.run", record)
    running = start_worker(w)
    shared = running.worker.shared
    assert shared is not None
    # The janitor counts the fleet every beat TTL (1 s here).
    wait_for(lambda: shared.idle_polls.idle_every_s("Idle") == 10 * IDLE_EVERY_S, 30,
             "the fleet of ten counted")
    wait_for(lambda: shared.idle_polls.is_stale("Idle"), 30, "the queue's last poll is old")
    # A call cancelled while queued (as cancel.lua leaves it: its id in the
    # cancelled set, the job on the stream unflagged), taken before the next poll.
    inbox = K.inbox("c-cancelled-1")
    msg = {"v": 1, "id": "cancelled-1", "job": "Idle.run", "params": {}, "reply_to": inbox,
           "timeout_ms": 60_000}
    with server.r.pipeline(transaction=True) as pipe:
        pipe.zadd(K.cancelled("Idle"), {"cancelled-1": int(server.r.time()[0]) * 1000})
        pipe.xadd(K.jobs("Idle"), {"m": json.dumps(msg)})
        pipe.execute()
    popped = server.r.blpop([inbox], 60)
    assert popped is not None
    assert json.loads(popped[1])["error"]["kind"] == "cancelled"
    assert "cancelled-1" not in ran


def test_the_janitor_forgets_gone_consumers_and_keeps_a_lease(  # type: ignore[no-untyped-def]
    server: RedisServer, start_worker
) -> None:
    # forget_consumer.lua checks "no lease, still idle" in one step with
    # XGROUP DELCONSUMER, as deploy/redis/roles.acl's worker.
    key = K.jobs("Idle")
    server.r.xgroup_create(key, "workers", id="0", mkstream=True)
    server.r.xgroup_createconsumer(key, "workers", "gone")
    server.r.xadd(key, {"m": "not a job"})
    server.r.xreadgroup("workers", "holder", {key: ">"}, count=1)
    _roles(server)
    url = f"redis://rpc-worker:pw@127.0.0.1:{server.port}/"
    w = Worker(url, concurrency=4, heartbeat=(0.2, 1.0)).handle("Idle.run", record)
    start_worker(w)

    def names() -> list[str]:
        return [c["name"].decode() for c in server.r.xinfo_consumers(key, "workers")]

    wait_for(lambda: "gone" not in names(), 30, "the gone consumer forgotten")
    assert "holder" in names(), "a consumer holding a lease stays"
    assert server.r.xpending(key, "workers")["pending"] >= 1
    assert server.r.acl_log() == [], "the role may run forget_consumer.lua"
