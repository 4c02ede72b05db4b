"""The Python twin of rpc-chaos's ``chaos-worker``: serves the ``Chaos``
service (untyped jobs, ``Worker.handle``) and prints the same event lines on
stdout, flushed at once (a test may SIGKILL it next), so one test can watch
a fleet of Rust and Python workers alike:

* ``ready PID`` once it serves;
* ``start ID ATTEMPT`` when a ``sleep`` job begins;
* ``redelivered ID ATTEMPT`` when any job runs on an attempt after the first;
* ``ran ID ATTEMPT UNIX_US`` when a ``record`` or ``flaky`` job begins;
* ``note TEXT`` for a ``note`` job;
* ``stats JSON`` after a graceful stop (SIGTERM or ctrl-c).

Jobs: ``square {n}`` -> n*n; ``sleep {ms}`` -> {pid, attempt, max_running};
``note {text}`` -> null; ``record {ms}`` -> null; ``flaky {n}`` -> the
attempt that succeeded, after asking for a retry while attempt <= n;
``context {}`` -> what the handler sees; ``steps {n, ms}`` -> n, after
reporting progress i/n (``step i``) for i from 1 to n, sleeping ms after each.

    python python/examples/chaos_worker.py --url redis://127.0.0.1:6379/ --visibility-ms 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import rpc_runtime
from rpc_runtime import Fatal, Request, Retry

SERVICE = "Chaos"
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def emit(line: str) -> None:
    """One event line, flushed at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def int_param(data: Any, name: str) -> int:
    value = data.get(name) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not I64_MIN <= value <= I64_MAX:
        raise Fatal(f"`{name}` must be an integer")
    return value


def seen(req: Request) -> None:
    if req.context.attempt > 1:
        emit(f"redelivered {req.id} {req.context.attempt}")


class Jobs:
    """The Chaos jobs, with the running-job gauge ``sleep`` reports."""

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0

    async def square(self, req: Request) -> int:
        seen(req)
        n = int_param(req.data, "n")
        if not I64_MIN <= n * n <= I64_MAX:
            raise Fatal("overflow")
        return n * n

    async def sleep(self, req: Request) -> dict[str, int]:
        seen(req)
        ms = max(0, int_param(req.data, "ms"))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            emit(f"start {req.id} {req.context.attempt}")
            await asyncio.sleep(ms / 1000)
        finally:
            self.running -= 1
        return {"pid": os.getpid(), "attempt": req.context.attempt,
                "max_running": self.max_running}

    async def note(self, req: Request) -> None:
        seen(req)
        text = req.data.get("text") if isinstance(req.data, dict) else None
        emit(f"note {text if isinstance(text, str) else ''}")

    async def record(self, req: Request) -> None:
        started = time.time_ns() // 1000
        seen(req)
        emit(f"ran {req.id} {req.context.attempt} {started}")
        ms = req.data.get("ms") if isinstance(req.data, dict) else None
        if isinstance(ms, int) and not isinstance(ms, bool) and ms > 0:
            await asyncio.sleep(ms / 1000)

    async def flaky(self, req: Request) -> int:
        started = time.time_ns() // 1000
        seen(req)
        attempt = req.context.attempt
        emit(f"ran {req.id} {attempt} {started}")
        n = int_param(req.data, "n")
        if attempt <= n:
            raise Retry(f"flaky: attempt {attempt} of the {n} that fail")
        return attempt

    async def steps(self, req: Request) -> int:
        seen(req)
        n = max(int_param(req.data, "n"), 1)
        ms = max(int_param(req.data, "ms"), 0)
        for i in range(1, n + 1):
            req.context.progress((i, n), f"step {i}")
            await asyncio.sleep(ms / 1000)
        return n

    async def context(self, req: Request) -> dict[str, Any]:
        seen(req)
        ctx = req.context
        return {
            "id": ctx.id,
            "attempt": ctx.attempt,
            "max_attempts": ctx.max_attempts,
            "deadline_ms": None if ctx.deadline is None else int(ctx.deadline * 1000),
            "traceparent": ctx.metadata.get("traceparent"),
            "pid": os.getpid(),
        }


def stats_of(totals: dict[str, int]) -> dict[str, int]:
    """The worker's totals under the names chaos-worker's ``stats`` line uses."""
    return {
        "succeeded": totals.get("succeeded", 0),
        "failed": totals.get("failed", 0),
        "retried": totals.get("retried", 0),
        "dead_lettered": totals.get("dead", 0),
        "expired": totals.get("timeout", 0),
    }


async def serve(worker: rpc_runtime.Worker) -> None:
    await worker.run_async(signals=True, on_ready=lambda: emit(f"ready {os.getpid()}"))
    counts = worker.shared.counts if worker.shared is not None else None
    if counts is not None:
        emit(f"stats {json.dumps(stats_of(dict(counts.totals)))}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Chaos jobs from Python")
    parser.add_argument("--url", default=os.environ.get("CHAOS_URL", "redis://127.0.0.1:6379/"))
    parser.add_argument("--prefix", default="rpc")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--visibility-ms", type=int, default=30_000)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--shutdown-grace-ms", type=int, default=30_000)
    parser.add_argument("--inbox-ttl-ms", type=int, default=60_000)
    parser.add_argument("--beat-every-ms", type=int, default=5_000)
    parser.add_argument("--beat-ttl-ms", type=int, default=30_000)
    parser.add_argument("--omit-job", action="append", default=[],
                        help="serve Chaos without this job (repeatable)")
    parser.add_argument("--rate-limits", default=None,
                        help="rate limits across the fleet, e.g. `Chaos.record=50/s`")
    parser.add_argument("--group-limit", action="append", default=[], metavar="JOB=K",
                        help="a per-key concurrency limit, `Service.job=K` (repeatable)")
    args = parser.parse_args()
    group_limits: dict[str, int] = {}
    for spec in args.group_limit:
        job, eq, k = spec.partition("=")
        if not eq or not k.isdigit():
            parser.error(f"--group-limit {spec}: Service.job=K")
        group_limits[job] = int(k)
    worker = rpc_runtime.Worker(
        args.url,
        prefix=args.prefix,
        concurrency=args.concurrency,
        visibility_timeout=args.visibility_ms / 1000,
        max_attempts=args.max_attempts,
        shutdown_grace=args.shutdown_grace_ms / 1000,
        inbox_ttl=args.inbox_ttl_ms / 1000,
        heartbeat=(args.beat_every_ms / 1000, args.beat_ttl_ms / 1000),
        version="chaos-worker (python example)",
        rate_limits=args.rate_limits,
        group_limits=group_limits,
    )
    jobs = Jobs()
    for name in ("square", "sleep", "note", "record", "flaky", "context", "steps"):
        if name not in args.omit_job:
            worker.handle(f"{SERVICE}.{name}", getattr(jobs, name))
    asyncio.run(serve(worker))


if __name__ == "__main__":
    main()
