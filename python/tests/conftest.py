"""Private redis-servers and a worker running in a thread, for the worker
tests. Never the Redis on 6379: each server gets a free port of its own
and is killed by pid at the end."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import redis

from rpc_runtime.worker import Worker

REPO = Path(__file__).resolve().parents[2]
RUST_BIN = Path(os.environ.get("RPC_RUST_BIN", "/work/main/target/debug"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/"
        self.r = redis.Redis(port=self.port)
        wait_for(self._up, 10, "redis-server up")

    def _up(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        self.r.close()
        self.proc.kill()
        self.proc.wait()


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    s = RedisServer()
    try:
        yield s
    finally:
        s.stop()


class Running:
    """A worker serving on its own event loop in a thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        wait_for(lambda: worker.shared is not None or self.error, 30, "worker start")
        # Started: its first poll and group creation happened before shared is set? wait a beat.
        wait_for(lambda: self.error or self._serving(), 30, "worker serving")

    def _serving(self) -> bool:
        sh = self.worker.shared
        return sh is not None and sh.redis is not None

    def _main(self) -> None:
        try:
            asyncio.run(self.worker.run_async())
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def stop(self, timeout: float = 60.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_worker() -> Iterator[Callable[[Worker], Running]]:
    started: list[Running] = []

    def start(worker: Worker) -> Running:
        r = Running(worker)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.thread.is_alive():
            r.stop()


def rust_bin(name: str) -> Path:
    path = RUST_BIN / name
    if not path.is_file():
        pytest.skip(f"the Rust binary {path} is not built")
    return path
