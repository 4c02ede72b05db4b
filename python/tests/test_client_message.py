"""The client's pure parts, without Redis: job messages (fields, ranges,
v 2, ids, refusals before sending), strict reply reading and the holder
checks, and connection URLs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from rpc_runtime import CallError, CallOptions, DecodeError, EncodeError, InvalidCall, InvalidUrl
from rpc_runtime import message as messages
from rpc_runtime import reply as replies
from rpc_runtime import url as urls
from rpc_runtime.redis_clock import RedisClock, local_ms


def build(options: CallOptions | None = None, *, params: Any = None, reply_to: str | None = "rpc:inbox:{c1}",
          result_ttl_ms: int = 0, max_attempts: int | None = None, clock: RedisClock | None = None) -> dict[str, Any]:
    options = options or CallOptions()
    out = messages.build(
        job="Calc.add",
        params={"a": 1, "b": 2} if params is None else params,
        call_id="abc",
        reply_to=reply_to,
        options=options,
        timeout_ms=messages.timeout_ms(options, None, 30.0),
        result_ttl_ms=result_ttl_ms,
        clock=clock or RedisClock(),
        max_attempts=max_attempts,
    )
    assert out.id == "abc" and out.service == "Calc"
    text = out.body.decode()
    # The mover reads the id from the element's start.
    assert text.startswith('{"v":') and ',"id":"abc",' in text[:20], text
    value: dict[str, Any] = json.loads(text)
    return value


def test_a_plain_message_has_version_1_and_its_deadline_twice() -> None:
    m = build()
    assert m["v"] == 1 and m["job"] == "Calc.add" and m["params"] == {"a": 1, "b": 2}
    assert m["reply_to"] == "rpc:inbox:{c1}" and m["attempt"] == 1 and m["timeout_ms"] == 30_000
    assert abs(m["deadline_ms"] - (local_ms() + 30_000)) < 2_000
    for absent in ("result_ttl_ms", "meta", "sent_ms", "run_at_ms", "idempotency_key", "max_attempts"):
        assert absent not in m
    assert "reply_to" not in build(reply_to=None)


def test_lifecycle_fields_make_version_2() -> None:
    clock = RedisClock()
    m = build(CallOptions(delay=10), clock=clock)
    assert m["v"] == 2 and abs(m["run_at_ms"] - (clock.now_ms() + 10_000)) < 2_000
    assert abs(m["deadline_ms"] - (local_ms() + 40_000)) < 2_000
    m = build(CallOptions(idempotency_key="order-42", idempotency_ttl=60))
    assert m["v"] == 2 and m["idempotency_key"] == "order-42" and m["idempotency_ttl_ms"] == 60_000
    # A start time is sent as given; one in the past runs at once (v 1).
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    assert build(CallOptions(run_at=at))["run_at_ms"] == round(at.timestamp() * 1000)
    past = build(CallOptions(run_at=datetime.now(timezone.utc) - timedelta(seconds=5)))
    assert past["v"] == 1 and "run_at_ms" not in past
    assert build(CallOptions(delay=0))["v"] == 1


def test_options_travel_in_their_fields() -> None:
    m = build(CallOptions(metadata={"tenant": "t1"}, max_attempts=7, timeout=1.5), result_ttl_ms=300_000)
    assert m["meta"] == {"tenant": "t1"} and m["max_attempts"] == 7 and m["timeout_ms"] == 1_500
    assert m["result_ttl_ms"] == 300_000
    assert build(max_attempts=4)["max_attempts"] == 4
    assert build(CallOptions(max_attempts=2), max_attempts=4)["max_attempts"] == 2


def test_a_sampled_clock_stamps_sent_ms_on_redis_time() -> None:
    clock = RedisClock()
    clock._offset_ms, clock._sampled_at = 3_600_000, 0.0  # Redis an hour ahead
    m = build(CallOptions(delay=1), clock=clock)
    assert abs(m["sent_ms"] - (local_ms() + 3_600_000)) < 2_000
    assert abs(m["run_at_ms"] - (m["sent_ms"] + 1_000)) < 10
    # The deadline stays on the local clock.
    assert abs(m["deadline_ms"] - (local_ms() + 31_000)) < 2_000


def test_result_ttl_rules() -> None:
    o = CallOptions()
    assert messages.result_ttl_ms(o, False, 300) == 0
    assert messages.result_ttl_ms(o, True, 300) == 300_000
    assert messages.result_ttl_ms(CallOptions(keep_result=0), True, 300) == 0
    assert messages.result_ttl_ms(CallOptions(keep_result=5), False, 300) == 5_000
    # A keyed call's result is kept at least as long as its key.
    assert messages.result_ttl_ms(CallOptions(idempotency_key="k"), False, 300) == 3_600_000
    assert messages.result_ttl_ms(CallOptions(idempotency_key="k", idempotency_ttl=10), True, 300) == 300_000


@pytest.mark.parametrize(
    "options",
    [
        CallOptions(timeout=0),
        CallOptions(timeout=-1),
        CallOptions(timeout=float("nan")),
        CallOptions(timeout=367 * 86400),
        CallOptions(delay=-1),
        CallOptions(delay=367 * 86400),
        CallOptions(delay=1, run_at=1e9),
        CallOptions(run_at=datetime(2030, 1, 1)),  # naive
        CallOptions(run_at=datetime.now(timezone.utc) + timedelta(days=367)),
        CallOptions(idempotency_key=""),
        CallOptions(idempotency_key="a\nb"),
        CallOptions(idempotency_key="x}:intake"),
        CallOptions(idempotency_key="k" * 201),
        CallOptions(idempotency_ttl=0),
        CallOptions(keep_result=-1),
        CallOptions(max_attempts=0),
        CallOptions(max_attempts=1001),
        CallOptions(max_attempts=True),
        CallOptions(metadata={"a": 1}),  # type: ignore[dict-item]
        CallOptions(metadata=["a"]),  # type: ignore[arg-type]
    ],
)
def test_bad_options_are_refused_before_sending(options: CallOptions) -> None:
    with pytest.raises(InvalidCall) as refused:
        build(options)
    assert isinstance(refused.value, ValueError)


def test_bad_jobs_params_and_ids_are_refused() -> None:
    for name in ["add", ".add", "Calc.", "C{a}lc.add"]:
        with pytest.raises(InvalidCall, match="`Service.job`|braces"):
            messages.split_job(name)
    with pytest.raises(EncodeError, match="JSON object"):
        build(params=[1, 2])
    with pytest.raises(EncodeError, match="not JSON"):
        build(params={"x": object()})
    with pytest.raises(EncodeError, match="not JSON"):
        build(params={"x": float("inf")})
    with pytest.raises(InvalidCall):
        messages.check_call_id("x" * 257)
    with pytest.raises(InvalidCall):
        messages.check_client_id_prefix("bad prefix")
    messages.check_client_id_prefix("tenant-1")


def test_ids_are_random_uuids_after_the_prefix() -> None:
    a, b = messages.new_id(), messages.new_id("tenant")
    assert len(a) == 32 and int(a, 16) >= 0
    assert b.startswith("tenant-") and len(b) == 39


# -- replies ------------------------------------------------------------------


def test_replies_are_read_strictly() -> None:
    ok = replies.parse(b'{"v":1,"id":"c","ok":3}')
    assert ok is not None and ok.id == "c" and ok.ok == 3 and ok.is_answer()
    null = replies.parse(b'{"ok":null,"id":"c","v":1}')
    assert null is not None and null.has_ok and null.ok is None
    err = replies.parse(b'{"v":1,"id":"c","error":{"kind":"nope","message":"m"}}')
    assert err is not None and err.error is not None and err.error.kind == "unknown"
    for bad in [b"", b"garbage", b"[1]", b'"x"', b'{"v":1}', b'{"v":"1","id":"c","ok":1}',
                b'{"v":1,"id":5,"ok":1}', b'{"v":1,"id":"c","ok":1,"ok":2}', b'{"v":1,"id":"c","ok":NaN}',
                b'{"v":1,"id":"c","error":"boom"}', b'{"v":1,"id":"c","error":{"kind":"app"}}',
                b'{"v":1,"id":"c","error":{"kind":"app","message":"m","message":"n"}}',
                b'{"v":1,"id":"c","holder":5}', b'{"v":1,"id":"c","fingerprint":1,"ok":1}',
                b'{"v":true,"id":"c","ok":1}', b'\xff\xfe']:
        assert replies.parse(bad) is None, bad
    # Duplicate keys inside a value are the value's business (a map keeps the last).
    inner = replies.parse(b'{"v":1,"id":"c","ok":{"a":1,"a":2}}')
    assert inner is not None and inner.ok == {"a": 2}


def decode(body: bytes, decode_error: Any = None) -> Any:
    reply = replies.parse(body)
    assert reply is not None
    return replies.outcome(reply, job="Calc.add", call_id="c", decode_result=lambda v: v, decode_error=decode_error)


def test_outcomes() -> None:
    assert decode(b'{"v":1,"id":"c","ok":null}') is None
    with pytest.raises(CallError) as e:
        decode(b'{"v":1,"id":"c","error":{"kind":"handler","message":"it broke"}}')
    assert e.value.kind == "handler" and "it broke" in str(e.value) and "Calc.add" in str(e.value)
    with pytest.raises(CallError) as e:
        decode(b'{"v":1,"id":"c","error":{"kind":"from_the_future","message":"m"}}')
    assert e.value.kind == "unknown" and "from_the_future" in str(e.value)
    with pytest.raises(CallError) as e:
        decode(b'{"v":1,"id":"c","error":{"kind":"app","message":"m","data":"DivideByZero"}}')
    assert e.value.kind == "app" and e.value.data == "DivideByZero"
    for nothing in [b'{"v":1,"id":"c"}', b'{"v":1,"id":"c","fingerprint":"f"}', b'{"v":1,"id":"c","holder":"h"}']:
        with pytest.raises(DecodeError, match="Calc.add"):
            decode(nothing)


def test_a_result_that_does_not_decode_names_the_job_and_field() -> None:
    def int_only(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise DecodeError("", "expected an integer")
        return v

    reply = replies.parse(b'{"v":1,"id":"c","ok":"five"}')
    assert reply is not None
    with pytest.raises(DecodeError) as e:
        replies.outcome(reply, job="Calculator.add", call_id="c", decode_result=int_only, decode_error=None)
    assert str(e.value) == "Calculator.add: `ok`: expected an integer"


def test_only_a_kept_answer_with_the_holders_fingerprint_is_taken() -> None:
    holder = replies.parse(b'{"v":1,"id":"me","fingerprint":"f1","holder":"h"}')
    assert holder is not None and holder.holder == "h"
    good = replies.parse(b'{"v":1,"id":"h","fingerprint":"f1","ok":9}')
    assert replies.vouched(good, holder, "J.j") is good
    for forged in [b'{"v":1,"id":"h","fingerprint":"f2","ok":152399025}', b'{"v":1,"id":"h","ok":152399025}',
                   b'{"v":1,"id":"h","fingerprint":"f1","holder":"g"}', b'{"v":1,"id":"h","fingerprint":"f1"}']:
        with pytest.raises(replies.HolderResultRefused) as e:
            replies.vouched(replies.parse(forged), holder, "J.j")
        assert "152399025" not in str(e.value)
    with pytest.raises(replies.HolderResultRefused):
        replies.vouched(None, holder, "J.j")
    # A holder answer without a fingerprint (an older worker): any answer is taken.
    old = replies.parse(b'{"v":1,"id":"me","holder":"h"}')
    assert old is not None
    unsigned = replies.parse(b'{"v":1,"id":"h","ok":1}')
    assert replies.vouched(unsigned, old, None) is unsigned


# -- URLs ---------------------------------------------------------------------


def test_urls() -> None:
    t = urls.parse("redis://u:secret@localhost:6380/2?enqueue=intake")
    assert t.kwargs["host"] == "localhost" and t.kwargs["port"] == 6380 and t.kwargs["db"] == 2
    assert t.kwargs["username"] == "u" and t.kwargs["password"] == "secret" and t.enqueue == "intake"
    assert "secret" not in t.redacted
    u = urls.parse("redis+unix:///tmp/redis.sock?db=1")
    assert u.kwargs["path"] == "/tmp/redis.sock" and u.kwargs["db"] == 1 and u.enqueue is None
    assert urls.parse("rediss://h:1/").kwargs["connection_class"].__name__ == "SSLConnection"
    for bad, why in [
        ("memory://x", "in-process"),
        ("redis+cluster://a:1,b:2", "Cluster"),
        ("http://h", "scheme"),
        ("localhost:6379", "scheme"),
        ("redis://h:1/?enqueue=sometimes", "auto, stream or intake"),
        ("redis://h:1/?ca=/etc/hostname", "rediss"),
        ("rediss://h:1/?ca=/does/not/exist", "cannot read"),
        ("rediss://h:1/?client_cert=/etc/hostname", "together"),
        ("redis+unix://", "socket"),
    ]:
        with pytest.raises(InvalidUrl, match=why):
            urls.parse(bad)
    with pytest.raises(InvalidUrl) as e:
        urls.parse("memory://u:pw@x")
    assert "pw" not in str(e.value)
    tls = urls.parse("rediss://h:1/?ca=/etc/hostname&client_cert=/etc/hostname&client_key=/etc/hostname")
    assert tls.kwargs["ssl_ca_certs"] == "/etc/hostname" and tls.kwargs["ssl_keyfile"] == "/etc/hostname"
