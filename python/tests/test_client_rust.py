"""The client against the Rust calculator worker (skipped when its binary is
not built): the real worker checks every message the client writes (v 2,
ranges, the intake, idempotency fingerprints, cancellation)."""

from __future__ import annotations

import subprocess
import time
from typing import Any, Iterator

import pytest
import redis

from rpc_runtime import CallError, CallOptions, Client, JobSpec
from support.tools import rust_bin
from test_client_support import RedisServer

ADD = JobSpec[int](service="Calculator", name="add")
DIVIDE = JobSpec[float](service="Calculator", name="divide", timeout_ms=2000)
LOG = JobSpec[None](service="Calculator", name="log", one_way=True)
SUM = JobSpec[Any](service="Calculator", name="sum")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    binary = str(rust_bin("worker"))
    server = RedisServer()
    proc = subprocess.Popen([binary, "--url", server.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield server.url
    finally:
        proc.kill()
        proc.wait()
        server.stop()


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client.connect(url, timeout=30) as c:
        yield c


def test_every_job_of_the_calculator(client: Client) -> None:
    assert client.call_job(ADD, {"a": 2, "b": 40}) == 42
    assert client.call_job(DIVIDE, {"a": 1.0, "b": 4.0}) == 0.25
    with pytest.raises(CallError) as app:
        client.call_job(DIVIDE, {"a": 1.0, "b": 0.0})
    assert app.value.kind == "app" and app.value.data == "DivideByZero"
    assert client.call_job(SUM, {"values": [{"value": 1.5}, {"value": 2, "label": "x"}]}) == {
        "value": 3.5, "label": "sum"}
    call_id = client.send_one_way(LOG, {"line": "from Python"})
    assert len(call_id) == 32
    with pytest.raises(CallError) as bad:
        client.call_job(ADD, {"a": "one", "b": 2})
    assert bad.value.kind == "bad_request"
    with pytest.raises(CallError) as unknown:
        client.call_and_wait("Calculator.nope", timeout=20)
    # Handed back for a worker that knows it, 32 times, then answered.
    assert unknown.value.kind in ("unknown_job", "dead_lettered"), unknown.value


def test_kept_delayed_and_fetched(client: Client) -> None:
    started = time.monotonic()
    response = client.call_and_wait("Calculator.add", {"a": 1, "b": 2}, options=CallOptions(delay=0.4))
    assert response.data == 3 and time.monotonic() - started >= 0.35
    assert client.fetch(response.id) == response


def test_idempotency_with_the_workers_fingerprints(client: Client) -> None:
    keyed = CallOptions(idempotency_key=f"py-{time.time_ns()}")
    first = client.call_and_wait("Calculator.add", {"a": 5, "b": 5}, options=keyed)
    # The same call spelled otherwise (key order) has the same fingerprint.
    second = client.call_and_wait("Calculator.add", {"b": 5, "a": 5}, options=keyed)
    assert first.data == second.data == 10 and second.id == first.id
    with pytest.raises(CallError) as conflict:
        client.call_and_wait("Calculator.add", {"a": 1, "b": 1}, options=keyed)
    assert conflict.value.kind == "idempotency_conflict"


def test_cancel_a_delayed_call_through_the_intake(url: str) -> None:
    with Client.connect(url + "?enqueue=intake", timeout=30) as client:
        pending = client.send_job(ADD, {"a": 1, "b": 1}, CallOptions(delay=5))
        # Once the worker put it on the schedule (either way it never runs).
        schedule = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while schedule.zscore("rpc:{Calculator}:schedule", pending.id) is None:
            assert time.monotonic() < deadline, "the delayed call never reached the schedule"
            time.sleep(0.02)
        pending.cancel()
        with pytest.raises(CallError) as cancelled:
            pending.result(timeout=10)
        assert cancelled.value.kind == "cancelled"
        assert client.call_job(ADD, {"a": 1, "b": 1}) == 2
