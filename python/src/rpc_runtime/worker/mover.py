"""The intake's mover: per service, on a connection of its own, ``BLMOVE``
intake -> moving then ``intake.lua`` in one pipeline, so restricted clients'
``RPUSH``ed calls and cancellations reach the jobs stream
(docs/PROTOCOL.md, "The intake")."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import NoScriptError, ResponseError

from .. import limits, scripts
from ..keys import Keys

log = logging.getLogger("rpc_runtime.worker")

MAX_ELEMENTS = 1000
BYTE_BUDGET = 1_048_576
WAIT_S = 1


async def move_once(conn: aredis.Redis, keys: Keys, service: str, max_message_bytes: int,
                    wait_s: int = WAIT_S) -> Any:
    """One turn: waits up to ``wait_s`` for an element, then moves a batch.
    Returns the script's answer ``[moved, cancels, refused, error, dead]``."""
    script = scripts.intake()
    k = keys
    s = service
    script_keys = [k.moving(s), k.intake(s), k.jobs(s), k.schedule(s), k.scheduled(s),
                   k.cancelled(s), k.dead(s)]
    args: list[Any] = [MAX_ELEMENTS, BYTE_BUDGET, limits.CANCEL_MEMORY_MS, limits.MAX_ID_BYTES,
            max_message_bytes, limits.DEAD_LETTER_CAP]
    async with conn.pipeline(transaction=False) as pipe:
        pipe.blmove(k.intake(s), k.moving(s), wait_s, "LEFT", "RIGHT")
        pipe.evalsha(script.sha1, len(script_keys), *script_keys, *args)
        answers = await pipe.execute(raise_on_error=False)
    moved = answers[1]
    if isinstance(moved, NoScriptError) or (
        isinstance(moved, ResponseError) and str(moved).startswith("NOSCRIPT")
    ):
        await conn.script_load(script.source)
        return None
    if isinstance(moved, Exception):
        raise moved
    return moved


async def run_mover(conn: aredis.Redis, keys: Keys, service: str, max_message_bytes: int,
                    stop: asyncio.Event) -> None:
    """Moves ``service``'s intake until ``stop`` is set."""
    delay = 0.1
    while not stop.is_set():
        try:
            answer = await move_once(conn, keys, service, max_message_bytes)
            delay = 0.1
            if isinstance(answer, list) and len(answer) > 3 and answer[3]:
                error = answer[3].decode() if isinstance(answer[3], bytes) else answer[3]
                log.warning("moving the intake of %s: Redis refused: %s", service, error)
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - Redis away: try again
            log.warning("moving the intake of %s failed: %s", service, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
