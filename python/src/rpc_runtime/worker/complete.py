"""Ending a job: its reply, kept result, retry, schedule or dead letter,
then its ack, as one call of ``complete.lua`` (or ``reply_and_ack.lua`` for
the common case), each write checked before the next (docs/PROTOCOL.md,
"Taking and running jobs", step 5).

A transient refusal (the connection, ``LOADING``, ``OOM``...) is sent again
with backoff for up to 30 s, then the job is left leased to be reclaimed. A
permanent one (``WRONGTYPE``, ``NOPERM``, ``ERR``...) ends the job once
instead: dead-lettered with the reason, its result kept where that still
can be, and acked; a refused dead letter or ack leaves it leased. The
mirror of ``rpc-runtime/src/worker/completion.rs`` and
``backend/redis/completion.rs``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import limits, scripts
from ..keys import GROUP, Keys
from ..priority import DEFAULT as DEFAULT_PRIORITY

log = logging.getLogger("rpc_runtime.worker")

PATIENCE_S = 30.0
_FALLBACKS = 2
_TRANSIENT = frozenset(
    {"LOADING", "BUSY", "TRYAGAIN", "OOM", "MASTERDOWN", "CLUSTERDOWN", "READONLY",
     "NOREPLICAS", "NOSCRIPT", "MOVED", "ASK"}
)  # fmt: skip
_STEP_NAMES = {
    "R": "writing the reply",
    "K": "keeping the result",
    "Q": "queueing the retry",
    "S": "queueing the retry",
    "D": "writing the dead letter",
    "A": "acking the job",
}


@dataclass(frozen=True)
class Delivery:
    """One entry handed to this worker."""

    #: The service whose job it is.
    service: str
    entry_id: str
    payload: bytes
    deliveries: int = 1
    cancelled: bool = False
    #: The queue it was read from: the service's own (shard 0) or one of its
    #: shards' (``S~k``). Every key of the job's end is this queue's: a retry
    #: comes back to the same shard, a dead letter stays on it.
    queue: str = ""
    #: The lane it was read from (docs/PROTOCOL.md, "Priorities"): its ack,
    #: lease and a retry without delay go to that stream,
    #: ``P:{Q}:jobs:<lane>`` (``P:{Q}:jobs`` for 3).
    lane: int = DEFAULT_PRIORITY

    def __post_init__(self) -> None:
        if not self.queue:
            object.__setattr__(self, "queue", self.service)


@dataclass(frozen=True)
class Completion:
    """How to end one delivery (every part optional)."""

    reply: bytes | None = None
    reply_to: str | None = None
    #: ``(call id, ttl ms)``: keep the reply under ``P:result:{id}``.
    keep_result: tuple[str, int] | None = None
    #: A message to queue again (a retry) or schedule.
    requeue: bytes | None = None
    #: ``(token, delay ms)``: through the schedule; None: straight onto the stream.
    requeue_after: tuple[str, int] | None = None
    requeue_at_ms: int | None = None
    dead_letter: str | None = None
    #: ``(worker, duration ms or None)`` for a dead letter of a job that ran.
    dead_letter_by: tuple[str, int | None] | None = None
    inbox_ttl_ms: int = limits.DEFAULT_INBOX_TTL_MS
    #: Whether to ack (always, unless nothing at all is to be done).
    ack: bool = True


class Transient(Exception):
    """Try again later."""


class Refused(Exception):
    """Refused for good at ``step`` (a plan letter, or None: the whole call)."""

    def __init__(self, step: str | None, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


def plan(keys: Keys, d: Delivery, c: Completion) -> tuple[Any, list[str], list[Any]] | None:
    """The script, KEYS and ARGV that end ``d`` as ``c`` says."""
    # The lane it was read from; a retry through the schedule goes back to
    # the lane its message's `priority` names (poll.lua).
    jobs = keys.jobs_at(d.queue, d.lane)
    if (
        c.reply is not None
        and c.reply_to is not None
        and c.keep_result is None
        and c.requeue is None
        and c.dead_letter is None
        and c.ack
    ):
        return (
            scripts.reply_and_ack(),
            [c.reply_to, jobs],
            [c.reply, str(max(1, c.inbox_ttl_ms)), GROUP, d.entry_id],
        )
    steps = ""
    ks: list[str] = []
    args: list[Any] = [""] * 15
    if c.reply is not None:
        args[1] = c.reply
        if c.reply_to is not None:
            steps += "R"
            ks.append(c.reply_to)
            args[2] = str(max(1, c.inbox_ttl_ms))
        if c.keep_result is not None:
            steps += "K"
            ks.append(keys.result(c.keep_result[0]))
            args[3] = str(max(1, c.keep_result[1]))
    if c.requeue is not None:
        args[4] = c.requeue
        if c.requeue_after is None:
            steps += "Q"
            ks.append(jobs)
        else:
            steps += "S"
            s = d.queue
            ks += [keys.schedule(s), keys.scheduled(s), keys.cancelled(s), jobs, keys.dead(s)]
            args[7] = str(limits.DEAD_LETTER_CAP)
            args[10] = c.requeue_after[0]
            args[11] = str(c.requeue_after[1])
            if c.requeue_at_ms is not None:
                args[12] = str(c.requeue_at_ms)
    if c.dead_letter is not None:
        steps += "D"
        ks.append(keys.dead(d.queue))
        args[5] = c.dead_letter
        args[6] = d.payload
        args[7] = str(limits.DEAD_LETTER_CAP)
        if c.dead_letter_by is not None:
            args[13] = c.dead_letter_by[0]
            if c.dead_letter_by[1] is not None:
                args[14] = str(c.dead_letter_by[1])
    if c.ack:
        steps += "A"
        ks.append(jobs)
        args[8] = GROUP
        args[9] = d.entry_id
    if not steps:
        return None
    args[0] = steps
    return scripts.complete(), ks, args


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def outcome(answer: Any) -> None:
    """Raises what the script's answer says went wrong."""
    if answer == 1 or answer == b"OK" or answer == "OK":
        return
    if isinstance(answer, list):
        step = _text(answer[0]) if answer else ""
        error = _text(answer[1]) if len(answer) > 1 else ""
        code = error.split(" ", 1)[0] if error else ""
        if code in _TRANSIENT:
            raise Transient(f"{_STEP_NAMES.get(step, 'the completion')}: {error}")
        raise Refused(step or None, error)
    raise Transient(f"unexpected answer to the completion script: {answer!r}")


def classify(e: Exception) -> Exception:
    """A Redis error as :class:`Transient` or :class:`Refused`."""
    if isinstance(e, (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)):
        return Transient(str(e))
    if isinstance(e, ResponseError):
        text = str(e)
        code = text.split(" ", 1)[0]
        if code in _TRANSIENT:
            return Transient(text)
        return Refused(None, text)
    return Transient(str(e))


async def send(redis: aredis.Redis, keys: Keys, d: Delivery, c: Completion) -> None:
    """One try at ending ``d``."""
    call = plan(keys, d, c)
    if call is None:
        return
    script, ks, args = call
    try:
        answer = await script.run(redis, ks, args)
    except Exception as e:  # noqa: BLE001 - classified
        raise classify(e) from e
    outcome(answer)


def fallback(d: Delivery, refused: Completion, step: str | None, reason: str) -> Completion | None:
    """What to do instead of a completion Redis refused for good."""
    what = _STEP_NAMES.get(step or "", "the completion")
    if refused.reply_to is not None and step in ("R", None):
        why = f"{what} to `{refused.reply_to}` was refused: {reason}"
    else:
        why = f"{what} was refused: {reason}"
    dead = f"{refused.dead_letter}; then {why}" if refused.dead_letter else why
    if step in ("R", None):
        instead = Completion(
            reply=refused.reply,
            keep_result=refused.keep_result,
            dead_letter=dead,
            dead_letter_by=refused.dead_letter_by,
        )
    elif step in ("K", "Q", "S"):
        instead = Completion(dead_letter=dead, dead_letter_by=refused.dead_letter_by)
    else:
        log.error("%s refused for good: %s; the job %s stays leased", what, reason, d.entry_id)
        return None
    log.warning("%s; dead-lettering the job %s", dead, d.entry_id)
    return instead


async def complete(
    redis: aredis.Redis, keys: Keys, d: Delivery, c: Completion, *, patience: float = PATIENCE_S
) -> bool:
    """Ends ``d``: sent again on transient failures (for ``patience`` s),
    ended once another way on a refusal. True when the job ended as asked,
    False when it fell back (dead-lettered instead) or stays leased."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + patience
    delay = 0.05
    fallbacks = _FALLBACKS
    as_asked = True
    while True:
        try:
            await send(redis, keys, d, c)
            return as_asked
        except Refused as e:
            if fallbacks == 0:
                log.error("Redis refused every way to end job %s (%s); it stays leased",
                          d.entry_id, e.reason)
                return False
            fallbacks -= 1
            instead = fallback(d, c, e.step, e.reason)
            if instead is None:
                return False
            c = instead
            as_asked = False
        except Transient as e:
            if loop.time() + delay >= give_up:
                log.error("could not complete job %s (%s); it stays leased and will be "
                          "redelivered", d.entry_id, e)
                return False
            log.warning("completing job %s failed (%s); retrying", d.entry_id, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def with_changes(c: Completion, **changes: Any) -> Completion:
    return dataclasses.replace(c, **changes)
