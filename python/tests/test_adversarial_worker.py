"""Hostile job messages against a Python worker, and handlers that return
or raise what JSON cannot carry: each is answered or dead-lettered with a
clear reason at once, never left leased to come back after the
visibility timeout, and the worker goes on serving.

Before the fixes these left the job leased (an exception while writing the
reply), redelivered until "delivered 4 times ... workers died or stalled",
and the caller waited out its deadline; a retry of ``1e400`` queued
``Infinity`` onto the stream, which the next worker refused."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from rpc_runtime import Retry, Worker

from conftest import RedisServer, wait_for

JOBS = "rpc:{Adv}:jobs"
DEAD = "rpc:{Adv}:dead"
FAILURES = "rpc:{Adv}:failures"
INBOX = "rpc:inbox:{adv}"


def message(call_id: str, job: str, params: str, extra: str = "") -> str:
    return (f'{{"v":1,"id":"{call_id}","job":"{job}","params":{params},'
            f'"reply_to":"{INBOX}"{extra}}}')


def reply_of(server: RedisServer, call_id: str) -> dict[str, Any]:
    popped = server.r.blpop([INBOX], 30)
    assert popped is not None, f"no reply to {call_id}"
    got: dict[str, Any] = json.loads(popped[1])
    assert got["id"] == call_id, got
    return got


def nothing_leased(server: RedisServer) -> None:
    wait_for(lambda: server.r.xpending(JOBS, "workers")["pending"] == 0, 30, "nothing leased")


def still_serving(server: RedisServer, tag: str) -> None:
    server.r.xadd(JOBS, {"m": message(f"ok-{tag}", "Adv.echo", '"hi"')})
    assert reply_of(server, f"ok-{tag}")["ok"] == "hi"


@pytest.fixture
def adv(server: RedisServer, start_worker):  # type: ignore[no-untyped-def]
    def returns(req):  # type: ignore[no-untyped-def]
        kind = req.data
        if kind == "nan":
            return math.nan
        if kind == "surrogate":
            return "a\ud800b"
        if kind == "deep":
            deep: list[Any] = []
            for _ in range(5000):
                deep = [deep]
            return deep
        if kind == "raise-surrogate":
            raise ValueError("bad \udcff text")
        if kind == "retry-surrogate":
            raise Retry("again \ud800", after=0.01)
        return kind

    worker = Worker(server.url, max_attempts=2).handle("Adv.echo", lambda r: r.data)
    worker.handle("Adv.returns", returns)
    start_worker(worker)


# params a Python worker cannot carry back out as JSON: each refused as
# unreadable (serde_json's words), answered bad_request since the id and
# inbox can be read.
PARAMS = [
    ("overflow", '{"x":1e400}', "number out of range"),
    ("neg-overflow", '[-1e400]', "number out of range"),
    ("surrogate", '{"x":"\\ud800"}', "lone leading surrogate"),
    ("surrogate-key", '{"\\udc00":1}', "lone leading surrogate"),
    ("deep", "[" * 200 + "]" * 200, "recursion limit exceeded"),
    ("deep-idem", "[" * 979 + "]" * 979, "recursion limit exceeded"),
    ("very-deep", "[" * 100_000 + "]" * 100_000, "recursion limit exceeded"),
]


@pytest.mark.parametrize("call_id,params,reason", PARAMS, ids=[p[0] for p in PARAMS])
def test_params_no_json_writer_can_carry_are_refused(server: RedisServer, adv: None,
                                                     call_id: str, params: str,
                                                     reason: str) -> None:
    extra = ',"idempotency_key":"k"' if call_id == "deep-idem" else ""
    server.r.xadd(JOBS, {"m": message(call_id, "Adv.echo", params, extra)})
    if call_id == "very-deep":
        # Too deep for Python's parser to finish: no id can be read, so
        # only the dead letter says why (as for any unreadable text).
        wait_for(lambda: server.r.xlen(DEAD) == 1, 30, "the dead letter")
    else:
        got = reply_of(server, call_id)
        assert got["error"]["kind"] == "bad_request", got
        assert reason in got["error"]["message"]
    [(_, letter)] = server.r.xrange(DEAD)
    assert reason in letter[b"reason"].decode()
    nothing_leased(server)
    still_serving(server, call_id)


def test_the_deepest_accepted_params_round_trip(server: RedisServer, adv: None) -> None:
    params = "[" * 127 + "]" * 127
    server.r.xadd(JOBS, {"m": message("deep-ok", "Adv.echo", params,
                                      ',"idempotency_key":"deep-ok"')})
    got = reply_of(server, "deep-ok")
    assert json.dumps(got["ok"], separators=(",", ":")) == params
    nothing_leased(server)


def test_a_valid_surrogate_pair_is_text(server: RedisServer, adv: None) -> None:
    server.r.xadd(JOBS, {"m": message("pair", "Adv.echo", '"\\ud83d\\ude00"')})
    assert reply_of(server, "pair")["ok"] == "\U0001f600"


RESULTS = [
    ("nan", "the handler's result does not encode: ValueError"),
    ("surrogate", "the handler's result does not encode: UnicodeEncodeError"),
    ("deep", "the handler's result does not encode: RecursionError"),
    ("raise-surrogate", "ValueError: bad ? text"),
]


@pytest.mark.parametrize("kind,text", RESULTS, ids=[r[0] for r in RESULTS])
def test_a_result_or_error_json_cannot_carry_is_a_handler_error(server: RedisServer, adv: None,
                                                               kind: str, text: str) -> None:
    server.r.xadd(JOBS, {"m": message(kind, "Adv.returns", json.dumps(kind))})
    got = reply_of(server, kind)
    assert got["error"]["kind"] == "handler", got
    assert text in got["error"]["message"], got
    nothing_leased(server)
    assert server.r.xlen(DEAD) == 0
    wait_for(lambda: server.r.xlen(FAILURES) == 1, 30, "the failure recorded")
    still_serving(server, kind)


def test_a_retry_whose_reason_json_cannot_carry_is_dead_lettered(server: RedisServer,
                                                                adv: None) -> None:
    server.r.xadd(JOBS, {"m": message("retry", "Adv.returns", '"retry-surrogate"')})
    got = reply_of(server, "retry")
    assert got["error"]["kind"] == "dead_lettered", got
    assert "failed on attempt 2 of 2: again ?" in got["error"]["message"]
    nothing_leased(server)
    [(_, letter)] = server.r.xrange(DEAD)
    assert b"again ?" in letter[b"reason"]
    still_serving(server, "retry")


def test_a_jobs_key_of_another_type_leaves_only_its_service_unserved(server: RedisServer,
                                                                      start_worker) -> None:  # type: ignore[no-untyped-def]
    """Someone wrote a string over one service's jobs stream: the worker
    still starts and serves its other services, and serves the broken one
    once its key is a stream again."""
    server.r.set("rpc:{Broken}:jobs", "not a stream")
    worker = Worker(server.url).handle("Adv.echo", lambda r: r.data)
    worker.handle("Broken.echo", lambda r: r.data)
    start_worker(worker)
    still_serving(server, "beside-broken")
    server.r.delete("rpc:{Broken}:jobs")
    inbox = "rpc:inbox:{broken-fixed}"
    msg = {"v": 1, "id": "fixed", "job": "Broken.echo", "params": {"ok": 1}, "reply_to": inbox}
    # The worker recreates the group (MKSTREAM) within a second or so; the
    # message may land before or after: the group starts at 0 either way.
    wait_for(lambda: server.r.exists("rpc:{Broken}:jobs"), 30, "the group made again")
    server.r.xadd("rpc:{Broken}:jobs", {"m": json.dumps(msg)})
    popped = server.r.blpop([inbox], 30)
    assert popped is not None, "the repaired service is not served"
    assert json.loads(popped[1])["ok"] == {"ok": 1}
