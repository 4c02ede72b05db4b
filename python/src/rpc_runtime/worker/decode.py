"""Reading a job message off the stream: every field is hostile until
checked (docs/PROTOCOL.md, "Job message" and "Taking and running jobs",
step 2).

The checks and their reasons follow ``rpc-protocol/src/job.rs`` and
``rpc-runtime/src/worker/job.rs``: the object form only, each field of its
JSON type (serde's derive: a required field missing, a field given twice,
a string where a number goes), numbers in their ranges, ``reply_to`` an
inbox of this worker's prefix, ``v`` 1 or 2. A refused message is
dead-lettered with the reason and, when its ``id`` and a valid inbox can be
read, answered ``bad_request``. serde's texts carry a line and column; these
do not (the rest of the text is the same).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .. import limits
from ..priority import is_priority, out_of_range
from ..keys import Keys, is_idempotency_key

PROTOCOL_VERSION = 1
NEWEST_VERSION = 2
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

#: The fields of a job message, in the order the Rust worker writes them.
FIELDS = (
    "v", "id", "job", "params", "reply_to", "deadline_ms", "timeout_ms", "attempt",
    "max_attempts", "result_ttl_ms", "meta", "handoffs", "sent_ms", "run_at_ms",
    "idempotency_key", "idempotency_ttl_ms", "priority",
)  # fmt: skip


@dataclass
class Message:
    """A checked job message."""

    v: int
    id: str
    job: str
    params: Any
    reply_to: str | None = None
    deadline_ms: int | None = None
    timeout_ms: int | None = None
    attempt: int = 1
    max_attempts: int | None = None
    result_ttl_ms: int = 0
    meta: dict[str, str] = field(default_factory=dict)
    handoffs: int = 0
    sent_ms: int | None = None
    run_at_ms: int | None = None
    idempotency_key: str | None = None
    idempotency_ttl_ms: int | None = None
    #: The call's priority as sent (checked 1 to 5; None: the default, 3).
    #: It names the lane a retry or a delayed call goes back to.
    priority: int | None = None
    #: The fields this worker does not know (a newer sender's, such as
    #: ``group``), kept as they came so that a retry loses none of them.
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The message as the Rust worker re-encodes one (a retry, a
        hand-back): known fields in order, defaults left out, then the
        fields this worker does not know, as they came."""
        out: dict[str, Any] = {
            "v": self.v,
            "id": self.id,
            "job": self.job,
            "params": self.params,
        }
        optional: list[tuple[str, Any]] = [
            ("reply_to", self.reply_to),
            ("deadline_ms", self.deadline_ms),
            ("timeout_ms", self.timeout_ms),
        ]
        for name, value in optional:
            if value is not None:
                out[name] = value
        out["attempt"] = self.attempt
        if self.max_attempts is not None:
            out["max_attempts"] = self.max_attempts
        if self.result_ttl_ms:
            out["result_ttl_ms"] = self.result_ttl_ms
        if self.meta:
            out["meta"] = dict(sorted(self.meta.items()))
        if self.handoffs:
            out["handoffs"] = self.handoffs
        for name, value in [
            ("sent_ms", self.sent_ms),
            ("run_at_ms", self.run_at_ms),
            ("idempotency_key", self.idempotency_key),
            ("idempotency_ttl_ms", self.idempotency_ttl_ms),
            ("priority", self.priority),
        ]:
            if value is not None:
                out[name] = value
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class Refusal:
    """A message that is not run: the dead letter's reason, and the
    ``bad_request`` answer when one can be sent (``(reply_to, body)``)."""

    reason: str
    reply: tuple[str, bytes] | None = None


class _Unreadable(Exception):
    def __init__(self, why: str, parsed: Any = None) -> None:
        super().__init__(why)
        #: The value parsed, when the text was JSON but its shape is refused.
        self.parsed = parsed


class _Obj(dict[str, Any]):
    """A JSON object that remembers which of its keys came twice."""

    dups: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    obj = _Obj()
    obj.dups = []
    for k, v in pairs:
        if k in obj:
            obj.dups.append(k)
        obj[k] = v
    return obj


def _constant(name: str) -> Any:
    raise _Unreadable(f"expected value (`{name}` is not JSON)")


def parse_json(payload: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity (nor a number that overflows
    a double), no lone surrogate escape, nesting at most :data:`MAX_DEPTH`
    deep; objects as :class:`_Obj`. What is refused here could not be
    answered, fingerprinted or queued again as JSON (``json.dumps`` fails on
    it), so it is refused before anything runs; when the text was JSON, the
    refusal carries the value (its ``id`` and ``reply_to`` get the answer)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Unreadable(f"invalid unicode code point ({e.reason})") from None
    overflowed = False

    def finite(number: str) -> float:
        nonlocal overflowed
        value = float(number)
        if not math.isfinite(value):
            overflowed = True  # `1e400`: no f64 (serde_json's words below)
        return value

    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant,
                           parse_float=finite)
    except json.JSONDecodeError as e:
        raise _Unreadable(e.msg) from None
    except RecursionError:
        raise _Unreadable(_TOO_DEEP) from None
    except ValueError as e:
        raise _Unreadable(str(e)) from None
    try:
        if overflowed:
            raise _Unreadable("number out of range")
        check_shape(payload, value)
    except _Unreadable as e:
        raise _Unreadable(str(e), value) from None
    return value


#: How deep a message may nest (serde_json's limit, which the Rust
#: runtime's readers have): deeper cannot be read by a Rust client, and
#: Python's own recursion limit is not far above.
MAX_DEPTH = 128
_TOO_DEEP = f"recursion limit exceeded (JSON nested deeper than {MAX_DEPTH} levels)"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def check_shape(payload: bytes, value: Any) -> None:
    """Refuses a parsed ``value`` nested deeper than :data:`MAX_DEPTH` or
    holding a lone surrogate (``"\\ud800"``: JSON that no UTF-8 can
    carry). Walks the value (without recursion) only when the text could
    hold either: enough brackets, or a surrogate escape."""
    deep = payload.count(b"[") + payload.count(b"{") > MAX_DEPTH
    surrogates = _SURROGATE_ESCAPE.search(payload) is not None
    if not deep and not surrogates:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if surrogates:
                _valid_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise _Unreadable(_TOO_DEEP)
            if isinstance(item, dict):
                if surrogates:
                    for k in item:
                        _valid_text(k)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def is_json_object(payload: bytes) -> bool:
    """Whether the first byte that is not JSON white space is ``{``."""
    return payload.lstrip(b" \t\n\r")[:1] == b"{"


def rust_debug(s: str) -> str:
    """``s`` as Rust's ``{:?}`` writes a string (quotes and escapes)."""
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") and c != "\u00ad":
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _unexpected(value: Any) -> str:
    # serde's `Unexpected` as serde_json reports it.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return f"string {rust_debug(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _int(obj: dict[str, Any], name: str, expected: str, top: int, optional: bool) -> int | None:
    if name not in obj:
        return None
    value = obj[name]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unreadable(f"invalid type: {_unexpected(value)}, expected {expected}")
    if value < 0 or value > top:
        raise _Unreadable(f"invalid value: {_unexpected(value)}, expected {expected}")
    return int(value)


def _i64(obj: dict[str, Any], name: str) -> int | None:
    """An optional signed integer field (serde's ``Option<i64>``): null is
    absent; the range is checked later (``check_ranges``)."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unreadable(f"invalid type: {_unexpected(value)}, expected i64")
    if not _I64_MIN <= value <= _I64_MAX:
        raise _Unreadable(f"invalid value: {_unexpected(value)}, expected i64")
    return int(value)


def _str(obj: dict[str, Any], name: str, optional: bool) -> str | None:
    if name not in obj:
        return None
    value = obj[name]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Unreadable(f"invalid type: {_unexpected(value)}, expected a string")
    _valid_text(value)
    return value


def _valid_text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unreadable("lone leading surrogate in hex escape") from None


def _message(obj: _Obj) -> Message:
    for name in obj.dups:
        if name in FIELDS:
            raise _Unreadable(f"duplicate field `{name}`")
    # serde reports the first bad field in the order the text has them.
    for name in list(obj.keys()):
        _check_type(obj, name)
    for name in ("v", "id", "job", "params"):
        if name not in obj:
            raise _Unreadable(f"missing field `{name}`")
    meta_raw = obj.get("meta", {})
    return Message(
        v=_default(_int(obj, "v", "u32", _U32_MAX, False), 0),
        id=_str(obj, "id", False) or "",
        job=_str(obj, "job", False) or "",
        params=obj["params"],
        reply_to=_str(obj, "reply_to", True),
        deadline_ms=_int(obj, "deadline_ms", "u64", _U64_MAX, True),
        timeout_ms=_int(obj, "timeout_ms", "u64", _U64_MAX, True),
        attempt=_default(_int(obj, "attempt", "u32", _U32_MAX, False), 1),
        max_attempts=_int(obj, "max_attempts", "u32", _U32_MAX, True),
        result_ttl_ms=_int(obj, "result_ttl_ms", "u64", _U64_MAX, False) or 0,
        meta=dict(meta_raw),
        handoffs=_int(obj, "handoffs", "u32", _U32_MAX, False) or 0,
        sent_ms=_int(obj, "sent_ms", "u64", _U64_MAX, True),
        run_at_ms=_int(obj, "run_at_ms", "u64", _U64_MAX, True),
        idempotency_key=_str(obj, "idempotency_key", True),
        idempotency_ttl_ms=_int(obj, "idempotency_ttl_ms", "u64", _U64_MAX, True),
        priority=_i64(obj, "priority"),
        extra={k: v for k, v in obj.items() if k not in FIELDS},
    )


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


_U32_FIELDS = {"v": False, "attempt": False, "max_attempts": True, "handoffs": False}
_U64_FIELDS = {
    "deadline_ms": True, "timeout_ms": True, "result_ttl_ms": False, "sent_ms": True,
    "run_at_ms": True, "idempotency_ttl_ms": True,
}  # fmt: skip
_STR_FIELDS = {"id": False, "job": False, "reply_to": True, "idempotency_key": True}


def _check_type(obj: dict[str, Any], name: str) -> None:
    if name in _U32_FIELDS:
        _int(obj, name, "u32", _U32_MAX, _U32_FIELDS[name])
    elif name in _U64_FIELDS:
        _int(obj, name, "u64", _U64_MAX, _U64_FIELDS[name])
    elif name in _STR_FIELDS:
        _str(obj, name, _STR_FIELDS[name])
    elif name == "priority":
        _i64(obj, name)
    elif name == "meta":
        meta = obj[name]
        if not isinstance(meta, dict):
            raise _Unreadable(f"invalid type: {_unexpected(meta)}, expected a map")
        for k, v in meta.items():
            _valid_text(k)
            if not isinstance(v, str):
                raise _Unreadable(f"invalid type: {_unexpected(v)}, expected a string")
            _valid_text(v)


def check_ranges(msg: Message) -> str | None:
    """The range checks of ``JobMessage::check``, in its order: the reason,
    or None."""
    m = limits
    if not msg.id or len(msg.id.encode("utf-8")) > m.MAX_ID_BYTES:
        return f"`id` must be 1 to {m.MAX_ID_BYTES} bytes"
    if not 1 <= msg.attempt <= m.MAX_ATTEMPTS:
        return f"`attempt` {msg.attempt} is outside 1..={m.MAX_ATTEMPTS}"
    if msg.max_attempts is not None and not 1 <= msg.max_attempts <= m.MAX_ATTEMPTS:
        return f"`max_attempts` {msg.max_attempts} is outside 1..={m.MAX_ATTEMPTS}"
    if msg.result_ttl_ms > m.MAX_TTL_MS:
        return (
            f"`result_ttl_ms` {msg.result_ttl_ms} is over the limit of {m.MAX_TTL_MS} (366 days)"
        )
    if msg.timeout_ms is not None and msg.timeout_ms > m.MAX_TTL_MS:
        return f"`timeout_ms` {msg.timeout_ms} is over the limit of {m.MAX_TTL_MS} (366 days)"
    if msg.handoffs > m.MAX_HANDOFFS:
        return f"`handoffs` {msg.handoffs} is over {m.MAX_HANDOFFS}"
    if msg.deadline_ms is not None and msg.deadline_ms > m.MAX_DEADLINE_MS:
        return f"`deadline_ms` {msg.deadline_ms} is past the year 9999"
    for name, value in (("sent_ms", msg.sent_ms), ("run_at_ms", msg.run_at_ms)):
        if value is not None and value > m.MAX_DEADLINE_MS:
            return f"`{name}` {value} is past the year 9999"
    key = msg.idempotency_key
    if key is not None and not is_idempotency_key(key):
        return (
            f"`idempotency_key` must be 1 to {m.MAX_IDEMPOTENCY_KEY_BYTES} bytes without control "
            f"characters or braces ({len(key.encode('utf-8'))} bytes given)"
        )
    ttl = msg.idempotency_ttl_ms
    if ttl is not None and not 1 <= ttl <= m.MAX_TTL_MS:
        return f"`idempotency_ttl_ms` {ttl} is outside 1..={m.MAX_TTL_MS} (366 days)"
    if msg.priority is not None and not is_priority(msg.priority):
        return out_of_range(msg.priority)
    return None


def error_reply(call_id: str, kind: str, message: str, data: Any = None, *,
                has_data: bool = False, fingerprint: str | None = None) -> bytes:
    """An error reply as the Rust worker encodes one."""
    out: dict[str, Any] = {"v": 1, "id": call_id}
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    # A message may quote a handler's exception: a lone surrogate in it
    # would make the reply unwritable (and the job stuck), so it is replaced.
    error: dict[str, Any] = {"kind": kind, "message": _utf8(message)}
    if has_data:
        error["data"] = data
    out["error"] = error
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _utf8(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def decode(payload: bytes, keys: Keys, max_message_bytes: int) -> Message | Refusal:
    """Checks one delivery's message (step 2): the message, or why not."""
    if len(payload) > max_message_bytes:
        return Refusal(
            f"oversized job message: {len(payload)} bytes, over the worker's limit of "
            f"{max_message_bytes} bytes"
        )
    if not is_json_object(payload):
        return _unreadable(
            payload, None, "a job message is a JSON object (arrays and other values are refused)",
            keys,
        )
    parsed: Any = None
    try:
        parsed = parse_json(payload)
        if not isinstance(parsed, _Obj):  # pragma: no cover (checked above)
            raise _Unreadable("a job message is a JSON object")
        msg = _message(parsed)
    except _Unreadable as e:
        return _unreadable(payload, parsed if parsed is not None else e.parsed, str(e), keys)
    reason = check_ranges(msg)
    if reason is not None:
        return _unreadable(payload, parsed, reason, keys)
    if msg.reply_to is not None and not keys.is_inbox(msg.reply_to):
        return Refusal(
            f"`reply_to` {rust_debug(msg.reply_to)} is not a client inbox of this worker's prefix "
            f"({keys.inbox('<client id>')}); nothing was run or written"
        )
    if not PROTOCOL_VERSION <= msg.v <= NEWEST_VERSION:
        reason = (
            f"protocol version {msg.v} is not spoken here (this worker speaks "
            f"{PROTOCOL_VERSION} to {NEWEST_VERSION})"
        )
        reply = None
        if msg.reply_to is not None:
            reply = (msg.reply_to, error_reply(msg.id, "bad_request", reason))
        return Refusal(reason, reply)
    return msg


def _unreadable(payload: bytes, parsed: Any, why: str, keys: Keys) -> Refusal:
    reason = f"unreadable job message: {why}"
    if parsed is None and is_json_object(payload):
        try:
            parsed = parse_json(payload)
        except _Unreadable as e:
            parsed = e.parsed
    reply = None
    if isinstance(parsed, _Obj):
        call_id = parsed.get("id")
        to = parsed.get("reply_to")
        dup = "id" in parsed.dups or "reply_to" in parsed.dups
        if (
            not dup
            and isinstance(call_id, str)
            and _encodes(call_id)
            and 1 <= len(call_id.encode("utf-8")) <= limits.MAX_ID_BYTES
            and isinstance(to, str)
            and _encodes(to)
            and keys.is_inbox(to)
        ):
            reply = (to, error_reply(call_id, "bad_request", reason))
    return Refusal(reason, reply)


def _encodes(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
