"""Rate limits on the worker (docs/PROTOCOL.md, "Rate limits", step 4.6 of
"Taking and running jobs"): which limits each mounted job has (the schema's
``#[rate]``, or what the worker was given), and the step a limited job takes
before its handler runs.

The step asks ``rate_limit.lua``, the script the Rust worker runs, on the
same keys: Rust and Python workers given the same limit keep it together. A
call over its limit goes on the schedule until its turn, as it is (not
answered, not an attempt); one whose turn would come after its deadline is
answered ``deadline_exceeded``. A job without a limit sends nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError as RedisTimeoutError

from .. import scripts
from ..keys import Keys
from ..rate import RateLimit, parse_rate
from .shared import Mounted

log = logging.getLogger("rpc_runtime.worker")

#: How long a call waits on the schedule when Redis could not say (ms).
ASK_AGAIN_MS = 1000
#: The longest a call without a deadline may wait for its turn: 366 days (µs).
_LONGEST_US = 366 * 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class Gate:
    """What the step decided: ``start``; ``wait`` ``wait_ms`` on the
    schedule; ``too_late`` (answer ``deadline_exceeded`` with ``reason``);
    ``refuse`` (dead-letter with ``reason``)."""

    what: str
    wait_ms: int = 0
    reason: str = ""


class RateBook:
    """The limits of the mounted jobs: each job's own, then its service's."""

    def __init__(self, services: Mapping[str, Mapping[str, Mounted]],
                 overrides: Mapping[str, RateLimit]) -> None:
        self._service: dict[str, RateLimit] = {}
        self._jobs: dict[tuple[str, str], RateLimit] = {}
        for service, jobs in services.items():
            for name, mounted in jobs.items():
                spec = mounted.binding.spec
                if spec.rate is not None:
                    self._jobs[(service, name)] = parse_rate(spec.rate)
                if spec.service_rate is not None:
                    self._service[service] = parse_rate(spec.service_rate)
        for target, rate in overrides.items():
            service, dot, job = target.partition(".")
            if service not in services:
                raise ValueError(f"rate limit for `{target}`: no service `{service}` is mounted on this worker")
            if not dot:
                self._service[service] = rate
            elif job in services[service]:
                self._jobs[(service, job)] = rate
            else:
                raise ValueError(f"rate limit for `{target}`: service `{service}` has no job `{job}`")

    def limits(self, service: str, job: str) -> list[tuple[str | None, RateLimit]]:
        """``(job or None for the service's, limit)``, the job's own first."""
        out: list[tuple[str | None, RateLimit]] = []
        own = self._jobs.get((service, job))
        if own is not None:
            out.append((job, own))
        every = self._service.get(service)
        if every is not None:
            out.append((None, every))
        return out


def parse_overrides(spec: str | Mapping[str, str] | None) -> dict[str, RateLimit]:
    """``"Mail.send=10/s; Mail=1000/m"`` (or a mapping of the same) as limits."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        pairs = []
        for entry in (e.strip() for e in spec.replace("\n", ";").split(";")):
            if not entry:
                continue
            target, eq, rate = entry.partition("=")
            if not eq:
                raise ValueError(
                    f"rate limit {entry!r}: write it as `Service.job=50/s` or `Service=50/s`")
            pairs.append((target.strip(), rate.strip()))
    else:
        pairs = list(spec.items())
    return {target: parse_rate(rate) for target, rate in pairs}


async def gate(redis: aredis.Redis, keys: Keys, book: RateBook, service: str, job: str,
               call_id: str, left_ms: int | None) -> Gate:
    """Whether call ``call_id`` of ``service.job`` may start now."""
    limits = book.limits(service, job)
    if not limits:
        return Gate("start")
    script_keys = [keys.rate_turns(service, limits[0][0])]
    args: list[object] = [call_id, _LONGEST_US if left_ms is None else left_ms * 1000]
    for scope, rate in limits:
        script_keys.append(keys.rate(service, scope))
        args += [rate.interval_us, rate.tolerance_us, str(rate)]
    try:
        answer = await scripts.rate_limit().run(redis, script_keys, args)
    except (RedisConnectionError, RedisTimeoutError, OSError) as e:
        log.warning("could not ask the rate limit for %s (%s); back on the schedule", call_id, e)
        return Gate("wait", ASK_AGAIN_MS)
    except ResponseError as e:
        return Gate("refuse", reason=(
            f"the rate limit of {service}.{job} cannot be asked: Redis refused it ({e}); "
            "the call did not run"))
    code, us = int(answer[0]), int(answer[1])
    if code == 0:
        return Gate("start")
    if code == 1:
        return Gate("wait", max(1, -(-us // 1000)))
    described = ", ".join(str(rate) if scope is not None else f"{rate} for the service"
                          for scope, rate in limits)
    return Gate("too_late", reason=(
        f"the rate limit of {service}.{job} ({described}) gives this call its turn in "
        f"{us / 1e6:.1f}s, after its deadline; it did not run"))
