"""Claiming a call's idempotency key before it runs (docs/PROTOCOL.md,
"Idempotency keys"): ``SET P:{S}:once:<key> "<id> <fp>" NX PX ttl GET``, and
what its answer decides. The mirror of ``rpc-runtime/src/worker/admit.rs``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aredis

from .. import limits
from ..keys import Keys
from .complete import Refused, classify
from .decode import Message, rust_debug

log = logging.getLogger("rpc_runtime.worker")

#: A claim Redis did not answer through the patience goes back on the
#: schedule for this long.
CLAIM_RETRY_MS = 1_000
CLAIM_PATIENCE_S = 30.0
CLAIM_PAUSE_FIRST_S = 0.1
CLAIM_PAUSE_MAX_S = 4.0


@dataclass(frozen=True)
class Claim:
    """What the claim decided: ``run``, ``later`` (back on the schedule),
    ``refuse`` (dead-letter, ``reason``), ``held`` (a duplicate: ``holder``),
    ``copy`` (a second copy of the holder's own message) or ``conflict``."""

    what: str
    holder: str = ""
    reason: str = ""


def key_ttl_ms(msg: Message) -> int:
    return (
        msg.idempotency_ttl_ms
        if msg.idempotency_ttl_ms is not None
        else limits.DEFAULT_IDEMPOTENCY_TTL_MS
    )


def result_ttl_ms(msg: Message) -> int:
    """How long the reply is kept: asked, and at least the key's TTL."""
    if msg.idempotency_key is not None:
        return max(msg.result_ttl_ms, key_ttl_ms(msg))
    return msg.result_ttl_ms


async def claim(
    redis: aredis.Redis,
    keys: Keys,
    service: str,
    msg: Message,
    fingerprint: str,
    deliveries: int,
    left_ms: int | None,
) -> Claim:
    key = msg.idempotency_key
    if key is None:
        return Claim("run")
    patience = CLAIM_PATIENCE_S if left_ms is None else min(CLAIM_PATIENCE_S, left_ms / 1000)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + patience
    pause = CLAIM_PAUSE_FIRST_S
    tried = False
    value = f"{msg.id} {fingerprint}"
    while True:
        try:
            held = await redis.set(
                keys.once(service, key), value, nx=True, px=key_ttl_ms(msg), get=True
            )
        except Exception as e:  # noqa: BLE001 - classified
            err = classify(e)
            if isinstance(err, Refused):
                return Claim(
                    "refuse",
                    reason=(
                        f"the idempotency key {rust_debug(key)} cannot be claimed: Redis refused "
                        f"it ({err.reason}); the call did not run"
                    ),
                )
            tried = True
            if loop.time() + pause > give_up:
                log.warning("could not claim an idempotency key for %s (%s); putting the call "
                            "back on the schedule", msg.id, e)
                return Claim("later")
            log.warning("could not claim an idempotency key for %s (%s); trying again", msg.id, e)
            await asyncio.sleep(pause)
            pause = min(pause * 2, CLAIM_PAUSE_MAX_S)
            continue
        if held is None:
            return Claim("run")
        text = held.decode("utf-8", "replace") if isinstance(held, bytes) else str(held)
        holder, sep, fp = text.partition(" ")
        if not sep or not holder or fp != fingerprint:
            return Claim("conflict", holder=holder)
        if holder == msg.id:
            if tried or deliveries > 1 or msg.attempt > 1:
                return Claim("run")
            return Claim("copy")
        return Claim("held", holder=holder)
