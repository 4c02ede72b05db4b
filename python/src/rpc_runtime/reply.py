"""Reading replies strictly (docs/PROTOCOL.md, "Reply"): the object form
only, for the envelope and its ``error``; exactly one answer among ``ok``
(``null`` included), ``error`` and ``holder``; unknown error kinds read as
``unknown``; and the checks that let a caller follow a ``holder`` answer to
the holder's kept result only when that result carries the same
``fingerprint`` ("Idempotency keys").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from .errors import CallError, DecodeError, ErrorKind

_MISSING: Any = object()


class HolderResultRefused(CallError):
    """A call answered with a ``holder`` (its idempotency key is held by an
    earlier call) found something under the holder's kept result that does
    not answer it. The call did not run; it may be sent again under a new
    key."""

    def __init__(self, *, job: str | None, holder: str, reason: str) -> None:
        self.holder = holder
        self.reason = reason
        super().__init__(
            "holder_result_refused",
            f"the result kept for call {holder}, which holds this call's idempotency key, "
            f"was refused: {reason}; this call did not run",
            job=job,
        )


@dataclass(frozen=True)
class ReplyError:
    """A reply's ``error``."""

    #: One of :class:`ErrorKind`'s strings (``unknown`` for a kind this
    #: version does not know).
    kind: str
    message: str
    data: Any = None
    #: The kind as the reply spelled it (differs from ``kind`` when unknown).
    wire_kind: str = ""


@dataclass(frozen=True)
class Reply:
    """One reply envelope."""

    id: str
    v: int = 1
    #: The job's value; ``_MISSING`` when the reply has no ``ok`` (use
    #: :attr:`has_ok`: ``"ok": null`` is an answer, the value ``None``).
    ok: Any = _MISSING
    error: ReplyError | None = None
    holder: str | None = None
    fingerprint: str | None = None

    @property
    def has_ok(self) -> bool:
        return self.ok is not _MISSING

    def is_answer(self) -> bool:
        """An answer (``ok`` or ``error``), as opposed to a holder answer or
        an envelope with neither, which answer nothing."""
        return self.holder is None and (self.has_ok or self.error is not None)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_loads(body: bytes | str) -> tuple[Any, set[int]]:
    """JSON from ``body`` (UTF-8; no NaN or Infinity), and the ids of the
    objects in it that had a key twice."""
    doubled: set[int] = set()

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            doubled.add(id(obj))
        return obj

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            # `1e400`: no double; the Rust reader refuses it too.
            raise ValueError("number out of range")
        return value

    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    value = json.loads(text, object_pairs_hook=pairs, parse_constant=_no_constants,
                       parse_float=finite)
    return value, doubled


def parse(body: bytes | str) -> Reply | None:
    """The reply in ``body``, or None when it is not one (not UTF-8 JSON,
    not the object form, a field of the wrong type or given twice): such a
    reply is ignored, and its call waits on for a readable one."""
    try:
        value, doubled = _strict_loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or id(value) in doubled:
        return None
    v, call_id = value.get("v", _MISSING), value.get("id", _MISSING)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32:
        return None
    if not isinstance(call_id, str):
        return None
    fingerprint = value.get("fingerprint")
    holder = value.get("holder")
    if fingerprint is not None and not isinstance(fingerprint, str):
        return None
    if holder is not None and not isinstance(holder, str):
        return None
    error: ReplyError | None = None
    raw_error = value.get("error")
    if raw_error is not None:
        if not isinstance(raw_error, dict) or id(raw_error) in doubled:
            return None
        kind, message = raw_error.get("kind"), raw_error.get("message")
        if not isinstance(kind, str) or not isinstance(message, str):
            return None
        error = ReplyError(ErrorKind.read(kind), message, raw_error.get("data"), kind)
    return Reply(
        id=call_id,
        v=v,
        ok=value.get("ok", _MISSING),
        error=error,
        holder=holder,
        fingerprint=fingerprint,
    )


def vouched(reply: Reply | None, holder_answer: Reply, job: str | None) -> Reply:
    """``reply``, what is kept under the holder's id, when it answers the
    call that was pointed there; else raises :class:`HolderResultRefused`
    saying why (without showing what is kept)."""
    holder = holder_answer.holder or ""

    def refuse(reason: str) -> HolderResultRefused:
        return HolderResultRefused(job=job, holder=holder, reason=reason)

    if reply is None:
        raise refuse("it is not a reply")
    if reply.holder is not None:
        raise refuse("it is itself a holder answer (another call under its id was answered so)")
    if not reply.is_answer():
        raise refuse("it has neither `ok` nor `error`")
    expected = holder_answer.fingerprint
    if expected is not None:
        if reply.fingerprint is None:
            raise refuse(
                "it does not say which parameters it answers (another call was sent under its id, "
                "or a worker too old to say ran it)"
            )
        if reply.fingerprint != expected:
            raise refuse("it answers other parameters (another call was sent under its id)")
    return reply


def outcome(
    reply: Reply,
    *,
    job: str | None,
    call_id: str,
    decode_result: Callable[[Any], Any],
    decode_error: Callable[[Any], Exception] | None,
) -> Any:
    """The caller's result of an answer: ``ok`` through ``decode_result``
    (a mismatch raises :class:`DecodeError` naming the job and field), an
    ``app`` error through ``decode_error`` (raised), any other error as
    :class:`CallError`. A holder answer or an envelope with no answer is
    never read as a result."""
    label = job or "(job not known: fetched by id)"
    if reply.holder is not None:
        raise DecodeError(
            "", f"the reply names call {reply.holder} as holding its idempotency key; it is no answer", label
        )
    if reply.has_ok:
        try:
            return decode_result(reply.ok)
        except DecodeError as e:
            raise e.in_job(label, "ok") from None
    err = reply.error
    if err is None:
        raise DecodeError("", "the reply has neither `ok` nor `error`", label)
    if err.kind == ErrorKind.APP and decode_error is not None:
        try:
            app = decode_error(err.data)
        except DecodeError as e:
            raise e.in_job(label, "error.data") from None
        raise app
    message = err.message
    if err.kind == ErrorKind.UNKNOWN and err.wire_kind != ErrorKind.UNKNOWN:
        message = f"(kind `{err.wire_kind}`, unknown to this version) {message}"
    raise CallError(err.kind, message, data=err.data, job=job, call_id=call_id)


