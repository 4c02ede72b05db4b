"""The Rust calculator client (build-examples/calculator) against a Python
worker serving Calculator untyped: every job, the typed error, one-way."""

from __future__ import annotations

import subprocess
from typing import Any

from rpc_runtime import AppError, Request, Worker

from conftest import RedisServer, rust_bin, wait_for


class MathError(AppError):
    def __init__(self, value: Any) -> None:
        super().__init__(str(value))
        self.value = value

    def error_json(self) -> Any:
        return self.value


def divide(req: Request) -> Any:
    a, b = req.data["a"], req.data["b"]
    if b == 0:
        raise MathError("DivideByZero")
    return a / b


async def add(req: Request) -> Any:
    return req.data["a"] + req.data["b"]


def test_the_rust_calculator_client_against_a_python_worker(server: RedisServer,
                                                             start_worker) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    w = (Worker(server.url)
         .handle("Calculator.add", add)
         .handle("Calculator.divide", divide)
         .handle("Calculator.log", lambda req: lines.append(req.data["line"]), one_way=True)
         .handle("Calculator.sum", lambda req: {
             "value": float(sum(v["value"] for v in req.data["values"])), "label": "total"}))
    start_worker(w)
    client = str(rust_bin("client"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([client, "--url", server.url, *args], capture_output=True,
                              text=True, timeout=60)

    out = run("add", "2", "40")
    assert out.returncode == 0 and "42" in out.stdout, out
    out = run("divide", "1", "4")
    assert out.returncode == 0 and "0.25" in out.stdout, out
    out = run("divide", "1", "0")
    assert "DivideByZero" in out.stdout + out.stderr, out
    out = run("log", "hello from rust")
    assert out.returncode == 0, out
    wait_for(lambda: lines == ["hello from rust"], 30, "the one-way job")
    out = run("sum", "1.5", "2")
    assert out.returncode == 0 and "3.5" in out.stdout, out
