"""Handlers' ends become the protocol's answers and never stop the worker:
a value is ``ok``, an exception ``handler``, ``Fatal`` ``handler``,
``Retry`` a retry through the schedule then a dead letter, an ``AppError``
``app``, a deadline ``deadline_exceeded``; sync and async handlers alike.
And the lifecycle: delayed calls, cancellations through the intake, pause,
hand-backs of unknown jobs, idempotency keys, reclaim of a dead worker's
lease, daily counts and the heartbeat."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from typing import Any

import pytest

from rpc_runtime import AppError, Fatal, Request, Retry, Worker

from conftest import RedisServer, rust_bin, wait_for

JOBS = "rpc:{T}:jobs"


def call(server: RedisServer, job: str, params: Any, call_id: str, **extra: Any) -> dict[str, Any]:
    inbox = f"rpc:inbox:{{c-{call_id}}}"
    msg = {"v": 1, "id": call_id, "job": job, "params": params, "reply_to": inbox,
           "timeout_ms": 30000, **extra}
    if "run_at_ms" in extra or "idempotency_key" in extra:
        msg["v"] = 2
    server.r.xadd(JOBS, {"m": json.dumps(msg)})
    popped = server.r.blpop([inbox], 60)
    assert popped is not None, f"no reply to {call_id}"
    return json.loads(popped[1])  # type: ignore[no-any-return]


class Oops(AppError):
    def error_json(self) -> Any:
        return "DivideByZero"


def boom(req: Request) -> Any:
    raise ValueError("boom")


async def aboom(req: Request) -> Any:
    await asyncio.sleep(0)
    raise KeyError("gone")


attempts: dict[str, int] = {}


def flaky(req: Request) -> Any:
    attempts[req.id] = req.context.attempt
    raise Retry("not yet")


def slow(req: Request) -> Any:
    time.sleep(1.5)
    return "late"


async def cancellable(req: Request) -> Any:
    await req.context.wait_cancelled()
    return None if False else (_ for _ in ()).throw(RuntimeError("stopped"))


@pytest.fixture
def worker(server: RedisServer, start_worker):  # type: ignore[no-untyped-def]
    w = (
        Worker(server.url, concurrency=4, backoff="fixed(10ms)", cancel_grace=0.5,
               heartbeat=(0.2, 2.0))
        .handle("T.echo", lambda req: req.data)
        .handle("T.respond", lambda req: (req.respond("first"), req.respond("second"), "ret")[2])
        .handle("T.boom", boom)
        .handle("T.aboom", aboom)
        .handle("T.fatal", lambda req: (_ for _ in ()).throw(Fatal("no way")))
        .handle("T.app", lambda req: (_ for _ in ()).throw(Oops()))
        .handle("T.flaky", flaky)
        .handle("T.slow", slow)
        .handle("T.cancellable", cancellable)
    )
    return start_worker(w)


def test_values_and_errors_become_replies_and_the_worker_survives(server: RedisServer,
                                                                  worker) -> None:  # type: ignore[no-untyped-def]
    assert call(server, "T.echo", {"x": [1, "é"]}, "e1") == {"v": 1, "id": "e1", "ok": {"x": [1, "é"]}}
    assert call(server, "T.respond", {}, "r1")["ok"] == "first"
    for job, text in [("T.boom", "ValueError: boom"), ("T.aboom", "KeyError: 'gone'"),
                      ("T.fatal", "no way")]:
        reply = call(server, job, {}, job)
        assert reply["error"] == {"kind": "handler", "message": text}, reply
    reply = call(server, "T.app", {}, "a1")
    assert reply["error"]["kind"] == "app" and reply["error"]["data"] == "DivideByZero"
    assert call(server, "T.echo", {}, "e2")["ok"] == {}
    reply = call(server, "T.nope", {}, "n1", timeout_ms=300)
    assert reply["error"]["kind"] == "unknown_job"
    assert "no worker that took it knows job `nope` of service `T`" in reply["error"]["message"]
    reply = call(server, "Other.x", {}, "o1")
    assert reply["error"] == {"kind": "unknown_job",
                              "message": "no service `Other` is mounted on this worker"}


def test_retry_goes_through_the_schedule_then_dead_letters(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    reply = call(server, "T.flaky", {}, "f1", max_attempts=3)
    assert reply["error"]["kind"] == "dead_lettered"
    assert reply["error"]["message"] == "failed on attempt 3 of 3: not yet"
    assert attempts["f1"] == 3
    [(_, letter)] = server.r.xrange("rpc:{T}:dead")
    assert letter[b"worker"] == worker.worker.consumer.encode()
    assert b"duration_ms" in letter
    failures = server.r.xrange("rpc:{T}:failures")
    assert [f[b"retried"] for _, f in failures] == [b"1", b"1"]


def test_deadline_passes_while_running(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    reply = call(server, "T.slow", {}, "s1", timeout_ms=300)
    assert reply["error"]["kind"] == "deadline_exceeded"
    assert call(server, "T.echo", 1, "after-slow")["ok"] == 1


def test_delayed_call_waits_on_the_schedule(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    sec, usec = server.r.time()
    now_ms = sec * 1000 + usec // 1000
    t0 = time.monotonic()
    reply = call(server, "T.echo", "later", "d1", run_at_ms=now_ms + 700)
    assert reply["ok"] == "later"
    assert time.monotonic() - t0 >= 0.6


def test_cancel_through_the_intake_stops_a_running_job(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(call(server, "T.cancellable", {}, "k1")))
    t.start()
    wait_for(lambda: server.r.xpending(JOBS, "workers")["pending"] == 1, 30, "the job running")
    server.r.rpush("rpc:{T}:intake", "cancel k1")
    t.join(60)
    assert result["error"]["kind"] == "cancelled", result


def test_a_job_pushed_on_the_intake_is_moved_and_run(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    inbox = "rpc:inbox:{intake-1}"
    server.r.rpush("rpc:{T}:intake", json.dumps(
        {"v": 1, "id": "i1", "job": "T.echo", "params": 7, "reply_to": inbox}))
    popped = server.r.blpop([inbox], 30)
    assert popped is not None and json.loads(popped[1])["ok"] == 7


def test_idempotency_key_runs_once_and_points_duplicates_at_the_holder(server: RedisServer,
                                                                        worker) -> None:  # type: ignore[no-untyped-def]
    first = call(server, "T.echo", {"n": 1}, "k-a", idempotency_key="order-42")
    assert first["ok"] == {"n": 1} and len(first["fingerprint"]) == 64
    dup = call(server, "T.echo", {"n": 1.0}, "k-b", idempotency_key="order-42")
    assert dup == {"v": 1, "id": "k-b", "fingerprint": first["fingerprint"], "holder": "k-a"}
    other = call(server, "T.echo", {"n": 2}, "k-c", idempotency_key="order-42")
    assert other["error"]["kind"] == "idempotency_conflict"
    assert other["error"]["data"] == {"key": "order-42"}
    kept = json.loads(server.r.get("rpc:result:{k-a}"))  # type: ignore[arg-type]
    assert kept["fingerprint"] == first["fingerprint"]


def test_pause_holds_jobs_until_resumed(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    server.r.set("rpc:{T}:paused", "1")
    wait_for(lambda: "T" in worker.worker.shared.paused, 30, "the pause seen")
    time.sleep(1.2)  # the read in flight when the pause was seen ends
    inbox = "rpc:inbox:{paused}"
    server.r.xadd(JOBS, {"m": json.dumps({"v": 1, "id": "p1", "job": "T.echo", "params": 1,
                                          "reply_to": inbox})})
    assert server.r.blpop([inbox], 1) is None
    server.r.delete("rpc:{T}:paused")
    popped = server.r.blpop([inbox], 30)
    assert popped is not None and json.loads(popped[1])["ok"] == 1


def test_heartbeat_and_daily_counts(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    call(server, "T.echo", 1, "hb1")
    call(server, "T.boom", 1, "hb2")
    beat = json.loads(server.r.get(f"rpc:worker:{{{worker.worker.consumer}}}"))  # type: ignore[arg-type]
    assert beat["services"] == ["T"] and beat["state"] == "running" and beat["v"] == 1
    assert server.r.zscore("rpc:{T}:workers", worker.worker.consumer) is not None
    day = time.strftime("%Y-%m-%d", time.gmtime())
    worker.stop()
    assert int(server.r.get(f"rpc:{{T}}:stat:processed:{day}") or 0) == 2
    assert int(server.r.get(f"rpc:{{T}}:stat:failed:{day}") or 0) == 1
    assert server.r.exists(f"rpc:worker:{{{worker.worker.consumer}}}") == 0


def test_an_operator_stop_shuts_the_worker_down(server: RedisServer, worker) -> None:  # type: ignore[no-untyped-def]
    server.r.set(f"rpc:worker:{{{worker.worker.consumer}}}:control", "stop", px=86400000)
    worker.thread.join(30)
    assert not worker.thread.is_alive()


def test_a_dead_workers_lease_is_reclaimed(server: RedisServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    server.r.xgroup_create(JOBS, "workers", id="0", mkstream=True)
    inbox = "rpc:inbox:{reclaim}"
    server.r.xadd(JOBS, {"m": json.dumps({"v": 1, "id": "rc1", "job": "T.echo", "params": 5,
                                          "reply_to": inbox})})
    server.r.xreadgroup("workers", "dead-consumer", {JOBS: ">"}, count=1)
    running = start_worker(Worker(server.url, visibility_timeout=0.5).handle("T.echo",
                                                                             lambda r: r.data))
    popped = server.r.blpop([inbox], 30)
    assert popped is not None and json.loads(popped[1])["ok"] == 5
    running.stop()


def test_the_rust_client_calls_a_python_worker(server: RedisServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    def add(req: Request) -> Any:
        return req.data["a"] + req.data["b"]

    def divide(req: Request) -> Any:
        if req.data["b"] == 0:
            raise Oops()
        return req.data["a"] // req.data["b"]

    start_worker(Worker(server.url).handle("Calculator.add", add)
                 .handle("Calculator.divide", divide))
    rpc = str(rust_bin("rpc"))
    out = subprocess.run([rpc, "--url", server.url, "call", "--key", "k1", "Calculator.add",
                          '{"a":2,"b":3}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout) == 5, out.stderr
    out = subprocess.run([rpc, "--url", server.url, "call", "--key", "k1", "Calculator.add",
                          '{"b":3.0,"a":2}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout) == 5, out.stderr
    out = subprocess.run([rpc, "--url", server.url, "call", "--delay", "1s", "Calculator.add",
                          '{"a":1,"b":1}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout) == 2, out.stderr
    out = subprocess.run([rpc, "--url", server.url, "call", "--full", "Calculator.divide",
                          '{"a":1,"b":0}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and '"DivideByZero"' in out.stdout + out.stderr, out
