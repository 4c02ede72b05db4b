"""Many calls at once through one client: 5,000 calls from 50 threads on one
synchronous Client and from 200 asyncio tasks on one AsyncClient, every
answer checked, with the calls per second printed (run pytest with ``-s``
to see them). Served by the fake worker in a process of its own, and by the
Rust calculator worker when its binary is there (``RPC_CALCULATOR_WORKER``,
else ``target/debug/worker`` of this checkout)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from rpc_runtime import AsyncClient, Client, DecodeError, JobSpec
from test_client_support import RedisServer, spawn_worker


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError("", "expected an integer")
    number: int = value
    return number


def _rust_worker() -> str | None:
    candidates = [os.environ.get("RPC_CALCULATOR_WORKER", ""),
                  str(Path(__file__).resolve().parents[2] / "target" / "debug" / "worker")]
    found = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if found is None and os.environ.get("RPC_TEST_REQUIRE_TOOLS") == "1":
        pytest.fail("the Rust calculator worker is not built (cargo build -p calculator)")
    return found


@pytest.fixture(scope="module", params=["fake", "rust"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, JobSpec[int], str]]:
    """(the Redis URL, the add job, which worker) with a worker serving it."""
    server = RedisServer()
    proc: subprocess.Popen[bytes]
    if request.param == "fake":
        prefix, spec = "load", JobSpec[int](service="Calc", name="add", decode_result=_int)
        proc = spawn_worker(server.port, prefix)
    else:
        binary = _rust_worker()
        if binary is None:
            server.stop()
            pytest.skip("the Rust calculator worker is not built")
        prefix, spec = "rpc", JobSpec[int](service="Calculator", name="add", decode_result=_int)
        proc = subprocess.Popen([binary, "--url", server.url, "--prefix", prefix, "--concurrency", "64"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client.connect(server.url, prefix=prefix, timeout=60) as client:
            # Wait for the worker: the first call is answered once it reads.
            assert client.call_job(spec, {"a": 1, "b": 1}) == 2
        yield server.url + f"?prefix={prefix}", spec, request.param
    finally:
        proc.kill()
        proc.wait()
        server.stop()


def _url_prefix(url: str) -> tuple[str, str]:
    base, _, prefix = url.partition("?prefix=")
    return base, prefix


def test_sequential_calls(served: tuple[str, JobSpec[int], str]) -> None:
    url, spec, which = served
    base, prefix = _url_prefix(url)
    n = 500
    with Client.connect(base, prefix=prefix, timeout=30) as client:
        started = time.perf_counter()
        for i in range(n):
            assert client.call_job(spec, {"a": i, "b": 1}) == i + 1
        took = time.perf_counter() - started
    print(f"\n[{which} worker] sync, sequential: {n} calls in {took:.2f} s = {n / took:.0f} calls/s")


def test_5000_calls_from_50_threads(served: tuple[str, JobSpec[int], str]) -> None:
    url, spec, which = served
    base, prefix = _url_prefix(url)
    threads, each = 50, 100
    wrong: list[str] = []
    with Client.connect(base, prefix=prefix, timeout=60) as client:
        start = threading.Barrier(threads + 1)

        def run(t: int) -> None:
            start.wait()
            for i in range(each):
                try:
                    got = client.call_job(spec, {"a": t, "b": i})
                except Exception as e:  # noqa: BLE001 - counted and reported
                    wrong.append(f"{t}/{i}: {e!r}")
                    continue
                if got != t + i:
                    wrong.append(f"{t}/{i}: {got}")

        pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        start.wait()
        started = time.perf_counter()
        for th in pool:
            th.join()
        took = time.perf_counter() - started
    assert not wrong, wrong[:5]
    total = threads * each
    print(f"\n[{which} worker] sync, {threads} threads: {total} calls in {took:.2f} s = {total / took:.0f} calls/s")


def test_5000_calls_from_200_asyncio_tasks(served: tuple[str, JobSpec[int], str]) -> None:
    url, spec, which = served
    base, prefix = _url_prefix(url)
    tasks, each = 200, 25

    async def main() -> float:
        async with AsyncClient.connect(base, prefix=prefix, timeout=60) as client:
            async def run(t: int) -> None:
                for i in range(each):
                    assert await client.call_job(spec, {"a": t, "b": i}) == t + i

            started = time.perf_counter()
            await asyncio.gather(*(run(t) for t in range(tasks)))
            return time.perf_counter() - started

    took = asyncio.run(main())
    total = tasks * each
    print(f"\n[{which} worker] asyncio, {tasks} tasks: {total} calls in {took:.2f} s = {total / took:.0f} calls/s")


def test_sequential_async_calls(served: tuple[str, JobSpec[int], str]) -> None:
    url, spec, which = served
    base, prefix = _url_prefix(url)
    n = 500

    async def main() -> float:
        async with AsyncClient.connect(base, prefix=prefix, timeout=30) as client:
            started = time.perf_counter()
            for i in range(n):
                assert await client.call_job(spec, {"a": i, "b": 2}) == i + 2
            return time.perf_counter() - started

    took = asyncio.run(main())
    print(f"\n[{which} worker] asyncio, sequential: {n} calls in {took:.2f} s = {n / took:.0f} calls/s")
