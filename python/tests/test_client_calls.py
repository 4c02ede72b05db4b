"""The client against a private Redis and the fake worker of
test_client_support.py: answers and errors, kept results and fetch by id,
one-way and delayed sends, idempotency keys and holder answers, cancel,
pause, the intake, timeouts with their diagnosis, and the inbox's failures
(WRONGTYPE, a broken read)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any, Iterator

import pytest
import redis

from rpc_runtime import (
    AppError,
    AsyncClient,
    CallError,
    CallOptions,
    CallTimeout,
    Client,
    DecodeError,
    HolderResultRefused,
    InvalidCall,
    JobSpec,
)
from test_client_support import FakeWorker, RedisServer, fingerprint

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    s = RedisServer()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{next(_prefixes)}"


@pytest.fixture
def worker(server: RedisServer, prefix: str) -> Iterator[FakeWorker]:
    w = FakeWorker(server.port, prefix).start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def client(server: RedisServer, prefix: str) -> Iterator[Client]:
    with Client.connect(server.url, prefix=prefix, timeout=10) as c:
        yield c


def wait_until(check: Any, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


class MathError(AppError):
    def __init__(self, error: Any) -> None:
        self.error = error
        super().__init__(f"MathError: {error}")

    def error_json(self) -> Any:
        return self.error


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError("", "expected an integer")
    number: int = value
    return number


ADD = JobSpec[int](service="Calc", name="add", decode_result=_int)
APP = JobSpec[int](service="Calc", name="app", decode_result=_int, decode_error=MathError)


def test_calls_answer_and_fail_as_the_worker_says(client: Client, worker: FakeWorker) -> None:
    assert client.call_job(ADD, {"a": 1, "b": 2}) == 3
    with pytest.raises(MathError) as app:
        client.call_job(APP, {"error": {"Overflow": {"limit": 9}}})
    assert app.value.error == {"Overflow": {"limit": 9}}
    with pytest.raises(CallError) as failed:
        client.call_and_wait("Calc.fail")
    assert failed.value.kind == "handler" and "it broke" in str(failed.value)
    with pytest.raises(CallError) as untyped_app:
        client.call_and_wait("Calc.app")
    assert untyped_app.value.kind == "app" and untyped_app.value.data == "DivideByZero"
    with pytest.raises(CallError) as newer:
        client.call_and_wait("Calc.newkind")
    assert newer.value.kind == "unknown" and "brand_new_kind" in str(newer.value)
    with pytest.raises(DecodeError, match="neither"):
        client.call_and_wait("Calc.empty")
    with pytest.raises(CallError) as unknown:
        client.call_and_wait("Calc.nope")
    assert unknown.value.kind == "unknown_job"
    # A result of the wrong type names the job and the field.
    wrong = JobSpec[int](service="Calc", name="echo", decode_result=_int)
    with pytest.raises(DecodeError, match=r"Calc.echo: `ok`: expected an integer"):
        client.call_job(wrong, {})
    # `"ok": null` is an answer.
    assert client.call_and_wait("Calc.nothing").data is None


def test_unreadable_replies_are_ignored(client: Client, worker: FakeWorker) -> None:
    assert client.call_and_wait("Calc.garbage").data == "fine"


def test_the_message_carries_what_the_options_say(client: Client, worker: FakeWorker) -> None:
    echo = JobSpec[Any](service="Calc", name="echo")
    got = client.call_job(echo, {"x": "é"}, CallOptions(metadata={"traceparent": "00-x"}, max_attempts=5, timeout=4))
    m = got["message"]
    assert got["params"] == {"x": "é"} and got["meta"] == {"traceparent": "00-x"}
    assert m["v"] == 1 and m["max_attempts"] == 5 and m["timeout_ms"] == 4_000 and m["attempt"] == 1
    assert m["reply_to"] == client.inbox and "result_ttl_ms" not in m
    assert isinstance(m["sent_ms"], int)  # the clock was sampled at connect
    # A job's schema defaults, overridden by the call's options.
    schema = JobSpec[Any](service="Calc", name="echo", timeout_ms=2_500, max_attempts=9)
    m = client.call_job(schema, {})["message"]
    assert m["timeout_ms"] == 2_500 and m["max_attempts"] == 9


def test_kept_results_and_fetch_by_id(server: RedisServer, client: Client, worker: FakeWorker, prefix: str) -> None:
    response = client.call_and_wait("Calc.add", {"a": 2, "b": 3})
    assert response.data == 5 and response.response_key == f"{prefix}:result:{{{response.id}}}"
    again = client.fetch(response.id)
    assert again == response
    ttl = server.client().pttl(response.response_key)
    assert 250_000 < ttl <= 300_000
    # The old library's call(): returns the id at once, the result is kept.
    call_id = client.call("Calc.add", {"a": 4, "b": 4})
    wait_until(lambda: client.fetch(call_id) is not None, "the kept result")
    fetched = client.fetch(call_id)
    assert fetched is not None and fetched.data == 8 and fetched.id == call_id
    assert "reply_to" not in worker.seen[-1]
    # send_job: a handle, kept by default.
    pending = client.send_job(ADD, {"a": 1, "b": 1})
    assert pending.result() == 2 and pending.result() == 2
    assert client.fetch(pending.id) is not None
    # Errors kept are raised by fetch; nothing kept is None.
    failed = client.call("Calc.fail")
    wait_until(lambda: server.client().exists(f"{prefix}:result:{{{failed}}}"), "the kept failure")
    with pytest.raises(CallError, match="it broke"):
        client.fetch(failed)
    assert client.fetch("never-sent") is None
    # Re-attaching by id from another client.
    with Client.connect(server.url, prefix=prefix) as other:
        assert other.attach(pending.id, ADD, timeout=5).result() == 2


def test_one_way_sends_have_no_reply_to(client: Client, worker: FakeWorker) -> None:
    spec = JobSpec[None](service="Calc", name="nothing", one_way=True)
    call_id = client.send_one_way(spec, {})
    wait_until(lambda: any(m["id"] == call_id for m in worker.seen), "the one-way job")
    m = next(m for m in worker.seen if m["id"] == call_id)
    assert "reply_to" not in m and "result_ttl_ms" not in m


def test_delayed_calls(client: Client, worker: FakeWorker) -> None:
    started = time.monotonic()
    assert client.call_job(ADD, {"a": 1, "b": 1}, CallOptions(delay=0.5, timeout=5)) == 2
    assert time.monotonic() - started >= 0.45
    m = worker.seen[-1]
    assert m["v"] == 2 and m["run_at_ms"] - m["sent_ms"] == 500
    at = time.time() + 0.3
    assert client.call_job(ADD, {"a": 2, "b": 2}, CallOptions(run_at=at)) == 4
    assert worker.seen[-1]["run_at_ms"] == round(at * 1000)


def test_idempotent_calls_run_once_and_duplicates_follow_the_holder(
    server: RedisServer, client: Client, worker: FakeWorker, prefix: str
) -> None:
    keyed = CallOptions(idempotency_key="order-42")
    first = client.call_and_wait("Calc.add", {"a": 20, "b": 22}, options=keyed)
    second = client.call_and_wait("Calc.add", {"a": 20, "b": 22}, options=keyed)
    assert first.data == second.data == 42
    assert second.id == first.id  # answered by the holder's kept result
    assert worker.ran.count(first.id) == 1 and len([m for m in worker.seen if m.get("idempotency_key")]) == 2
    m = worker.seen[-1]
    assert m["v"] == 2 and m["result_ttl_ms"] == 3_600_000 and "idempotency_ttl_ms" not in m
    # Other parameters under the same key: a conflict.
    with pytest.raises(CallError) as conflict:
        client.call_and_wait("Calc.add", {"a": 1, "b": 1}, options=keyed)
    assert conflict.value.kind == "idempotency_conflict" and conflict.value.data == {"key": "order-42"}
    # A typed duplicate follows too, and fetch by the duplicate's id as well.
    pending = client.send_job(ADD, {"a": 20, "b": 22}, keyed)
    assert pending.result() == 42
    dup = client.fetch(pending.id)
    assert dup is not None and dup.data == 42 and dup.id == first.id


def test_a_forged_holder_result_is_refused(
    server: RedisServer, client: Client, worker: FakeWorker, prefix: str
) -> None:
    r = server.client()
    # Someone holds the key under an id whose kept result answers other parameters.
    fp = fingerprint("Calc.add", {"a": 1, "b": 2})
    r.set(f"{prefix}:{{Calc}}:once:k1", f"victim {fp}")
    r.set(f"{prefix}:result:{{victim}}", json.dumps({"v": 1, "id": "victim", "fingerprint": "0" * 64, "ok": 152399025}))
    with pytest.raises(HolderResultRefused) as refused:
        client.call_job(ADD, {"a": 1, "b": 2}, CallOptions(idempotency_key="k1", timeout=3))
    assert "152399025" not in str(refused.value)
    # The genuine kept result is taken.
    r.set(f"{prefix}:result:{{victim}}", json.dumps({"v": 1, "id": "victim", "fingerprint": fp, "ok": 3}))
    assert client.call_job(ADD, {"a": 1, "b": 2}, CallOptions(idempotency_key="k1", timeout=3)) == 3


def test_cancel_through_the_intake(server: RedisServer, client: Client, worker: FakeWorker, prefix: str) -> None:
    # A delayed call, cancelled before it is due: the worker answers `cancelled`.
    pending = client.send_job(ADD, {"a": 1, "b": 1}, CallOptions(delay=1.0, timeout=10))
    pending.cancel()
    wait_until(lambda: server.client().zscore(f"{prefix}:{{Calc}}:cancelled", pending.id) is not None,
               "the cancellation to be applied by the mover")
    with pytest.raises(CallError) as cancelled_early:
        pending.result()
    assert cancelled_early.value.kind == "cancelled" and pending.id not in worker.ran
    with pytest.raises(InvalidCall):
        client.cancel("x" * 300, "Calc")
    with pytest.raises(InvalidCall):
        client.cancel("c1", "Cal{c}")
    # A queued call cancelled before a worker takes it, sent through the intake.
    with Client.connect(server.url + "?enqueue=intake", prefix=prefix, timeout=10) as via:
        worker.stop()
        later = via.send_job(ADD, {"a": 2, "b": 2})
        via.cancel(later.id, "Calc")
        w2 = FakeWorker(server.port, prefix).start()
        try:
            with pytest.raises(CallError) as cancelled:
                later.result()
            assert cancelled.value.kind == "cancelled"
        finally:
            w2.stop()
    assert r_intake_empty(server, prefix)


def r_intake_empty(server: RedisServer, prefix: str) -> bool:
    return bool(server.client().llen(f"{prefix}:{{Calc}}:intake") == 0)


def test_pause_and_resume(server: RedisServer, client: Client, prefix: str) -> None:
    assert client.pause("Calc") is True
    assert client.pause("Calc") is False and client.is_paused("Calc")
    assert server.client().exists(f"{prefix}:{{Calc}}:paused")
    assert client.resume("Calc") is True and client.resume("Calc") is False


def test_a_timeout_says_why(server: RedisServer, client: Client, prefix: str) -> None:
    started = time.monotonic()
    with pytest.raises(CallTimeout) as timed_out:
        client.call_job(ADD, {"a": 1, "b": 1}, CallOptions(timeout=0.3))
    waited = time.monotonic() - started
    assert 0.3 <= waited < 5
    assert timed_out.value.diagnosis is not None and "no live worker" in timed_out.value.diagnosis
    assert isinstance(timed_out.value, TimeoutError)
    client.pause("Calc")
    with pytest.raises(CallTimeout) as paused:
        client.call_job(ADD, {"a": 1, "b": 1}, CallOptions(timeout=0.2))
    assert paused.value.diagnosis is not None and "paused" in paused.value.diagnosis
    client.resume("Calc")
    # A live worker that is just slow.
    r = server.client()
    now = int(time.time() * 1000)
    beat = {"v": 1, "id": "w1", "services": ["Calc"], "beat_ms": now, "ttl_ms": 30_000, "state": "running"}
    r.set(f"{prefix}:worker:{{w1}}", json.dumps(beat))
    r.zadd(f"{prefix}:{{Calc}}:workers", {"w1": now})
    with pytest.raises(CallTimeout) as busy:
        client.call_job(ADD, {"a": 1, "b": 1}, CallOptions(timeout=0.2))
    assert busy.value.diagnosis is not None and "1 live worker" in busy.value.diagnosis


def test_a_short_wait_leaves_the_call_pending(client: Client, worker: FakeWorker) -> None:
    pending = client.send_job(JobSpec[str](service="Calc", name="slow"), {"ms": 600})
    with pytest.raises(CallTimeout, match="still pending"):
        pending.result(timeout=0.05)
    assert pending.result() == "slow"


def test_no_permission_to_xadd_turns_to_the_intake(server: RedisServer, worker: FakeWorker, prefix: str) -> None:
    r = server.client()
    r.execute_command(
        "ACL", "SETUSER", f"cl-{prefix}", "on", ">pw", "resetkeys", "-@all", "+ping", "+time", "+get", "+exists",
        "+rpush", "+blpop", "+blmpop", "+xadd", f"~{prefix}:{{*}}:intake", f"~{prefix}:inbox:*", f"~{prefix}:result:*",
        f"~{prefix}:{{*}}:paused",
    )
    url = f"redis://cl-{prefix}:pw@127.0.0.1:{server.port}/"
    with Client.connect(url, prefix=prefix, timeout=10) as restricted:
        assert restricted.call_job(ADD, {"a": 1, "b": 2}) == 3
        assert restricted.async_client.via_intake
        assert restricted.call_job(ADD, {"a": 2, "b": 2}) == 4
    with Client.connect(url + "?enqueue=stream", prefix=prefix, timeout=10) as stubborn:
        with pytest.raises(redis.exceptions.NoPermissionError):
            stubborn.call_job(ADD, {"a": 1, "b": 2})


def test_an_overwritten_inbox_moves_to_a_fresh_one(server: RedisServer, client: Client, worker: FakeWorker) -> None:
    old = client.inbox
    server.client().set(old, "clobbered")
    # The call in flight named the old inbox: its reply cannot arrive, but
    # its result is kept, so it is answered through it.
    assert client.call_and_wait("Calc.add", {"a": 1, "b": 2}).data == 3
    assert client.inbox != old
    assert client.call_job(ADD, {"a": 5, "b": 5}) == 10


def test_a_broken_read_falls_back_to_the_kept_result(
    server: RedisServer, client: Client, worker: FakeWorker, prefix: str
) -> None:
    r = server.client()
    pending = client.send_job(JobSpec[str](service="Calc", name="lost"), {})
    # Kill the reader's connection while it blocks, then let the worker keep
    # the result without pushing a reply (as if the reply was popped and lost).
    def reader_blocked() -> bool:
        return any(c.get("cmd") in ("blmpop", "blpop") for c in r.client_list())

    wait_until(reader_blocked, "the reader to block")
    for c in r.client_list():
        if c.get("cmd") in ("blmpop", "blpop"):
            r.client_kill_filter(_id=c["id"])
    r.set(f"{prefix}:test:release", 1)
    assert pending.result() == "kept"


def test_the_async_client(server: RedisServer, worker: FakeWorker, prefix: str) -> None:
    async def main() -> None:
        async with AsyncClient.connect(server.url, prefix=prefix, timeout=10) as client:
            assert await client.call_job(ADD, {"a": 1, "b": 2}) == 3
            results = await asyncio.gather(*(client.call_job(ADD, {"a": i, "b": i}) for i in range(50)))
            assert results == [2 * i for i in range(50)]
            pending = await client.send_job(ADD, {"a": 3, "b": 4})
            assert await pending.result() == 7
            response = await client.call_and_wait("Calc.add", {"a": 1, "b": 1})
            assert response.data == 2 and (await client.fetch(response.id)) == response
        client2 = await AsyncClient.connect(server.url, prefix=prefix)
        try:
            assert await client2.call_job(ADD, {"a": 0, "b": 0}) == 0
        finally:
            await client2.close()

    asyncio.run(main())


def test_bad_arguments_are_refused_at_connect(server: RedisServer) -> None:
    bad: list[dict[str, Any]] = [{"prefix": ""}, {"prefix": "a{b"}, {"timeout": 0}, {"result_ttl": -1},
                   {"client_id_prefix": "no spaces"}, {"enqueue": "maybe"}, {"max_connections": 0}]
    for kwargs in bad:
        with pytest.raises(ValueError):
            Client.connect(server.url, **kwargs)
    with pytest.raises(ValueError, match="in-process"):
        Client.connect("memory://x")
    with pytest.raises(redis.exceptions.ConnectionError):
        Client.connect(f"redis://127.0.0.1:{server.port + 1 if server.port < 65535 else 1}/")


def test_client_id_prefix_names_inbox_and_calls(server: RedisServer, worker: FakeWorker, prefix: str) -> None:
    with Client.connect(server.url, prefix=prefix, client_id_prefix="tenant") as client:
        assert client.client_id.startswith("tenant-") and client.inbox == f"{prefix}:inbox:{{{client.client_id}}}"
        response = client.call_and_wait("Calc.add", {"a": 1, "b": 2})
        assert response.id.startswith("tenant-")


def test_closing_ends_the_calls_still_waiting(server: RedisServer, worker: FakeWorker, prefix: str) -> None:
    async def main() -> None:
        client = await AsyncClient.connect(server.url, prefix=prefix, timeout=10)
        pending = await client.send_job(JobSpec[str](service="Calc", name="slow"), {"ms": 2000})
        waiting = asyncio.ensure_future(pending.result())
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(CallError) as closed:
            await waiting
        assert closed.value.kind == "closed"
        with pytest.raises(RuntimeError, match="closed"):
            await client.call_job(ADD, {"a": 1, "b": 1})

    asyncio.run(main())
