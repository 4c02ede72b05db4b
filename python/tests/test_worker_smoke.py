"""The worker end to end against the Rust `rpc` CLI: a call answered."""

from __future__ import annotations

import json
import subprocess

from rpc_runtime import Request, Worker

from conftest import RedisServer, rust_bin


def test_rpc_cli_calls_a_python_worker(server: RedisServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    w = Worker(server.url, concurrency=4).handle(
        "Calculator.add", lambda req: req.data["a"] + req.data["b"]
    )
    start_worker(w)
    out = subprocess.run(
        [str(rust_bin("rpc")), "--url", server.url, "call", "Calculator.add", '{"a":1,"b":2}'],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == 3
