"""5,000 calls from 50 Python threads (one synchronous Client) and from 200
asyncio tasks (one AsyncClient) through the generated typed client, every
answer its own and checked, against the Rust everything-worker; beside them
the Rust client's figure for the same job against the same worker on the
same machine (``everything-check --load``), and the Rust client against the
Python worker. Calls per second are printed in pytest's summary
(``figures``) so they can be quoted; nothing asserts a speed."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rpc_runtime import AsyncClient, Client
from support import Process, RedisServer, python_example, rust_bin, rust_process
from support.generated import Generated

CALLS = 5_000
THREADS = 50
TASKS = 200

Report = Callable[[str], None]


@pytest.fixture
def everything_rs(server: RedisServer) -> Iterator[Process]:
    with rust_process("everything-worker", server.url, "--concurrency", "64") as p:
        yield p


def rust_load(url: str, tasks: int) -> str:
    out = subprocess.run(
        [str(rust_bin("everything-check")), "--url", url, "--timeout", "60",
         "--load", str(CALLS), "--tasks", str(tasks)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_5000_calls_from_50_threads_and_200_tasks(server: RedisServer, generated: Generated,
                                                  everything_rs: Process,
                                                  report: Report) -> None:
    ev = generated.everything
    wrong: list[str] = []

    with Client.connect(server.url, timeout=60.0) as client:
        drawing = ev.DrawingClient(client)
        assert drawing.header_value(ev.HttpHeader("warm", "up")) == "warm: up"
        start = threading.Barrier(THREADS + 1)

        def run(t: int) -> None:
            start.wait()
            for i in range(CALLS // THREADS):
                try:
                    got = drawing.header_value(ev.HttpHeader(f"t{t}", str(i)))
                except Exception as e:  # noqa: BLE001 - counted and reported
                    wrong.append(f"t{t}/{i}: {e!r}")
                    continue
                if got != f"t{t}: {i}":
                    wrong.append(f"t{t}/{i}: {got!r}")

        pool = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
        for th in pool:
            th.start()
        start.wait()
        began = time.perf_counter()
        for th in pool:
            th.join()
        took = time.perf_counter() - began
    assert not wrong, wrong[:5]
    report(f"python client, {THREADS} threads (sync Client) -> Rust worker: {CALLS} calls "
           f"in {took:.2f} s = {CALLS / took:.0f} calls/s")

    async def tasks() -> float:
        async with AsyncClient.connect(server.url, timeout=60.0) as aclient:
            adrawing = ev.AsyncDrawingClient(aclient)

            async def run(t: int) -> None:
                for i in range(CALLS // TASKS):
                    got = await adrawing.header_value(ev.HttpHeader(f"t{t}", str(i)))
                    assert got == f"t{t}: {i}", got

            began = time.perf_counter()
            await asyncio.gather(*(run(t) for t in range(TASKS)))
            return time.perf_counter() - began

    took = asyncio.run(tasks())
    report(f"python client, {TASKS} asyncio tasks (AsyncClient) -> Rust worker: {CALLS} calls "
           f"in {took:.2f} s = {CALLS / took:.0f} calls/s")
    for tasks_at_once in (THREADS, TASKS):
        report(f"{rust_load(server.url, tasks_at_once)} -> Rust worker")


def test_the_rust_client_against_the_python_worker(server: RedisServer, generated: Generated,
                                                   report: Report) -> None:
    with python_example("everything_worker.py", server.url, "--concurrency", "64",
                        pythonpath=[generated.root]):
        report(f"{rust_load(server.url, TASKS)} -> Python worker")
