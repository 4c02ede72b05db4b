"""A Python handler's ``ctx.progress`` writes the protocol's progress key
(docs/PROTOCOL.md, "Progress"): bad values refused with ``ValueError``, a
tight loop of reports written a bounded number of times, the value in the
documented form with a TTL, and Rust's ``rpc call --progress`` reading it
from a Python worker."""

from __future__ import annotations

import json
import math
import subprocess
import time
from typing import Any

import pytest

from rpc_runtime import Request, Worker
from rpc_runtime.context import Context

from conftest import RedisServer, rust_bin, wait_for


def sets(server: RedisServer) -> int:
    stats = server.r.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("calls", 0))


def test_bad_progress_values_are_refused_and_a_context_without_a_worker_ignores_good_ones() -> None:
    ctx = Context(call_id="c1", job="T.job")
    for bad in [math.nan, math.inf, -math.inf, -0.1, 1.5, (5, 4), (0, 0), (-1, 3), (1.5, 3),
                (True, 2), True, "half", None]:
        with pytest.raises(ValueError):
            ctx.progress(bad, "x")  # type: ignore[arg-type]
    ctx.progress(0.5, "half")
    ctx.progress((3, 10), "é" * 500)


def test_a_tight_loop_of_reports_writes_a_bounded_number_of_documented_values(
    server: RedisServer, start_worker: Any
) -> None:
    def spin(req: Request) -> Any:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 1.0 or n < 100_000:
            req.context.progress((min(n, 99_999), 100_000), "spinning " + "é" * 300)
            n += 1
        return n

    worker = Worker(server.url).handle("T.spin", spin)
    running = start_worker(worker)
    before = sets(server)
    inbox = "rpc:inbox:{c-spin}"
    msg = {"v": 1, "id": "spin-1", "job": "T.spin", "params": {}, "reply_to": inbox,
           "timeout_ms": 60000, "result_ttl_ms": 60000}
    server.r.xadd("rpc:{T}:jobs", {"m": json.dumps(msg)})
    popped = server.r.blpop([inbox], 60)
    assert popped is not None
    reply = json.loads(popped[1])
    assert reply["ok"] >= 100_000
    # The newest value, flushed when the handler returned (plus the result's
    # and heartbeats' SETs).
    value = wait_for(lambda: server.r.get("rpc:progress:{spin-1}"), 30, "the progress value")
    written = sets(server) - before
    assert 1 <= written < 50, f"{reply['ok']} reports made {written} SETs"
    progress = json.loads(value)
    assert set(progress) == {"seq", "at_ms", "attempt", "done", "total", "fraction", "message"}
    assert progress["total"] == 100_000 and progress["attempt"] == 1
    assert progress["seq"] >= 1 and progress["at_ms"] > 0
    assert 0.0 <= progress["fraction"] <= 1.0
    assert len(progress["message"]) == 200
    ttl = server.r.pttl("rpc:progress:{spin-1}")
    assert 0 < ttl <= 120_000, ttl
    running.stop()


def test_rust_rpc_call_progress_shows_a_python_workers_progress(
    server: RedisServer, start_worker: Any
) -> None:
    rpc = str(rust_bin("rpc"))

    def reads() -> int:
        return int(server.r.info("commandstats").get("cmdstat_getrange", {}).get("calls", 0))

    def steps(req: Request) -> Any:
        key = f"rpc:progress:{{{req.id}}}"
        for i in range(1, 4):
            req.context.progress((i, 3), f"step {i}")
            # Until the value is written and a watcher has read it since.
            wait_for(lambda: f'"seq":{i},' in (server.r.get(key) or b"").decode(), 60,
                     f"report {i} written")
            seen = reads()
            wait_for(lambda: reads() > seen, 60, f"report {i} read")
        return {"copied": 3}

    worker = Worker(server.url).handle("T.steps", steps)
    running = start_worker(worker)
    out = subprocess.run([rpc, "--url", server.url, "call", "T.steps", "{}", "--progress",
                          "--timeout", "60s"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"copied": 3}
    lines = [line for line in out.stderr.splitlines() if line.startswith("progress")]
    assert lines == ["progress 1/3 33% step 1", "progress 2/3 66% step 2",
                     "progress 3/3 100% step 3"], out.stderr
    running.stop()
