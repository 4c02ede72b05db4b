"""Fixtures of the Python tests: a private redis-server per test, a worker
running on its own event loop in a thread, and the generated modules of the
repository's schemas (once per session). The helpers themselves live in
``support/``; the names the worker tests import from here (RedisServer,
free_port, rust_bin, wait_for) are re-exported."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Callable

import pytest

from rpc_runtime.worker import Worker
from support import RedisServer, free_port, rust_bin, wait_for
from support.generated import Generated, generate

__all__ = ["Generated", "RedisServer", "Running", "free_port", "rust_bin", "wait_for"]


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
        wait_for(lambda: self.error or self._serving(), 30, "worker serving")
        if self.error is not None:
            raise self.error

    def _serving(self) -> bool:
        sh = self.worker.shared
        return sh is not None and sh.redis is not None

    def _main(self) -> None:
        try:
            asyncio.run(self.worker.run_async())
        except BaseException as e:  # noqa: BLE001 - re-raised by stop()
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


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """schema/calculator.rpc and schema/everything.rpc generated with
    ``rpc-codegen gen --lang python`` into a package ``generated`` on sys.path."""
    return generate(tmp_path_factory.mktemp("python-generated"))


#: Figures tests report (calls per second...), printed at the end of the run.
_FIGURES: list[str] = []


@pytest.fixture
def report() -> Callable[[str], None]:
    """``report(line)``: a figure printed in pytest's summary (and now, with -s)."""

    def add(line: str) -> None:
        print(f"\n{line}")
        _FIGURES.append(line)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
