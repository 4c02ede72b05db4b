"""Saying the worker is alive: its beat (``SET P:worker:{id} <json> PX
ttl``), its place in each service's registry (one per service, however
many shards it has), and the operator's control
(``quiet`` or ``stop``) read back with every beat; and the janitor that
forgets consumers of workers that are gone (docs/PROTOCOL.md, "Workers"
and "Consumer housekeeping")."""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

from .. import scripts
from ..keys import GROUP
from .shared import Shared

log = logging.getLogger("rpc_runtime.worker")

DAY_MS = 86_400_000
FORGET_AFTER_MS = DAY_MS


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def beat_json(shared: Shared, started_ms: int, state: str, in_flight: int) -> str:
    s = shared.settings
    host = socket.gethostname()[:255] or "localhost"
    beat: dict[str, Any] = {
        "v": 1,
        "id": s.consumer,
        "host": host,
        "pid": os.getpid(),
        "version": s.version[:255],
        "services": sorted(shared.services),
        "concurrency": s.concurrency,
        "in_flight": in_flight,
        "started_ms": started_ms,
        "beat_ms": max(started_ms, shared.clock.now_ms()),
        "every_ms": s.beat_every_ms,
        "ttl_ms": s.beat_ttl_ms,
    }
    rss = rss_bytes()
    if rss is not None:
        beat["rss_bytes"] = rss
    beat["state"] = state
    return json.dumps(beat, ensure_ascii=False, separators=(",", ":"))


async def beat_once(shared: Shared, started_ms: int, state: str) -> str | None:
    """Writes one beat; returns the operator's control (``quiet``/``stop``)."""
    s = shared.settings
    k = shared.keys
    body = beat_json(shared, started_ms, state, len(shared.leases))
    beat_ms = json.loads(body)["beat_ms"]
    async with shared.redis.pipeline(transaction=False) as pipe:
        pipe.set(k.worker(s.consumer), body, px=s.beat_ttl_ms)
        for service in sorted(shared.services):
            reg = k.workers(service)
            pipe.zadd(reg, {s.consumer: beat_ms})
            pipe.zremrangebyscore(reg, "-inf", f"({beat_ms - DAY_MS}")
            pipe.zremrangebyrank(reg, 0, -1001)
            pipe.pexpire(reg, DAY_MS)
        pipe.get(k.worker_control(s.consumer))
        answers = await pipe.execute()
    control = answers[-1]
    if isinstance(control, bytes):
        control = control.decode("utf-8", "replace")
    return control if control in ("quiet", "stop") else None


async def unregister(shared: Shared) -> None:
    await shared.redis.delete(shared.keys.worker(shared.settings.consumer))


async def forget_consumers(shared: Shared, idle_ms: int, need_gone_beat: bool) -> int:
    """Removes consumers idle past ``idle_ms`` with no pending entries (and,
    with ``need_gone_beat``, no live beat). Returns how many went."""
    forgotten = 0
    streams = [shared.keys.jobs_at(queue, lane) for queue in list(shared.queues)
               for lane in shared.lanes.of(queue)]
    for key in streams:
        try:
            consumers = await shared.redis.xinfo_consumers(key, GROUP)
        except Exception as e:  # noqa: BLE001 - no group yet
            log.debug("XINFO CONSUMERS %s: %s", key, e)
            continue
        for c in consumers:
            name = c.get("name")
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name == shared.settings.consumer:
                continue
            if int(c.get("pending", 0)) > 0 or int(c.get("idle", 0)) <= idle_ms:
                continue
            if need_gone_beat:
                alive = await shared.redis.getrange(shared.keys.worker(name), 0, 0)
                if alive:
                    continue
            try:
                # Checked again in one step with the delete: a worker that
                # came back may have read a job since the listing, and
                # DELCONSUMER would drop that lease (forget_consumer.lua).
                gone = await scripts.forget_consumer().run(shared.redis, [key], [GROUP, name, idle_ms])
                forgotten += int(gone == 1)
            except Exception as e:  # noqa: BLE001 - a janitor's miss is harmless
                log.debug("forget_consumer.lua %s %s: %s", key, name, e)
    return forgotten
