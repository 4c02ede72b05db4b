"""The fingerprint matches the Rust one byte for byte: the vectors of
rpc-protocol/src/fingerprint.rs's tests, and a keyed call answered by the
Rust calculator worker, whose reply carries the fingerprint Rust computed."""

from __future__ import annotations

import json
import subprocess

import pytest

from rpc_runtime.fingerprint import canonical, fingerprint

from conftest import RedisServer, rust_bin, wait_for


def canon(text: str) -> str:
    return canonical(json.loads(text))


def test_key_order_white_space_and_number_spelling_do_not_change_the_fingerprint() -> None:
    a = fingerprint("S.j", '{"b": [1, 2.0, 1e0], "a": {"y": -0, "x": "é"}}')
    b = fingerprint("S.j", '{"a":{"x":"\\u00e9","y":0},"b":[1,2,1]}')
    assert a == b
    assert a != fingerprint("S.k", '{"a":{"x":"é","y":0},"b":[1,2,1]}')
    assert a is not None and len(a) == 64


def test_large_integers_are_exact_where_a_double_would_merge_them() -> None:
    assert fingerprint("S.j", '{"id": 9007199254740993}') != fingerprint(
        "S.j", '{"id": 9007199254740992}'
    )
    assert canon("18446744073709551615") == "18446744073709551615"
    assert canon("-9223372036854775808") == "-9223372036854775808"


def test_a_number_is_the_nearest_double_as_every_language_reads_it() -> None:
    assert canon("9007199254740993.0") == "9007199254740992"
    assert fingerprint("S.j", '{"id": 9007199254740993.0}') != fingerprint(
        "S.j", '{"id": 9007199254740994}'
    )


def test_the_canonical_form_follows_rfc_8785() -> None:
    assert canon("1e30") == "1e+30"
    assert canon("4.50") == "4.5"
    assert canon("2e-3") == "0.002"
    assert canon("0.000001") == "0.000001"
    assert canon("1e-7") == "1e-7"
    assert (
        canon('{"\\u20ac":1,"\\r":2,"\\ud83d\\ude00":3,"1":4,"\\u0080":5,"\\u00f6":6,"\\ufb33":7}')
        == '{"\\r":2,"1":4,"\u0080":5,"ö":6,"€":1,"😀":3,"\ufb33":7}'
    )
    assert canon('"\\u001f\\b/"') == '"\\u001f\\b/"'
    assert fingerprint("S.j", "not json") is None
    assert fingerprint("S.j", "NaN") is None


def test_protocol_md_example() -> None:
    text = '{"b": [1.0, 2e0], "a": {"y": -0, "x": "é"}, "big": 9007199254740993}'
    assert canon(text) == '{"a":{"x":"é","y":0},"b":[1,2],"big":9007199254740993}'


# Parameters whose spelling differs from their canonical form in every way
# the rules name; the Rust worker fingerprints them itself.
CROSS = [
    '{"a": 1, "b": 2}',
    '{"b": 2.0, "a": 1e0}',
    '{"a": 9007199254740993, "b": -0}',
    '{"b": 1e30, "a": 0.1}',
    '{"a": 18446744073709551615, "b": 1e-7}',
    '{"a": 123.456e5, "b": 5e-324, "z": "\\u00e9\\u001f\\n\\"", "\\u20ac": [true, null]}',
]


@pytest.mark.parametrize("params", CROSS)
def test_the_rust_worker_computes_the_same_fingerprint(server: RedisServer, params: str) -> None:
    worker = subprocess.Popen(
        [str(rust_bin("worker")), "--url", server.url, "--concurrency", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # A keyed call of a job the Rust worker knows; its reply (kept, as
        # every keyed call's is) carries the fingerprint Rust computed.
        msg = {
            "v": 2, "id": "fp-1", "job": "Calculator.add", "params": "@P@",
            "result_ttl_ms": 60000, "idempotency_key": "fp-key",
        }
        text = json.dumps(msg).replace('"@P@"', params)
        server.r.xadd("rpc:{Calculator}:jobs", {"m": text})
        kept = wait_for(lambda: server.r.get("rpc:result:{fp-1}"), 60, "the kept result")
        reply = json.loads(kept)
        assert reply["fingerprint"] == fingerprint("Calculator.add", params), reply
    finally:
        worker.kill()
        worker.wait()
