"""Running one delivery: the checks before the handler, in
docs/PROTOCOL.md's order (cancelled, out of attempts, not due, group slot,
deadline, service and job, rate limit, idempotency key), then the handler (a synchronous one in
the worker's thread pool, an asynchronous one on the loop) under its
deadline and cancellation, and how to complete the job. The mirror of
``rpc-runtime/src/worker/job.rs``.

A handler's exception never reaches the worker: an ``AppError`` is an
``app`` answer, ``Retry`` a retry while attempts last, ``Fatal`` and any
other exception a ``handler`` answer, a ``DecodeError`` ``bad_request``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from ..context import Context
from ..errors import AppError, DecodeError, EncodeError, Fatal, Retry
from ..fingerprint import fingerprint_value
from ..progress import ttl_ms
from .clock import entry_ms, started_ms, time_left_ms
from .complete import Completion, Delivery
from .counts import Failure, cut_message
from . import groups
from .decode import Message, Refusal, decode, error_reply
from .handoff import TRIP_ALLOWANCE_MS, hand_back
from .idempotency import CLAIM_RETRY_MS, claim, result_ttl_ms
from .rate_limit import gate
from .retry import Backoff
from .retry import parse as parse_backoff
from .shared import Mounted, Shared

log = logging.getLogger("rpc_runtime.worker")

#: A ``run_at_ms`` further ahead than this is refused (366 days and a minute).
_MAX_AHEAD_MS = 366 * 24 * 3600 * 1000 + 60_000


@dataclass(frozen=True)
class Ran:
    """A delivery's end: its completion, the outcome to count (None: not
    ended, e.g. put on the schedule), the service to count it under and the
    failed attempt to record."""

    completion: Completion
    outcome: str | None
    failure: Failure | None = None


#: What ``json.dumps`` raises for a value that is no JSON.
_UNWRITABLE = (ValueError, TypeError, RecursionError, UnicodeEncodeError)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def ok_reply(call_id: str, value: Any, fingerprint: str | None) -> bytes:
    out: dict[str, Any] = {"v": 1, "id": call_id}
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    out["ok"] = value
    return _json(out)


def holder_reply(call_id: str, holder: str, fingerprint: str) -> bytes:
    return _json({"v": 1, "id": call_id, "fingerprint": fingerprint, "holder": holder})


async def run_delivery(shared: Shared, d: Delivery) -> Ran:
    """Checks and runs one delivery; never raises for what the message or
    the handler did."""
    s = shared.settings
    checked = decode(d.payload, shared.keys, s.max_message_bytes)
    if isinstance(checked, Refusal):
        log.warning("dead-lettering a message of %s (%s): %s", d.queue, d.entry_id,
                    checked.reason)
        # Parked ahead unchecked, it may hold a slot the hand-on reserved
        # for it.
        groups.release_refused(shared, d)
        to, body = checked.reply if checked.reply else (None, None)
        return Ran(
            Completion(reply=body, reply_to=to, dead_letter=checked.reason,
                       inbox_ttl_ms=s.inbox_ttl_ms),
            "dead",
        )
    try:
        return await _run_message(shared, d, checked)
    finally:
        if checked.group is not None:
            # However the job ended, its slot (if it took one) goes back
            # and the key's waiting calls move on.
            groups.release(shared, d)


async def _run_message(shared: Shared, d: Delivery, msg: Message) -> Ran:
    s = shared.settings
    service_name, dot, job_name = msg.job.partition(".")
    if not dot:
        service_name, job_name = "", msg.job
    jobs = shared.services.get(service_name) if service_name == d.service else None
    mounted: Mounted | None = jobs.get(job_name) if jobs is not None else None
    spec = mounted.binding.spec if mounted else None
    max_attempts = max(
        1,
        msg.max_attempts
        if msg.max_attempts is not None
        else (spec.max_attempts if spec and spec.max_attempts else s.max_attempts),
    )
    attempt = msg.attempt + d.deliveries - 1
    keep_ttl = result_ttl_ms(msg)
    keep = (msg.id, keep_ttl) if keep_ttl > 0 else None
    fp = fingerprint_value(msg.job, msg.params) if msg.idempotency_key is not None else None

    def answered(body: bytes) -> Completion:
        return Completion(reply=body, reply_to=msg.reply_to, keep_result=keep,
                          inbox_ttl_ms=s.inbox_ttl_ms)

    def fail(kind: str, message: str, data: Any = None, has_data: bool = False) -> Completion:
        return answered(error_reply(msg.id, kind, message, data, has_data=has_data,
                                    fingerprint=fp))

    def dead_letter(reason: str, by: tuple[str, int | None] | None = None) -> Completion:
        c = fail("dead_lettered", reason)
        return Completion(reply=c.reply, reply_to=c.reply_to, keep_result=c.keep_result,
                          inbox_ttl_ms=c.inbox_ttl_ms, dead_letter=reason, dead_letter_by=by)

    # 1. cancelled
    if d.cancelled or shared.cancels.is_cancelled(msg.id) or await _forgot_cancelled(
        shared, d.queue, msg.id
    ):
        log.info("skipping cancelled job %s (%s)", msg.job, msg.id)
        groups.release_reserved(shared, d, msg)
        return Ran(fail("cancelled", "the call was cancelled before it ran"), "cancelled")
    # 2. out of attempts
    if attempt > max_attempts:
        reason = (
            f"delivered {attempt} times, over the limit of {max_attempts} (its workers died or "
            "stalled past the visibility timeout)"
        )
        log.warning("%s; dead-lettering %s", reason, msg.id)
        groups.release_reserved(shared, d, msg)
        return Ran(dead_letter(reason), "dead")
    # 3. not due
    if msg.run_at_ms is not None:
        now = shared.clock.now_ms()
        if msg.run_at_ms > now:
            if msg.run_at_ms - now > _MAX_AHEAD_MS:
                reason = (
                    f"`run_at_ms` {msg.run_at_ms} is more than 366 days after now ({now} on the "
                    "broker's clock): it would never run"
                )
                return Ran(dead_letter(reason), "dead")
            delay = max(1, msg.run_at_ms - now)
            return Ran(
                Completion(requeue=d.payload, requeue_after=(msg.id, delay),
                           requeue_at_ms=msg.run_at_ms),
                None,
            )
    entry = entry_ms(d.entry_id)
    # 4. group slot: taken, or the message is parked (off the stream and on
    # its key's waiting list already: the ack that ends the delivery finds
    # nothing left to ack)
    admitted = await groups.admit(shared, d, msg)
    if admitted == "parked":
        return Ran(Completion(), None)
    if admitted == "later":
        return Ran(_again(msg, d.payload, entry, groups.TAKE_RETRY_MS), None)
    # 5. deadline
    started = started_ms(entry, msg.sent_ms, msg.run_at_ms)
    left = time_left_ms(shared.clock, msg.timeout_ms, started, msg.deadline_ms)
    if left is not None and left <= 0:
        return Ran(
            fail("deadline_exceeded", "the deadline passed before a worker could start the job"),
            "timeout",
        )
    # 6. service and job
    if jobs is None:
        return Ran(
            fail("unknown_job", f"no service `{service_name}` is mounted on this worker"),
            "unknown_job",
        )
    if mounted is None:
        back = hand_back(msg.handoffs, left, service_name, job_name)
        if isinstance(back, str):
            return Ran(fail("unknown_job", back), "unknown_job")
        nxt = _copy(msg)
        nxt.handoffs += 1
        due_left = None if left is None else max(0, left - TRIP_ALLOWANCE_MS)
        return Ran(_requeue(nxt, due_left, back), None)
    # 7. rate limit (before the key is claimed, as a delayed call's step is)
    if shared.rates is not None:
        gated = await gate(shared.redis, shared.keys, shared.rates, service_name, job_name,
                           msg.id, left)
        if gated.what == "wait":
            again = _copy(msg)
            payload = d.payload
            if msg.sent_ms is None and entry is not None:
                again.sent_ms = entry
                payload = again.encode()
            return Ran(Completion(requeue=payload, requeue_after=(msg.id, gated.wait_ms)), None)
        if gated.what == "too_late":
            return Ran(fail("deadline_exceeded", gated.reason), "timeout")
        if gated.what == "refuse":
            return Ran(dead_letter(gated.reason), "dead")
    # 8. idempotency key
    if msg.idempotency_key is not None:
        if fp is None:
            return Ran(dead_letter("the parameters are not JSON"), "dead")
        claimed = await claim(shared.redis, shared.keys, d.queue, msg, fp, d.deliveries, left)
        if claimed.what == "later":
            again = _copy(msg)
            payload = d.payload
            if msg.sent_ms is None and entry is not None:
                again.sent_ms = entry
                payload = again.encode()
            return Ran(Completion(requeue=payload, requeue_after=(msg.id, CLAIM_RETRY_MS)), None)
        if claimed.what == "refuse":
            return Ran(dead_letter(claimed.reason), "dead")
        if claimed.what == "held":
            return Ran(answered(holder_reply(msg.id, claimed.holder, fp)), None)
        if claimed.what == "copy":
            if msg.reply_to is None:
                return Ran(Completion(), None)
            return Ran(
                Completion(reply=holder_reply(msg.id, msg.id, fp), reply_to=msg.reply_to,
                           inbox_ttl_ms=s.inbox_ttl_ms),
                None,
            )
        if claimed.what == "conflict":
            key = msg.idempotency_key
            from .decode import rust_debug

            message = (
                f"idempotency key {rust_debug(key)} is held by another call with other parameters "
                "(or another job); this call did not run"
            )
            return Ran(fail("idempotency_conflict", message, {"key": key}, True), "failed")
    # 9. run
    return await _run_handler(shared, d, msg, mounted, attempt, max_attempts, left, fail,
                              dead_letter, answered, fp)


def _again(msg: Message, payload: bytes, entry: int | None, delay_ms: int) -> Completion:
    """The message as it is, back on the schedule after ``delay_ms`` (not
    an attempt, not answered), its time still counted from its entry's
    timestamp (``sent_ms`` set from it when the sender gave none)."""
    if msg.sent_ms is None and entry is not None:
        again = _copy(msg)
        again.sent_ms = entry
        payload = again.encode()
    return Completion(requeue=payload, requeue_after=(msg.id, delay_ms))


def _copy(msg: Message) -> Message:
    import dataclasses

    return dataclasses.replace(msg, meta=dict(msg.meta))


def _requeue(nxt: Message, left_at_now: int | None, delay_ms: int) -> Completion:
    """A new entry of ``nxt`` (a retry, a hand-back), due after ``delay_ms``:
    its ``timeout_ms`` the time left then; ``sent_ms`` and ``run_at_ms`` dropped."""
    if left_at_now is not None and nxt.timeout_ms is not None:
        nxt.timeout_ms = max(0, left_at_now - delay_ms)
    nxt.sent_ms = None
    nxt.run_at_ms = None
    after = (nxt.id, delay_ms) if delay_ms > 0 else None
    return Completion(requeue=nxt.encode(), requeue_after=after)


async def _forgot_cancelled(shared: Shared, queue: str, call_id: str) -> bool:
    """Whether Redis says call ``call_id`` is cancelled, asked only when what
    the polls said may not be the whole answer: this worker had to forget
    cancellations, or its last poll of the queue is old (an idle poll backed
    off: ``idle_polls.py``)."""
    if not shared.cancels.overflowed(shared.clock.now_ms()) and not shared.idle_polls.is_stale(queue):
        return False
    try:
        at = await shared.redis.zscore(shared.keys.cancelled(queue), call_id)
    except Exception as e:  # noqa: BLE001 - runs it
        log.warning("could not ask whether call %s is cancelled (%s); running it", call_id, e)
        return False
    if at is None:
        return False
    shared.cancels.note(call_id, int(at))
    return True


class _Outcome:
    """What a handler's run came to."""

    def __init__(self, kind: str, value: Any = None, message: str = "", retry: bool = False,
                 after_ms: int | None = None) -> None:
        self.kind = kind  # ok | app | failed | bad_request
        self.value = value
        # It quotes the handler (an exception's text): what UTF-8 cannot
        # carry would make the reply, the failure or the dead letter unwritable.
        self.message = message.encode("utf-8", "replace").decode("utf-8")
        self.retry = retry
        self.after_ms = after_ms


def _judge(job: str, mounted: Mounted, result: Any, error: BaseException | None) -> _Outcome:
    if error is None:
        try:
            return _Outcome("ok", mounted.binding.spec.encode_result(result))
        except EncodeError as e:
            return _Outcome("failed", message=f"the handler's result does not encode: {e}")
        except Exception as e:  # noqa: BLE001 - a broken encoder is the handler's
            return _Outcome("failed", message=f"the handler's result does not encode: {e}")
    if isinstance(error, AppError):
        try:
            return _Outcome("app", error.error_json())
        except Exception as e:  # noqa: BLE001
            return _Outcome("failed", message=f"the application error does not encode: {e}")
    if isinstance(error, Retry):
        after = None if error.after is None else max(0, int(error.after * 1000))
        return _Outcome("failed", message=error.message, retry=True, after_ms=after)
    if isinstance(error, Fatal):
        return _Outcome("failed", message=error.message)
    if isinstance(error, DecodeError):
        named = error if error.job else error.in_job(job)
        return _Outcome("bad_request", message=str(named))
    return _Outcome("failed", message=f"{type(error).__name__}: {error}")


async def _run_handler(shared: Shared, d: Delivery, msg: Message, mounted: Mounted,
                       attempt: int, max_attempts: int, left: int | None, fail: Any,
                       dead_letter: Any, answered: Any, fp: str | None) -> Ran:
    s = shared.settings
    loop = asyncio.get_running_loop()
    if not mounted.untyped and not isinstance(msg.params, dict):
        return Ran(
            fail("bad_request", f"{msg.job}: `params`: the parameters of a job are a JSON object"),
            "failed",
        )
    watch = shared.cancels.watch(msg.id)
    kept_ms = result_ttl_ms(msg)

    def report(fraction: float, done: int | None, total: int | None, message: str,
               left_s: float | None) -> None:
        left = None if left_s is None else int(left_s * 1000)
        shared.progress.report(msg.id, attempt, ttl_ms(left, kept_ms), fraction, done, total,
                               message)

    ctx = Context(
        call_id=msg.id,
        job=msg.job,
        attempt=attempt,
        max_attempts=max_attempts,
        metadata=msg.meta,
        deadline=None if left is None else time.time() + left / 1000,
        cancelled=watch[0],
        reporter=report,
    )
    begun = time.monotonic()
    due = None if left is None else loop.time() + left / 1000
    binding = mounted.binding
    metrics = shared.metrics
    if metrics is not None:
        metrics.started(d.service, msg.job)
    if binding.is_async:
        handler: asyncio.Future[Any] = asyncio.ensure_future(_call_async(binding.run, ctx, msg.params))
    else:
        handler = asyncio.ensure_future(
            loop.run_in_executor(shared.executor, binding.run, ctx, msg.params)
        )
    abandoned = asyncio.ensure_future(_abandoned(watch[1], s.cancel_grace_s))
    try:
        done, _ = await asyncio.wait(
            {handler, abandoned},
            timeout=None if left is None else left / 1000,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        abandoned.cancel()
        shared.cancels.unwatch(msg.id, watch)
        shared.progress.finish(msg.id)
    ran_ms = int((time.monotonic() - begun) * 1000)
    if metrics is not None:
        metrics.finished(d.service, msg.job, ran_ms / 1000)
    cancelled = shared.cancels.is_cancelled(msg.id)

    def failure(kind: str, message: str, retried: bool) -> Failure:
        return Failure(msg.id, msg.job, attempt, kind, cut_message(message), s.consumer, ran_ms,
                       retried)

    if handler not in done:
        handler.cancel()
        watch[0].set()  # tells a synchronous handler to stop
        if abandoned in done:
            grace = _duration_text(s.cancel_grace_s)
            return Ran(
                fail("cancelled", "the call was cancelled while running; the handler did not stop "
                     f"within the grace period of {grace} and was dropped"),
                "cancelled",
            )
        return Ran(
            fail("deadline_exceeded",
                 "the deadline passed while the job was running; it was cancelled"),
            "timeout",
            failure("deadline_exceeded", "the deadline passed while the job was running", False),
        )
    error = handler.exception() if not handler.cancelled() else asyncio.CancelledError()
    result = None if error is not None else handler.result()
    out = _judge(msg.job, mounted, result, error)
    if error is not None and not isinstance(error, (AppError, Retry, Fatal, DecodeError)):
        log.warning("the handler of %s (%s) failed: %s: %s", msg.job, msg.id,
                    type(error).__name__, error)
    if cancelled and out.kind != "ok":
        return Ran(fail("cancelled", "the call was cancelled while running"), "cancelled")
    if out.kind == "ok":
        if msg.reply_to is None and answered(b"").keep_result is None:
            return Ran(Completion(), "succeeded")
        try:
            body = ok_reply(msg.id, out.value, fp)
        except _UNWRITABLE as e:
            # An untyped handler's value that is no JSON (NaN, a lone
            # surrogate, too deep...): answered `handler`, never left leased.
            message = f"the handler's result does not encode: {type(e).__name__}: {e}"
            return Ran(fail("handler", message), "failed", failure("handler", message, False))
        return Ran(answered(body), "succeeded")
    if out.kind == "app":
        try:
            data_text = _json(out.value).decode()
        except _UNWRITABLE as e:
            message = f"the application error does not encode: {type(e).__name__}: {e}"
            return Ran(fail("handler", message), "failed", failure("handler", message, False))
        return Ran(
            fail("app", "the job returned its application error", out.value, True),
            "failed",
            failure("app", data_text, False),
        )
    if out.kind == "bad_request":
        return Ran(fail("bad_request", out.message), "failed")
    if out.retry and attempt < max_attempts:
        backoff = _backoff_of(shared, mounted)
        delay = out.after_ms if out.after_ms is not None else backoff.delay_ms(attempt)
        now_left = None if due is None else max(0, int((due - loop.time()) * 1000))
        if now_left is not None and now_left <= delay:
            message = (
                f"{out.message} (attempt {attempt} of {max_attempts}; the next would start after "
                "the call's deadline)"
            )
            return Ran(fail("handler", message), "failed", failure("handler", out.message, False))
        nxt = _copy(msg)
        nxt.attempt = attempt + 1
        return Ran(_requeue(nxt, now_left, delay), "retried",
                   failure("handler", out.message, True))
    if out.retry:
        reason = f"failed on attempt {attempt} of {max_attempts}: {out.message}"
        return Ran(dead_letter(reason, (s.consumer, ran_ms)), "dead")
    return Ran(fail("handler", out.message), "failed", failure("handler", out.message, False))


def _backoff_of(shared: Shared, mounted: Mounted) -> Backoff:
    text = mounted.binding.spec.backoff
    if text:
        try:
            return parse_backoff(text)
        except ValueError:
            log.warning("job %s has an unreadable backoff %r; using the worker's",
                        mounted.binding.spec.job, text)
    return shared.settings.backoff


async def _call_async(run: Any, ctx: Context, params: Any) -> Any:
    out = run(ctx, params)
    if inspect.isawaitable(out):
        return await out
    return out


async def _abandoned(cancelled: asyncio.Event, grace_s: float) -> None:
    await cancelled.wait()
    await asyncio.sleep(grace_s)


def _duration_text(seconds: float) -> str:
    # Rust's Debug of a Duration, for the common whole values.
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    ms = seconds * 1000
    if ms == int(ms):
        return f"{int(ms)}ms"
    return f"{seconds}s"
