"""Building job messages (docs/PROTOCOL.md, "Job message"): every field in
its range, ``v`` 2 exactly when the lifecycle needs it, call and client
ids, and the options a caller gives checked before anything is sent.

The message is written with ``v`` then ``id`` first and no white space, so
that a mover reads its id from the element's start (``{"v":1,"id":"..."``,
see "The intake"), as the Rust client writes it.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from . import limits, priority, shards
from .priority import DEFAULT as DEFAULT_PRIORITY
from .errors import EncodeError, RpcError
from .keys import is_client_id, is_idempotency_key
from .options import CallOptions
from .redis_clock import RedisClock, local_ms

#: The protocol version of a plain message, and of one that carries
#: ``run_at_ms`` or ``idempotency_key`` (an older worker must refuse it).
VERSION = 1
VERSION_LIFECYCLE = 2


class InvalidCall(RpcError, ValueError):
    """A call cannot be sent as asked (a bad option, job name or id): it is
    refused before anything reaches Redis."""


def new_id(prefix: str | None = None) -> str:
    """A fresh call or client id: a random UUID in simple form, after
    ``prefix`` and a dash when one is given."""
    random = uuid.uuid4().hex
    return f"{prefix}-{random}" if prefix else random


def check_client_id_prefix(prefix: str | None) -> None:
    """A client id prefix must leave room for a valid client id."""
    if prefix is None:
        return
    if not isinstance(prefix, str) or not prefix or not is_client_id(f"{prefix}-{'0' * 32}"):
        raise InvalidCall(
            f"client_id_prefix {prefix!r}: 1 to 95 characters of A-Z a-z 0-9 _ - . : "
            "(the client id is the prefix, a dash and 32 hex digits, at most 128 characters)"
        )


def split_job(name: str) -> tuple[str, str]:
    """``Service.job`` into its two parts; refuses what cannot be routed."""
    if isinstance(name, str):
        return _split_job(name)
    raise InvalidCall(f"a job name is a string `Service.job`, not {type(name).__name__}")


@functools.lru_cache(maxsize=4096)
def _split_job(name: str) -> tuple[str, str]:
    # Cached: a client calls the same few jobs over and over (a refusal
    # raises, and is not cached).
    if not isinstance(name, str):
        raise InvalidCall(f"a job name is a string `Service.job`, not {type(name).__name__}")
    service, dot, job = name.partition(".")
    if not dot or not service or not job:
        raise InvalidCall(f"cannot route job `{name}`: job names are `Service.job`")
    if shards.SEPARATOR in service:
        raise InvalidCall(
            f"cannot route job `{name}`: a service name has no `{shards.SEPARATOR}` "
            f"(`S{shards.SEPARATOR}k` is a shard of `S`)"
        )
    check_service(service)
    return service, job


def check_service(service: str) -> None:
    """A service name is part of keys (``P:{Service}:jobs``): no braces, no
    control characters, 1 to 255 bytes."""
    if (
        not isinstance(service, str)
        or not 1 <= len(service.encode("utf-8", "surrogatepass")) <= 255
        or any(c in "{}" or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in service)
    ):
        raise InvalidCall(
            f"service {service!r}: 1 to 255 bytes without braces or control characters"
        )


def check_call_id(call_id: str) -> None:
    """A call id is 1 to 256 bytes (a longer one is never answered)."""
    if not isinstance(call_id, str) or not 1 <= len(call_id.encode("utf-8", "surrogatepass")) <= limits.MAX_ID_BYTES:
        raise InvalidCall(f"call id {call_id!r}: a call id is 1 to {limits.MAX_ID_BYTES} bytes")


def _seconds(what: str, value: object, *, zero_ok: bool, most_ms: int) -> int:
    """A duration in seconds as whole ms, checked: a finite number, not
    negative (nor zero unless ``zero_ok``), at most ``most_ms``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidCall(f"{what} is a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise InvalidCall(f"{what} must be {'0 or more' if zero_ok else 'more than 0'} seconds ({value!r} given)")
    ms = math.ceil(value * 1000)
    if ms > most_ms:
        raise InvalidCall(f"{what} is at most {most_ms // 86_400_000} days ({value!r} s given)")
    return ms


def check_options(options: CallOptions) -> None:
    """Refuses options that cannot be sent, with the reason."""
    if options.timeout is not None:
        _seconds("timeout", options.timeout, zero_ok=False, most_ms=limits.MAX_TTL_MS)
    if options.delay is not None:
        _seconds("delay", options.delay, zero_ok=True, most_ms=limits.MAX_DELAY_MS)
    if options.delay is not None and options.run_at is not None:
        raise InvalidCall("give a delay or a start time (run_at), not both")
    if options.run_at is not None:
        _run_at_ms(options.run_at)
    key = options.idempotency_key
    if key is not None and (not isinstance(key, str) or not is_idempotency_key(key)):
        raise InvalidCall(
            f"idempotency key {key!r} is not 1 to {limits.MAX_IDEMPOTENCY_KEY_BYTES} bytes "
            "without control characters or braces"
        )
    if options.idempotency_ttl is not None:
        _seconds("idempotency_ttl", options.idempotency_ttl, zero_ok=False, most_ms=limits.MAX_TTL_MS)
    if options.keep_result is not None:
        _seconds("keep_result", options.keep_result, zero_ok=True, most_ms=limits.MAX_TTL_MS)
    n = options.max_attempts
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limits.MAX_ATTEMPTS):
        raise InvalidCall(f"max_attempts is an integer from 1 to {limits.MAX_ATTEMPTS} ({n!r} given)")
    check_priority(options.priority)
    meta = options.metadata
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise InvalidCall(f"metadata is a mapping of strings to strings, not {type(meta).__name__}")
        for k, v in meta.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidCall(f"metadata maps strings to strings ({k!r}: {v!r} given)")


def check_priority(p: object) -> None:
    """Refuses a priority that is not 1 to 5 (``None`` is the default), in
    the Rust client's words."""
    if p is None or priority.is_priority(p):
        return
    if isinstance(p, bool) or not isinstance(p, int):
        raise InvalidCall(f"`priority` is an integer from {priority.HIGHEST} to {priority.LOWEST} "
                          f"({p!r} given)")
    raise InvalidCall(priority.out_of_range(p))


def priority_of(options: CallOptions, spec_priority: int | None) -> int:
    """The priority a call goes at: the options', else the job's, else 3."""
    if options.priority is not None:
        p: int = options.priority
    elif spec_priority is not None:
        p = spec_priority
    else:
        p = priority.DEFAULT
    check_priority(p)
    return p


def _run_at_ms(at: object) -> int:
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidCall("run_at is an aware datetime (with a tzinfo) or Unix seconds, not a naive datetime")
        seconds = at.timestamp()
    elif isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at):
        seconds = float(at)
    else:
        raise InvalidCall(f"run_at is an aware datetime or Unix seconds ({at!r} given)")
    if seconds < 0 or seconds * 1000 > limits.MAX_DEADLINE_MS:
        raise InvalidCall(f"run_at {at!r} is out of range")
    return round(seconds * 1000)


def timeout_ms(options: CallOptions, spec_timeout_ms: int | None, default_timeout: float) -> int:
    """The call's timeout: the options', else the job's, else the client's."""
    if options.timeout is not None:
        return _seconds("timeout", options.timeout, zero_ok=False, most_ms=limits.MAX_TTL_MS)
    if spec_timeout_ms is not None:
        return spec_timeout_ms
    return _seconds("timeout", default_timeout, zero_ok=False, most_ms=limits.MAX_TTL_MS)


def result_ttl_ms(options: CallOptions, keep: bool, client_result_ttl: float) -> int:
    """How long the worker keeps the reply: the options' ``keep_result``,
    else the client's ``result_ttl`` for a call that keeps (``send_job``,
    the untyped ``call``/``call_and_wait``), else not at all; a keyed call's
    at least as long as its key is held, so every duplicate finds it."""
    if options.keep_result is not None:
        ttl = _seconds("keep_result", options.keep_result, zero_ok=True, most_ms=limits.MAX_TTL_MS)
    elif keep:
        ttl = _seconds("result_ttl", client_result_ttl, zero_ok=True, most_ms=limits.MAX_TTL_MS)
    else:
        ttl = 0
    if options.idempotency_key is not None:
        ttl = max(ttl, idempotency_ttl_ms(options))
    return ttl


def idempotency_ttl_ms(options: CallOptions) -> int:
    if options.idempotency_ttl is None:
        return limits.DEFAULT_IDEMPOTENCY_TTL_MS
    return _seconds("idempotency_ttl", options.idempotency_ttl, zero_ok=False, most_ms=limits.MAX_TTL_MS)


@dataclass(frozen=True)
class Outgoing:
    """A job message ready to send, and what the caller needs to wait."""

    id: str
    service: str
    job: str
    #: The message, UTF-8 JSON.
    body: bytes
    #: The call's timeout, ms (``timeout_ms``).
    timeout_ms: int
    #: How long after sending the call is due, ms (0: at once).
    delay_ms: int
    #: The call's priority: the lane (stream) it is added to.
    priority: int = DEFAULT_PRIORITY

    @property
    def wait(self) -> float:
        """How long the caller waits, in seconds: the delay, then the timeout."""
        return (self.delay_ms + self.timeout_ms) / 1000


def build(
    *,
    job: str,
    params: Any,
    call_id: str,
    reply_to: str | None,
    options: CallOptions,
    timeout_ms: int,
    result_ttl_ms: int,
    clock: RedisClock,
    max_attempts: int | None = None,
    max_message_bytes: int = limits.DEFAULT_MAX_MESSAGE_BYTES,
    default_priority: int | None = None,
) -> Outgoing:
    """Builds the message of a call of ``job`` (``Service.job``) with
    ``params`` (a JSON object). ``max_attempts`` and ``default_priority``
    are the job's defaults, which ``options`` override."""
    service, _ = split_job(job)
    check_options(options)
    p = priority_of(options, default_priority)
    check_call_id(call_id)
    if not isinstance(params, Mapping):
        raise EncodeError("params", f"{job}: a job's parameters are a JSON object (a mapping), not {type(params).__name__}")
    for name in params:
        if not isinstance(name, str):
            raise EncodeError("params", f"{job}: parameter names are strings ({name!r} given)")
    now_ms = clock.now_ms()
    run_at: int | None = None
    if options.delay is not None:
        delay = _seconds("delay", options.delay, zero_ok=True, most_ms=limits.MAX_DELAY_MS)
        run_at = now_ms + delay if delay > 0 else None
    elif options.run_at is not None:
        at = _run_at_ms(options.run_at)
        if at > now_ms + limits.MAX_DELAY_MS:
            raise InvalidCall(f"{job}: a start time is at most 366 days ahead")
        # A start time in the past runs at once, its time counted from now.
        run_at = at if at > now_ms else None
    delay_ms = 0 if run_at is None else max(0, run_at - now_ms)
    deadline_ms = local_ms() + delay_ms + timeout_ms
    if deadline_ms > limits.MAX_DEADLINE_MS:
        raise InvalidCall(f"{job}: the deadline is past the year 9999")
    key = options.idempotency_key
    message: dict[str, Any] = {
        "v": VERSION_LIFECYCLE if run_at is not None or key is not None else VERSION,
        "id": call_id,
        "job": job,
        "params": dict(params),
    }
    if reply_to is not None:
        message["reply_to"] = reply_to
    message["deadline_ms"] = deadline_ms
    message["timeout_ms"] = timeout_ms
    message["attempt"] = 1
    attempts = options.max_attempts if options.max_attempts is not None else max_attempts
    if attempts is not None:
        message["max_attempts"] = attempts
    if result_ttl_ms:
        message["result_ttl_ms"] = result_ttl_ms
    if options.metadata:
        message["meta"] = dict(options.metadata)
    if clock.is_sampled():
        message["sent_ms"] = now_ms
    if run_at is not None:
        message["run_at_ms"] = run_at
    if key is not None:
        message["idempotency_key"] = key
        if options.idempotency_ttl is not None:
            message["idempotency_ttl_ms"] = idempotency_ttl_ms(options)
    # Written only when it is not the default, as the Rust client does.
    if p != priority.DEFAULT:
        message["priority"] = p
    try:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        body = text.encode("utf-8")
    except (TypeError, ValueError) as e:
        raise EncodeError("params", f"{job}: the parameters are not JSON: {e}") from None
    if len(body) > max_message_bytes:
        raise InvalidCall(
            f"{job}: the message is {len(body)} bytes, over the workers' limit of {max_message_bytes}"
        )
    return Outgoing(id=call_id, service=service, job=job, body=body, timeout_ms=timeout_ms,
                    delay_ms=delay_ms, priority=p)
