"""A worker SIGKILLed mid-job, its jobs taken over by a worker of the other
language once their leases lapse (a 2 s visibility timeout on both): the
Python chaos worker killed and the Rust ``chaos-worker`` finishing its jobs,
and the other way. Each job is answered once, by the survivor, on attempt 2
(the killed run counts), and runs on no third occasion."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from rpc_runtime import AsyncClient, CallOptions, JobSpec
from support import Process, RedisServer, python_example, rust_process

VISIBILITY = ["--visibility-ms", "2000"]
JOBS = 5


def python_worker(url: str) -> Process:
    return python_example("chaos_worker.py", url, *VISIBILITY, ready="ready ")


def rust_worker(url: str) -> Process:
    return rust_process("chaos-worker", url, *VISIBILITY)


@pytest.mark.parametrize("first,second", [(python_worker, rust_worker),
                                          (rust_worker, python_worker)],
                         ids=["python-killed-rust-takes-over", "rust-killed-python-takes-over"])
def test_a_killed_workers_jobs_are_taken_over(server: RedisServer,
                                              first: Callable[[str], Process],
                                              second: Callable[[str], Process]) -> None:
    sleep: JobSpec[Any] = JobSpec("Chaos", "sleep")

    async def main() -> list[Any]:
        async with AsyncClient.connect(server.url, timeout=120.0) as client:
            with first(server.url) as doomed:
                sent = [await client.send_job(sleep, {"ms": 1500}, CallOptions(timeout=120.0))
                        for _ in range(JOBS)]
                for p in sent:
                    await asyncio.to_thread(doomed.wait_line, f"start {p.id} 1", 60)
                doomed.kill()
                assert doomed.count(lambda line: line.startswith("start ")) == JOBS
            with second(server.url) as survivor:
                answers = await asyncio.gather(*(p.result(120.0) for p in sent))
                for p in sent:
                    assert survivor.count(lambda line, i=p.id: line == f"start {i} 2") == 1
                    assert survivor.count(lambda line, i=p.id: line == f"redelivered {i} 2") == 1
                assert survivor.count(lambda line: line.startswith("start ")) == JOBS
                return [(a, survivor.pid) for a in answers]

    for answer, pid in asyncio.run(main()):
        assert answer["pid"] == pid and answer["attempt"] == 2, answer
