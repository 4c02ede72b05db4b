"""Rust callers against Python workers: the typed Rust clients
(``everything-check``: every job of everything.rpc, every type, every error
kind; the calculator example's ``client``) and the ``rpc`` CLI (answers,
typed and untyped errors, one-way, kept results, deadlines, delay,
idempotency, cancel) against the Python example workers in processes of
their own."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from support import Process, RedisServer, python_example, rust_bin, wait_for
from support.generated import Generated


@pytest.fixture
def everything_py(server: RedisServer, generated: Generated) -> Iterator[Process]:
    with python_example("everything_worker.py", server.url, pythonpath=[generated.root]) as p:
        yield p


@pytest.fixture
def calculator_py(server: RedisServer, generated: Generated) -> Iterator[Process]:
    with python_example("calculator_worker.py", server.url, pythonpath=[generated.root]) as p:
        yield p


@pytest.fixture
def chaos_py(server: RedisServer) -> Iterator[Process]:
    with python_example("chaos_worker.py", server.url, ready="ready ") as p:
        yield p


def run(binary: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(rust_bin(binary)), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_everything_check_passes_against_the_python_worker(server: RedisServer,
                                                           everything_py: Process) -> None:
    out = run("everything-check", "--url", server.url)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{everything_py.describe()}"
    assert "all checks passed" in out.stdout
    # The one-way log job ran on the Python worker, printed as the Rust one does.
    everything_py.wait_line("[3] hello (attempt 1)", 30)


def test_the_rust_calculator_client_against_the_python_worker(server: RedisServer,
                                                              calculator_py: Process) -> None:
    def client(*args: str) -> subprocess.CompletedProcess[str]:
        return run("client", "--url", server.url, *args)

    out = client("add", "2", "40")
    assert (out.returncode, out.stdout.strip()) == (0, "42"), out
    out = client("add", str(2**63 - 1), "1")
    assert out.returncode == 1 and "overflows i64" in out.stderr, out
    out = client("divide", "1", "4")
    assert (out.returncode, out.stdout.strip()) == (0, "0.25"), out
    out = client("divide", "1", "0")
    assert out.returncode == 1 and "DivideByZero" in out.stderr, out
    out = client("sum", "1.5", "2")
    assert (out.returncode, out.stdout.strip()) == (0, "3.5"), out
    out = client("log", "hello from rust")
    assert out.returncode == 0, out
    call_id = out.stdout.split()[-1]
    calculator_py.wait_line(f"log [{call_id}]: hello from rust", 30)
    out = client()  # the tour: typed error, one-way, send then await
    assert out.returncode == 0, out
    assert "divide(1, 0) = DivideByZero (typed error)" in out.stdout, out.stdout
    assert "awaited later: 42" in out.stdout, out.stdout


class Rpc:
    """The ``rpc`` CLI against one Redis."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run("rpc", "--url", self.url, *args)

    def ok(self, *args: str) -> str:
        out = self(*args)
        assert out.returncode == 0, f"rpc {' '.join(args)}: {out.stderr}"
        return out.stdout.strip()

    def error(self, *args: str) -> dict[str, object]:
        """The ``error`` object of a call that failed (``--full``)."""
        out = self(*args, "--full")
        assert out.returncode == 1, f"rpc {' '.join(args)}: exit {out.returncode} {out.stdout}"
        body = json.loads(out.stdout)
        error = body["error"]
        assert isinstance(error, dict)
        return error


def test_rpc_call_against_the_python_workers(server: RedisServer, calculator_py: Process,
                                             chaos_py: Process) -> None:
    rpc = Rpc(server.url)
    # Answers, full responses, typed and untyped errors.
    assert json.loads(rpc.ok("call", "Calculator.add", '{"a": 1, "b": 2}')) == 3
    full = json.loads(rpc.ok("call", "Calculator.sum", '{"values": [{"value": 1.5}]}', "--full"))
    assert full["data"] == {"value": 1.5, "label": "sum"}
    assert full["response_key"] and full["id"]
    error = rpc.error("call", "Calculator.divide", '{"a": 1, "b": 0}')
    assert (error["kind"], error["data"]) == ("app", "DivideByZero"), error
    error = rpc.error("call", "Calculator.divide", '{"a": 1e308, "b": 1e-308}')
    assert (error["kind"], error["data"]) == ("app", {"Overflow": {"limit": 2**63 - 1}}), error
    error = rpc.error("call", "Calculator.add", '{"a": "one", "b": 2}')
    assert error["kind"] == "bad_request" and "Calculator.add" in str(error["message"]), error
    assert "a" in str(error["message"]), error
    error = rpc.error("call", "Calculator.add", '{"a": 9223372036854775807, "b": 1}')
    assert error["kind"] == "handler" and "overflows" in str(error["message"]), error
    error = rpc.error("call", "Chaos.square", '{"n": "x"}')
    assert error["kind"] == "handler", error

    # One-way (fire and forget) and kept results.
    call_id = rpc.ok("call", "Calculator.log", '{"line": "fire and forget"}', "--no-wait")
    calculator_py.wait_line(f"log [{call_id}]: fire and forget", 30)
    call_id = rpc.ok("call", "Calculator.add", '{"a": 20, "b": 22}', "--no-wait", "--keep", "5m")
    kept = wait_for(lambda: rpc("fetch", call_id).returncode == 0 and rpc.ok("fetch", call_id),
                    30, "the kept result")
    assert json.loads(kept) == 42

    # Deadlines: the handler sees the call's, and a caller gives up at its own.
    seen = json.loads(rpc.ok("call", "Chaos.context", "{}", "--timeout", "7s"))
    now_ms = time.time() * 1000
    assert now_ms < seen["deadline_ms"] <= now_ms + 7_000 + 1_000, seen
    # The caller's timer and the worker's cancellation fire at the same instant, so
    # either may speak first: the caller's own "no reply", or the worker's
    # deadline_exceeded reply. Both end the call at its deadline, not the handler's 60 s.
    sent = time.monotonic()
    out = rpc("call", "Chaos.sleep", '{"ms": 60000}', "--timeout", "1s")
    assert out.returncode == 1, out
    assert ("no reply within 1s" in out.stderr
            or "(deadline_exceeded): the deadline passed while the job was running" in out.stderr), out
    assert time.monotonic() - sent < 30, out

    # Delay: not run before it is due.
    sent = time.monotonic()
    rpc.ok("call", "Chaos.record", '{"ms": 0}', "--delay", "1s")
    assert time.monotonic() - sent >= 0.9

    # Idempotency: the same key twice runs once, both callers get the answer.
    for _ in range(2):
        assert json.loads(rpc.ok("call", "Chaos.square", '{"n": 12}', "--key", "sq-12")) == 144
    first = rpc.ok("call", "Chaos.record", '{"ms": 0}', "--key", "rec-1", "--full")
    again = rpc.ok("call", "Chaos.record", '{"ms": 0}', "--key", "rec-1", "--full")
    ran_id = json.loads(first)["id"]
    assert json.loads(again)["data"] is None
    assert chaos_py.count(lambda line: line.startswith(f"ran {ran_id} ")) == 1
    assert chaos_py.count(lambda line: line.startswith("ran ")) == 2  # the delayed one and this

    # Cancel: a scheduled call never runs; a running one is told to stop.
    doomed = rpc.ok("call", "Chaos.record", '{"ms": 0}', "--delay", "2s", "--no-wait")
    rpc.ok("cancel", doomed)
    rpc.ok("call", "Chaos.record", '{"ms": 0}', "--delay", "3s")  # due after the doomed one
    fetched = rpc("fetch", doomed)
    assert fetched.returncode == 1 and "cancel" in (fetched.stdout + fetched.stderr), fetched
    assert chaos_py.count(lambda line: line.startswith(f"ran {doomed} ")) == 0
    running = rpc.ok("call", "Chaos.sleep", '{"ms": 60000}', "--no-wait")
    chaos_py.wait_line(f"start {running} 1", 30)
    rpc.ok("cancel", running)

    def cancelled() -> bool:
        out = rpc("fetch", running)
        return out.returncode == 1 and "cancel" in out.stdout + out.stderr

    wait_for(cancelled, 30, "the running call answered cancelled")
    assert re.search(r"\d", rpc.ok("stats"))
