"""Rate limits in Python (docs/PROTOCOL.md, "Rate limits"): the grammar
read as Rust reads it, a Python worker spacing a limited job's starts, and
a Python worker and a Rust ``chaos-worker`` given the same limit keeping it
together through ``rate_limit.lua``'s one state in Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from rpc_runtime import AsyncClient, JobSpec, Request, Worker
from rpc_runtime.rate import RateError, parse_rate
from support import Process, RedisServer, python_example, rust_process, wait_for


def test_the_grammar_reads_as_rusts() -> None:
    for text, count, per_ms, burst, printed in [
        ("50/s", 50, 1000, 1, "50/s"),
        ("1000/m", 1000, 60_000, 1, "1000/m"),
        ("10/500ms", 10, 500, 1, "10/500ms"),
        ("100/s burst 20", 100, 1000, 20, "100/s burst 20"),
        ("100/s, burst 20", 100, 1000, 20, "100/s burst 20"),
        (" 3 / 10s ", 3, 10_000, 1, "3/10s"),
        ("5/min", 5, 60_000, 1, "5/m"),
        ("1/24h", 1, 86_400_000, 1, "1/24h"),
        ("2/90m", 2, 5_400_000, 1, "2/90m"),
    ]:
        r = parse_rate(text)
        assert (r.count, r.per_ms, r.burst) == (count, per_ms, burst), text
        assert str(r) == printed
    assert parse_rate("3/s").interval_us == 333_334
    assert parse_rate("100/s burst 5").tolerance_us == 40_000
    for bad, why in [("", "no `/`"), ("0/s", "the count must be 1"), ("-1/s", "whole number"),
                     ("50/fortnight", "unknown period unit"), ("50/25h", "1ms to 24h"),
                     ("2000/ms", "over 1000000 starts a second"),
                     ("10/s burst 11", "the burst must be 1 to the count"),
                     ("1/s" + " " * 100, "longer than 64 bytes")]:
        with pytest.raises(RateError, match=why):
            parse_rate(bad)


def test_a_python_worker_spaces_a_limited_jobs_starts(server: RedisServer,
                                                      start_worker: Any) -> None:
    starts: list[float] = []

    def go(req: Request) -> Any:
        starts.append(time.monotonic())
        return req.data

    with pytest.raises(ValueError, match="service `T` has no job `nope`"):
        asyncio.run(Worker(server.url, rate_limits="T.nope=1/s").handle("T.go", go).run_async())
    with pytest.raises(RateError, match="unknown period unit"):
        Worker(server.url, rate_limits="T.go=1/fortnight")
    worker = Worker(server.url, rate_limits="T.go=10/s").handle("T.go", go)
    running = start_worker(worker)
    inbox = "rpc:inbox:{c-rate}"
    for i in range(5):
        msg = {"v": 1, "id": f"rate-{i}", "job": "T.go", "params": {"i": i}, "reply_to": inbox,
               "timeout_ms": 60_000}
        server.r.xadd("rpc:{T}:jobs", {"m": json.dumps(msg)})
    replies = [server.r.blpop([inbox], 60) for _ in range(5)]
    assert all(r is not None for r in replies)
    starts.sort()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 5 and all(g >= 0.085 for g in gaps), gaps
    state = server.r.hgetall("rpc:{T}:rate:go")
    assert state[b"rate"] == b"10/s" and state[b"allowed"] == b"5", state
    running.stop()


def starts_of(process: Process) -> dict[str, int]:
    """Call id -> when it began (µs), from the process's ``ran`` lines."""
    out = {}
    for line in process.lines:
        if line.startswith("ran "):
            _, call_id, _attempt, at = line.split(" ")
            out[call_id] = int(at)
    return out


def test_python_and_rust_workers_keep_one_limit_together(server: RedisServer) -> None:
    limit = "Chaos.record=20/s"
    with python_example("chaos_worker.py", server.url, "--rate-limits", limit,
                        ready="ready ") as py, \
            rust_process("chaos-worker", server.url, "--rate-limits", limit) as rs:
        record: JobSpec[None] = JobSpec("Chaos", "record")

        async def main() -> list[str]:
            async with AsyncClient.connect(server.url, timeout=120.0) as client:
                sent = [await client.send_job(record, {"ms": 0}) for _ in range(40)]
                await asyncio.gather(*(p.result(120.0) for p in sent))
                return [p.id for p in sent]

        ids = asyncio.run(main())
        wait_for(lambda: len(starts_of(py)) + len(starts_of(rs)) >= 40, 30, "every ran line")
        py_starts, rs_starts = starts_of(py), starts_of(rs)
    assert sorted(py_starts) != [] and sorted(rs_starts) != [], "both workers took jobs"
    every = {**py_starts, **rs_starts}
    assert sorted(every) == sorted(ids)
    times = sorted(every.values())
    # 20/s: the k-th start no sooner than k × 50 ms after the first (less
    # what reading the clock after the script lets the first one gain).
    early = [(k, t - times[0]) for k, t in enumerate(times)
             if t + 30_000 < times[0] + k * 50_000]
    assert not early, f"starts before their turn (k, µs after the first): {early[:5]}"
