"""Per-key concurrency, the worker's side (docs/PROTOCOL.md, "Per-key
concurrency"): a job message with a ``group`` key runs only while it holds
one of its key's slots, at most the job's limit across the fleet. A message
that finds no slot free is parked by ``group_admit.lua`` (taken off the
stream and appended to the key's waiting list in one step) and its delivery
ends without running; when a keyed job ends, however it ends, its slot is
given back by ``group_release.lua`` and the key's oldest waiting messages
move back onto the stream, each onto the lane of its priority.

The limit is the job's as this worker is configured (``Worker(group_limits=
{"Svc.job": K})``), else its schema's ``#[group_limit]``
(``JobSpec.group_limit``), else 1: the message carries only the key, so no
sender can raise it. Slots lapse after the visibility timeout unless
renewed, so the slot of a worker that died comes back with its job's lease;
the lease renewer renews the slots of running jobs (:func:`renew`) and the
lifecycle poll hands lapsed slots on to waiting messages (:func:`sweep`)
when no completion comes to do it. The mirror of
``rpc-runtime/src/worker/group_admit.rs`` and
``backend/redis/group_slots.rs``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Literal

from .. import scripts
from ..keys import GROUP, is_group_key
from .complete import Delivery
from .decode import Message
from .group_limits import Held
from .shared import Shared

log = logging.getLogger("rpc_runtime.worker")

#: How long a keyed call whose slot could not be asked for (Redis failed)
#: waits on the schedule before a worker tries again, ms.
TAKE_RETRY_MS = 1000
#: How often the lifecycle poll sweeps a queue's groups while this worker
#: has seen keyed calls of it within :data:`KEYED_LATELY_S`, and how many
#: groups it looks at each time. Otherwise a queue is swept once per
#: visibility timeout (at least :data:`IDLE_SWEEP_MIN_S`): a fleet that
#: serves no keyed calls pays a read per queue that rarely, and one whose
#: every slot holder died still has its parked calls handed on.
SWEEP_EVERY_S = 1.0
SWEEP_GROUPS = 32
KEYED_LATELY_S = 60.0
IDLE_SWEEP_MIN_S = 5.0

Step = Literal["run", "parked", "later"]


def _split_job(job: str) -> tuple[str, str]:
    service, dot, name = job.partition(".")
    return (service, name) if dot else ("", job)


def _schema_limit(shared: Shared, service: str, job: str) -> int | None:
    """The schema's ``#[group_limit]`` of ``service.job``, if mounted here."""
    mounted = shared.services.get(service, {}).get(job)
    return mounted.binding.spec.group_limit if mounted is not None else None


def _limit(shared: Shared, service: str, job: str) -> int:
    return shared.groups.limit_of(service, job, _schema_limit(shared, service, job))


def _keys(shared: Shared, queue: str, job: str, key: str, jobs: str) -> list[str]:
    k = shared.keys
    return [k.group_running(queue, job, key), k.group_waiting(queue, job, key),
            k.groups_waiting(queue), jobs]


def _saw_keyed(shared: Shared, queue: str) -> None:
    shared.groups.keyed_seen[queue] = time.monotonic()


def _note_reset(reset: int, queue: str, job: str, key: str) -> None:
    if reset > 0:
        log.warning("deleted %d group keys of the wrong type of %s (job %s, key %r; garbage "
                    "written by someone else); the key's slots start over", reset, queue, job, key)


def _ints(answer: Any, script: str) -> list[int]:
    if not isinstance(answer, list) or not all(isinstance(v, int) for v in answer[:3]):
        raise ValueError(f"unexpected answer to {script}: {answer!r}")
    return [int(v) for v in answer[:3]]


async def admit(shared: Shared, d: Delivery, msg: Message) -> Step:
    """Takes a slot of ``msg``'s group key (step 4.4), or parks the message:
    ``run`` (it holds a slot, or has no key), ``parked`` (its delivery ends
    without a completion of its own: the script acked it), ``later`` (Redis
    could not be asked: onto the schedule for :data:`TAKE_RETRY_MS`)."""
    key = msg.group
    if key is None:
        return "run"
    _saw_keyed(shared, d.queue)
    service, job = _split_job(msg.job)
    limit = _limit(shared, service, job)
    lease = max(1, shared.settings.visibility_timeout_ms)
    try:
        answer = await scripts.group_admit().run(
            shared.redis,
            _keys(shared, d.queue, job, key, shared.keys.jobs_at(d.queue, d.lane)),
            [msg.id, limit, lease, GROUP, d.entry_id, d.payload, f"{job}:{key}"],
        )
        admitted, reset, _moved = _ints(answer, "group_admit.lua")
    except Exception as e:  # noqa: BLE001 - Redis away or refusing: try again later
        log.warning("could not take a slot of the group key of call %s (%s); putting the call "
                    "back on the schedule", msg.id, e)
        return "later"
    _note_reset(reset, d.queue, job, key)
    if admitted == 1:
        shared.groups.held[(d.queue, d.entry_id)] = Held(msg.id, job, key, limit)
        return "run"
    log.debug("every slot of group key %r of %s is taken (limit %d); call %s parked", key,
              msg.job, limit, msg.id)
    return "parked"


def release(shared: Shared, d: Delivery) -> None:
    """Gives back the slot ``d``'s job held, if it held one, moving the
    key's waiting messages on: on a task of its own beside the job's
    completion (a stopping worker waits for it as for a completion). A
    failure is logged; the slot then lapses after the visibility timeout
    and the sweep hands it on."""
    held = shared.groups.held.pop((d.queue, d.entry_id), None)
    if held is None:
        return
    task = asyncio.ensure_future(_give_back(shared, d.queue, held))
    shared.tasks.add(task)
    task.add_done_callback(shared.tasks.discard)


def release_reserved(shared: Shared, d: Delivery, msg: Message) -> None:
    """Gives back the slot a keyed message may hold without having taken it
    here: a message moved back from its key's waiting list reserved a slot
    as it moved, and one that ends before it reaches :func:`admit`
    (cancelled while it waited, out of attempts) would leave the
    reservation to block the key until it lapsed."""
    key = msg.group
    if key is None:
        return
    _saw_keyed(shared, d.queue)
    service, job = _split_job(msg.job)
    shared.groups.held[(d.queue, d.entry_id)] = Held(msg.id, job, key,
                                                     _limit(shared, service, job))
    release(shared, d)


#: The largest message parking ahead moves (``park_ahead`` in
#: group_admit.lua decodes nothing larger).
PARKED_AHEAD_MAX_BYTES = 16 * 1024


def release_refused(shared: Shared, d: Delivery) -> None:
    """Gives back the slot a keyed message the checks refused (unreadable,
    a ``reply_to`` that is no inbox, another protocol version) may hold:
    parking ahead moves calls no worker has checked onto their key's
    waiting list, and the hand-on that moves one back reserves a slot under
    its id, which would block the key until it lapsed. The message is read
    as the script read it: any JSON object with a string ``id``, a ``job``
    of this queue's service and a valid ``group`` key (a member given twice
    counts as its last), whatever else it holds."""
    if len(d.payload) > PARKED_AHEAD_MAX_BYTES:
        return
    try:
        fields = json.loads(d.payload)
    except ValueError:
        return
    if not isinstance(fields, dict):
        return
    call_id, name, key = fields.get("id"), fields.get("job"), fields.get("group")
    if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(key, str)):
        return
    service, dot, job = name.partition(".")
    well_formed = (
        dot == "."
        and job != ""
        and all(c.isascii() and (c.isalnum() or c == "_") for c in job)
        and service == d.service
        and is_group_key(key)
        and call_id != ""
    )
    if not well_formed:
        return
    _saw_keyed(shared, d.queue)
    shared.groups.held[(d.queue, d.entry_id)] = Held(call_id, job, key,
                                                     _limit(shared, service, job))
    release(shared, d)


async def _give_back(shared: Shared, queue: str, held: Held) -> None:
    try:
        await _release_script(shared, queue, held.id, held.job, held.key, held.limit)
    except Exception as e:  # noqa: BLE001 - the slot lapses instead
        log.warning("could not give back the slot of call %s of group key %r (%s); it lapses "
                    "after the visibility timeout", held.id, held.key, e)


async def _release_script(shared: Shared, queue: str, call_id: str, job: str, key: str,
                          limit: int) -> int:
    """``group_release.lua`` for one group: the messages it moved."""
    answer = await scripts.group_release().run(
        shared.redis,
        _keys(shared, queue, job, key, shared.keys.jobs(queue)),
        [call_id, limit, max(1, shared.settings.visibility_timeout_ms), f"{job}:{key}"],
    )
    moved, reset = _ints(answer, "group_release.lua")[:2]
    _note_reset(reset, queue, job, key)
    return moved


async def renew(shared: Shared) -> None:
    """Renews the slots of this worker's running keyed jobs with their
    leases: ``ZADD running XX <now + lease> <id>`` (XX: a slot given back,
    or lapsed and handed on, is not taken again by a renewal)."""
    held = list(shared.groups.held.items())
    if not held:
        return
    until = shared.clock.now_ms() + shared.settings.visibility_timeout_ms
    pipe = shared.redis.pipeline(transaction=False)
    for (queue, _entry), h in held:
        pipe.zadd(shared.keys.group_running(queue, h.job, h.key), {h.id: until}, xx=True)
    await pipe.execute(raise_on_error=False)


async def sweep(shared: Shared, queue: str) -> None:
    """Hands lapsed slots of ``queue``'s groups on to their waiting messages
    (a worker that held them died): at most every :data:`SWEEP_EVERY_S`
    while keyed calls of the queue came lately, else once per visibility
    timeout. Never raises."""
    book = shared.groups
    now = time.monotonic()
    keyed_lately = now < book.keyed_seen.get(queue, -KEYED_LATELY_S) + KEYED_LATELY_S
    every = (SWEEP_EVERY_S if keyed_lately
             else max(shared.settings.visibility_timeout_ms / 1000, IDLE_SWEEP_MIN_S))
    last = book.swept.get(queue)
    if last is not None and now < last + every:
        return
    book.swept[queue] = now
    key = shared.keys.groups_waiting(queue)
    try:
        members = await shared.redis.srandmember(key, SWEEP_GROUPS)  # type: ignore[misc]
    except Exception as e:  # noqa: BLE001 - WRONGTYPE (the next release resets it), Redis away
        log.debug("could not read the groups with waiting calls of %s: %s", queue, e)
        return
    service = shared.queues.get(queue, queue)
    garbage: list[Any] = []
    for raw in members or []:
        member = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        job, colon, group_key = member.partition(":")
        if not colon or not job or not is_group_key(group_key):
            # Not a member a worker writes: dropped, so it never crowds
            # out the real ones.
            garbage.append(raw)
            continue
        try:
            moved = await _release_script(shared, queue, "", job, group_key,
                                          _limit(shared, service, job))
        except Exception as e:  # noqa: BLE001 - next sweep
            log.debug("could not hand lapsed slots of %s on: %s", member, e)
            continue
        if moved:
            log.debug("lapsed slots of group %s of %s handed on to %d waiting calls", member,
                      queue, moved)
    if garbage:
        try:
            await shared.redis.srem(key, *garbage)  # type: ignore[misc]
        except Exception as e:  # noqa: BLE001
            log.debug("could not drop garbage members of %s: %s", key, e)
