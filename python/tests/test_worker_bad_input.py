"""Garbage on the stream is dead-lettered with the reason the Rust worker
gives (rpc-protocol/src/job.rs, rpc-runtime/src/worker/job.rs; the cases of
rpc-runtime/tests/strict_messages.rs and job.rs's range tests), answered
``bad_request`` when its id and a valid inbox can be read, and the worker
keeps serving."""

from __future__ import annotations

import json
import os

import pytest

from rpc_runtime import Worker

from conftest import RedisServer, wait_for

JOBS = "rpc:{Strict}:jobs"
DEAD = "rpc:{Strict}:dead"
INBOX = "rpc:inbox:{strict-range}"


def dead_letters(server: RedisServer, n: int) -> list[dict[bytes, bytes]]:
    got = wait_for(lambda: (lambda d: d if len(d) >= n else None)(server.r.xrange(DEAD)), 30,
                   f"{n} dead letters")
    return [fields for _, fields in got]


def still_serving(server: RedisServer, tag: str) -> None:
    inbox = f"rpc:inbox:{{serving-{tag}}}"
    msg = {"v": 1, "id": f"ok-{tag}", "job": "Strict.run", "params": {}, "reply_to": inbox}
    server.r.xadd(JOBS, {"m": json.dumps(msg)})
    popped = server.r.blpop([inbox], 30)
    assert popped is not None
    assert json.loads(popped[1]) == {"v": 1, "id": f"ok-{tag}", "ok": "ran"}


def with_field(field: str, call_id: str = "1", inbox: str | None = None) -> str:
    reply = f',"reply_to":"{inbox}"' if inbox else ""
    return f'{{"v":1,"id":"{call_id}","job":"Strict.run","params":{{}}{reply},{field}}}'


@pytest.fixture
def strict(server: RedisServer, start_worker):  # type: ignore[no-untyped-def]
    runs: list[str] = []

    def run(req):  # type: ignore[no-untyped-def]
        runs.append(req.id)
        return "ran"

    start_worker(Worker(server.url, max_message_bytes=4096).handle("Strict.run", run))
    return runs


# (message, what the reason must say): each is refused before it runs.
CASES = [
    ('[1,"arr-1","Strict.run",{},"rpc:inbox:{x}"]',
     "unreadable job message: a job message is a JSON object (arrays and other values are refused)"),
    ("", "unreadable job message: a job message is a JSON object"),
    ("not json", "unreadable job message: a job message is a JSON object"),
    ('{"v":1,"id":"x","job":"Strict.run"', "unreadable job message: "),
    (with_field('"result_ttl_ms":18446744073709551615'),
     "`result_ttl_ms` 18446744073709551615 is over the limit of 31622400000 (366 days)"),
    (with_field('"attempt":0'), "`attempt` 0 is outside 1..=1000"),
    (with_field('"attempt":4294967295'), "`attempt` 4294967295 is outside 1..=1000"),
    (with_field('"max_attempts":0'), "`max_attempts` 0 is outside 1..=1000"),
    (with_field('"max_attempts":100000'), "`max_attempts` 100000 is outside 1..=1000"),
    (with_field('"deadline_ms":18446744073709551615'),
     "`deadline_ms` 18446744073709551615 is past the year 9999"),
    (with_field('"timeout_ms":18446744073709551615'),
     "`timeout_ms` 18446744073709551615 is over the limit of 31622400000 (366 days)"),
    (with_field('"attempt":-1'), "unreadable job message: invalid value: integer `-1`, expected u32"),
    (with_field('"run_at_ms":253402300800000'), "`run_at_ms` 253402300800000 is past the year 9999"),
    (with_field('"sent_ms":1e300'), "unreadable job message: invalid type: floating point"),
    (with_field('"idempotency_key":""'),
     "`idempotency_key` must be 1 to 200 bytes without control characters or braces (0 bytes given)"),
    (with_field('"idempotency_key":"a\\u0000b"'), "`idempotency_key` must be 1 to 200 bytes"),
    (with_field('"idempotency_key":"x}:intake"'), "`idempotency_key` must be 1 to 200 bytes"),
    (with_field('"idempotency_ttl_ms":0'),
     "`idempotency_ttl_ms` 0 is outside 1..=31622400000 (366 days)"),
    (with_field('"handoffs":33'), "`handoffs` 33 is over 32"),
    (with_field('"attempt":"1"'), 'unreadable job message: invalid type: string "1", expected u32'),
    (with_field('"attempt":1.0'), "unreadable job message: invalid type: floating point `1.0`"),
    (with_field('"meta":{"a":1}'), "unreadable job message: invalid type: integer `1`, expected a string"),
    ('{"v":1,"id":"1","job":"Strict.run"}', "unreadable job message: missing field `params`"),
    ('{"v":1,"id":"1","id":"2","job":"Strict.run","params":{}}',
     "unreadable job message: duplicate field `id`"),
    ('{"v":1,"id":"' + "x" * 257 + '","job":"Strict.run","params":{}}',
     "`id` must be 1 to 256 bytes"),
    ('{"v":1,"id":"1","job":"Strict.run","params":{},"reply_to":"rpc:{Strict}:jobs"}',
     '`reply_to` "rpc:{Strict}:jobs" is not a client inbox of this worker\'s prefix '
     "(rpc:inbox:{<client id>}); nothing was run or written"),
    ('{"v":1,"id":"1","job":"Strict.run","params":{},"reply_to":"other:inbox:{x}"}',
     "is not a client inbox of this worker's prefix"),
    ('{"v":1,"id":"1","job":"Strict.run","params":{},"reply_to":""}',
     "is not a client inbox of this worker's prefix"),
    ('{"v":3,"id":"1","job":"Strict.run","params":{}}',
     "protocol version 3 is not spoken here (this worker speaks 1 to 2)"),
    ('{"v":1,"id":"1","job":"Strict.run","params":{},"pad":"' + "x" * 5000 + '"}',
     "oversized job message: 5056 bytes, over the worker's limit of 4096 bytes"),
]


@pytest.mark.parametrize("message,reason", CASES, ids=[str(i) for i in range(len(CASES))])
def test_garbage_is_dead_lettered_with_the_reason(server: RedisServer, strict: list[str],
                                                  message: str, reason: str) -> None:
    server.r.xadd(JOBS, {"m": message})
    [letter] = dead_letters(server, 1)
    assert letter[b"m"] == message.encode()
    assert reason in letter[b"reason"].decode(), letter[b"reason"]
    still_serving(server, "after")
    assert strict == ["ok-after"]
    assert server.r.xlen(JOBS) == 0
    assert server.r.xpending(JOBS, "workers")["pending"] == 0
    assert server.r.exists("rpc:inbox:{x}") == 0


def test_raw_bytes_and_an_entry_without_m_are_dead_lettered(server: RedisServer,
                                                            strict: list[str]) -> None:
    server.r.xadd(JOBS, {"m": os.urandom(64) + b"\xff"})
    server.r.xadd(JOBS, {"x": "no m"})
    server.r.xadd(JOBS, {"m": b'{"v":1,"id":"\xff","job":"Strict.run","params":{}}'})
    letters = dead_letters(server, 3)
    assert all(b"unreadable job message" in d[b"reason"] for d in letters), letters
    # Taken concurrently: dead letters come in any order.
    assert sorted(d[b"m"] for d in letters)[0] == b"", "the entry without m keeps an empty m"
    assert sum(1 for d in letters if d[b"m"] == b"") == 1
    still_serving(server, "bytes")


def test_out_of_range_numbers_are_answered_bad_request_once(server: RedisServer,
                                                           strict: list[str]) -> None:
    cases = [("huge-ttl", '"result_ttl_ms":18446744073709551615', "result_ttl_ms"),
             ("attempt-zero", '"attempt":0', "attempt"),
             ("v-three", '"x":1', "protocol version")]
    for call_id, field, _ in cases:
        text = with_field(field, call_id, INBOX)
        if call_id == "v-three":
            text = text.replace('"v":1', '"v":3')
        server.r.xadd(JOBS, {"m": text})
    letters = dead_letters(server, len(cases))
    replies = [json.loads(server.r.blpop([INBOX], 30)[1]) for _ in cases]  # type: ignore[index]
    for call_id, _, named in cases:
        letter = next(d for d in letters if call_id.encode() in d[b"m"])
        assert named in letter[b"reason"].decode()
        reply = next(r for r in replies if r["id"] == call_id)
        assert reply["error"]["kind"] == "bad_request"
        assert named in reply["error"]["message"]
        assert server.r.exists(f"rpc:result:{{{call_id}}}") == 0
    still_serving(server, "range")
    assert strict == ["ok-range"]
    assert server.r.xlen(DEAD) == len(cases)
    assert server.r.llen(INBOX) == 0
