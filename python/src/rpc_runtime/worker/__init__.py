"""The worker: serves the jobs of mounted services from Redis, as
docs/PROTOCOL.md says a worker does ("Taking and running jobs" and after).

Its core is asyncio: one blocking reader (``XREADGROUP``), a task per job
(a synchronous handler runs in a thread pool, one thread per concurrency
slot; an asynchronous one on the loop), the lease renewer and reclaimer,
the lifecycle poll, one intake mover per queue, the heartbeat and
janitor, the daily counts, the look at the shard counts, and the writer
of the progress handlers report (``progress.py``).

A service of N shards is N queues (``S``, ``S~1`` ... ``S~{N-1}``, see
``rpc_runtime.shards``), and everything kept per queue (the stream and its
leases, the schedule, the intake, cancellations, idempotency keys, dead
letters, failures) is kept per shard; what is per service (the pause flag,
the worker registry, the daily counts) is shard 0's. The worker reads every shard
the service's shard count says (``shard_counts.py``), and starts reading
new ones when it grows. ``run()`` blocks and stops gracefully on
SIGTERM/SIGINT; ``await run_async()`` is the same for asyncio applications.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from ..context import Context
from ..keys import GROUP, Keys
from ..priority import DEFAULT as DEFAULT_PRIORITY
from ..priority import LANES
from ..shards import SEPARATOR, is_count, split_queue
from ..shards import queue as shard_queue
from ..spec import JobBinding, JobSpec, Service
from . import heartbeat as beats
from . import lane_take, leases, progress
from . import shard_counts
from .complete import Delivery, complete
from .counts import FLUSH_EVERY_S, record_failure
from .idle_polls import count_fleets
from .lanes import create_groups as create_lane_groups
from .lanes import lane_of_key
from .lifecycle import Lifecycle
from .metrics import Metrics
from .mover import run_mover
from .rate_limit import RateBook, parse_overrides
from .request import Request
from .retry import parse as parse_backoff
from .run import run_delivery
from .settings import Settings, check, check_consumer, default_consumer
from .shared import Mounted, Shared

__all__ = ["Request", "Worker"]

log = logging.getLogger("rpc_runtime.worker")

BLOCK_MS = 1000


class Worker:
    """Serves mounted services' jobs from Redis."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        *,
        prefix: str = "rpc",
        concurrency: int = 16,
        visibility_timeout: float = 30.0,
        max_attempts: int = 3,
        backoff: str = "exponential(100ms, 30s)",
        shutdown_grace: float = 30.0,
        inbox_ttl: float = 60.0,
        cancel_grace: float = 5.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        heartbeat: tuple[float, float] = (5.0, 30.0),
        metrics_addr: str | None = None,
        version: str | None = None,
        consumer: str | None = None,
        rate_limits: str | Mapping[str, str] | None = None,
    ) -> None:
        check(concurrency=concurrency, visibility_timeout=visibility_timeout,
              max_attempts=max_attempts, heartbeat=heartbeat, max_message_bytes=max_message_bytes)
        self.settings = Settings(
            url=url,
            prefix=prefix,
            concurrency=concurrency,
            visibility_timeout_ms=int(visibility_timeout * 1000),
            max_attempts=max_attempts,
            backoff=parse_backoff(backoff),
            shutdown_grace_s=shutdown_grace,
            inbox_ttl_ms=max(1, int(inbox_ttl * 1000)),
            cancel_grace_s=cancel_grace,
            max_message_bytes=max_message_bytes,
            beat_every_ms=int(heartbeat[0] * 1000),
            beat_ttl_ms=int(heartbeat[1] * 1000),
            metrics_addr=metrics_addr,
            version=version or "rpc-runtime (python)",
            consumer=check_consumer(consumer) if consumer else default_consumer(),
        )
        #: Rate limits given at deploy time (``"Mail.send=10/s; Mail=1000/m"``),
        #: over the schema's; checked against the mounted jobs at start.
        self._rate_overrides = parse_overrides(rate_limits)
        self._rates: RateBook | None = None
        self._services: dict[str, dict[str, Mounted]] = {}
        #: Each service's shard number from the schema (``#[shards = N]``).
        self._shards: dict[str, int] = {}
        #: Each queue's intake mover: its connection and task.
        self._movers: dict[str, tuple[aredis.Redis, asyncio.Task[None]]] = {}
        self._stop_requested = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.shared: Shared | None = None
        self._on_ready: Callable[[], None] | None = None
        self._ready = threading.Event()
        #: Queues whose jobs key is not a stream (see ``_create_groups``).
        self._broken: set[str] = set()
        self._broken_retry_at = 0.0
        self.metrics: Metrics | None = None

    @property
    def consumer(self) -> str:
        """This worker's id (its consumer name in every group)."""
        return self.settings.consumer

    def mount(self, service: Service) -> Worker:
        """Serves ``service``'s jobs (generated ``<service>_service(handler)``)."""
        _check_service_name(service.name)
        shards = max([service.shards, *(b.spec.shards for b in service.jobs)])
        if isinstance(shards, bool) or not isinstance(shards, int) or not is_count(shards):
            raise ValueError(f"service {service.name} has {shards!r} shards: 1 to 256")
        for binding in service.jobs:
            if binding.spec.service != service.name:
                raise ValueError(f"job {binding.spec.job} is not of service {service.name}")
        jobs = self._services.setdefault(service.name, {})
        for binding in service.jobs:
            jobs[binding.spec.name] = Mounted(binding)
        self._shards[service.name] = max(self._shards.get(service.name, 1), shards)
        return self

    def handle(self, name: str, fn: Callable[[Request], Any], *, one_way: bool = False) -> Worker:
        """Serves job ``Service.job`` untyped: ``fn(request)`` (sync or async)
        gets a :class:`Request`; its return value (or what it gave
        ``request.respond``) is the reply."""
        service, dot, job = name.partition(".")
        if not dot or not service or not job:
            raise ValueError(f"a job name is `Service.job` (got {name!r})")
        _check_service_name(service)
        is_async = inspect.iscoroutinefunction(fn)
        if is_async:

            async def run_async(ctx: Context, params: Any) -> Any:
                request = Request(params, ctx)
                returned = await fn(request)
                return request.result(returned)

            run: Callable[[Context, Any], Any] = run_async
        else:

            def run_sync(ctx: Context, params: Any) -> Any:
                request = Request(params, ctx)
                returned = fn(request)
                return request.result(returned)

            run = run_sync
        spec: JobSpec[Any] = JobSpec(service, job, one_way=one_way)
        self._services.setdefault(service, {})[job] = Mounted(
            JobBinding(spec, run, is_async=is_async), untyped=True
        )
        self._shards.setdefault(service, 1)
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Waits (from another thread) until the worker serves; False on timeout."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Starts a graceful shutdown (thread-safe)."""
        self._stop_requested.set()
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Serves until SIGTERM/SIGINT or :meth:`stop`, then drains.
        ``on_ready`` is called once the worker serves (its groups exist,
        its first beat is written, pauses and cancellations are known)."""
        asyncio.run(self.run_async(signals=True, on_ready=on_ready))

    async def run_async(
        self,
        stop: asyncio.Event | None = None,
        *,
        signals: bool = False,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """Serves until ``stop`` is set (or :meth:`stop`), then drains;
        ``signals`` stops it on SIGTERM/SIGINT too; ``on_ready`` as for
        :meth:`run`."""
        self._on_ready = on_ready
        if not self._services:
            raise ValueError("nothing to serve: mount a service or handle a job first")
        # A limit for a job not mounted here is an error before anything runs.
        self._rates = RateBook(self._services, self._rate_overrides)
        loop = asyncio.get_running_loop()
        self._loop = loop
        stopping = asyncio.Event()
        self._stop_event = stopping
        if self._stop_requested.is_set():
            stopping.set()
        installed: list[signal.Signals] = []
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, stopping.set)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass

        async def relay() -> None:
            if stop is not None:
                await stop.wait()
                stopping.set()

        relay_task = asyncio.ensure_future(relay())
        try:
            await self._serve(stopping)
        finally:
            relay_task.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            self._loop = None

    # ----- the loops -----

    async def _connect(self) -> aredis.Redis:
        delay = 1.0
        while True:
            conn: aredis.Redis = aredis.Redis.from_url(self.settings.url)
            try:
                await conn.ping()
                return conn
            except Exception as e:  # noqa: BLE001 - wait for Redis
                await conn.aclose()
                log.warning("cannot reach Redis (%s); trying again in %.0f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _serve(self, stopping: asyncio.Event) -> None:
        s = self.settings
        redis = await self._connect()
        reader: aredis.Redis = aredis.Redis.from_url(s.url, socket_timeout=None)
        executor = ThreadPoolExecutor(max_workers=s.concurrency, thread_name_prefix="rpc-job")
        self.metrics = Metrics(s.metrics_addr) if s.metrics_addr else None
        shared = Shared(settings=s, keys=Keys(s.prefix), redis=redis, services=self._services,
                        executor=executor, metrics=self.metrics,
                        rates=self._rates)
        self.shared = shared
        await shared.clock.sample(redis)
        # Every shard a client may have placed a call on, before the first read.
        serving = await shard_counts.serving(redis, shared.keys, self._shards, {})
        for service in self._services:
            for k in range(serving.get(service, 1)):
                shared.queues[shard_queue(service, k)] = service
        await self._create_groups()
        started_ms = shared.clock.now_ms()
        await self._beat(started_ms, "running")
        await beats.forget_consumers(shared, beats.FORGET_AFTER_MS, need_gone_beat=False)
        lifecycle = Lifecycle(shared)
        # Pauses and cancellations are known before the first job is taken.
        try:
            await lifecycle.poll_all()
        except Exception as e:  # noqa: BLE001
            log.warning("the first lifecycle poll failed: %s", e)
        quiet = asyncio.Event()  # no new jobs: shutdown or the operator's `quiet`
        done = asyncio.Event()  # every loop ends
        loops = [
            asyncio.ensure_future(self._take(reader, quiet)),
            asyncio.ensure_future(lifecycle.run(done)),
            asyncio.ensure_future(self._leases(quiet, done)),
            asyncio.ensure_future(self._beats(started_ms, quiet, stopping, done)),
            asyncio.ensure_future(self._flush_counts(done)),
            asyncio.ensure_future(progress.write_loop(shared)),
            asyncio.ensure_future(self._watch_shards(serving, lifecycle, quiet, done)),
        ]
        for name in list(shared.queues):
            self._start_mover(name, quiet)
        log.info("worker %s serving %s", s.consumer, ", ".join(
            f"{name} ({serving.get(name, 1)} shards)" if serving.get(name, 1) > 1 else name
            for name in sorted(self._services)))
        self._ready.set()
        if self._on_ready is not None:
            self._on_ready()
        try:
            await stopping.wait()
        finally:
            self._ready.clear()
            log.info("worker %s stopping: draining %d jobs", s.consumer, len(shared.tasks))
            shared.quiet = True
            quiet.set()
            reader_task = loops[0]
            reader_task.cancel()
            if shared.tasks:
                _, pending = await asyncio.wait(set(shared.tasks), timeout=s.shutdown_grace_s)
                if pending:
                    log.warning("%d jobs did not finish within the grace period; they stay "
                                "leased and will be reclaimed", len(pending))
                    for t in pending:
                        t.cancel()
            done.set()
            movers = list(self._movers.values())
            self._movers.clear()
            loops += [task for _, task in movers]
            for t in loops:
                t.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            try:
                await progress.flush(shared)
                await shared.counts.flush(redis, shared.keys)
                await beats.unregister(shared)
            except Exception as e:  # noqa: BLE001
                log.warning("could not say goodbye to Redis: %s", e)
            executor.shutdown(wait=False, cancel_futures=True)
            if self.metrics is not None:
                self.metrics.close()
            for conn in [reader, *(c for c, _ in movers)]:
                await conn.aclose()
            await redis.aclose()
            self.shared = None
            log.info("worker %s stopped", s.consumer)

    def _start_mover(self, name: str, quiet: asyncio.Event) -> None:
        """Moves queue ``name``'s intake, on a connection of its own (it blocks)."""
        s = self.settings
        assert self.shared is not None
        conn: aredis.Redis = aredis.Redis.from_url(s.url, socket_timeout=None)
        task = asyncio.ensure_future(
            run_mover(conn, self.shared.keys, name, s.max_message_bytes, quiet))
        self._movers[name] = (conn, task)

    async def _watch_shards(self, serving: dict[str, int], lifecycle: Lifecycle,
                            quiet: asyncio.Event, done: asyncio.Event) -> None:
        """Every few seconds, the shard counts again (``shards.lua serve``):
        a service's new shards are read from then on."""
        shared = self.shared
        assert shared is not None
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=shard_counts.EVERY_S)
                return
            except asyncio.TimeoutError:
                pass
            serving = await shard_counts.serving(shared.redis, shared.keys, self._shards, serving)
            if quiet.is_set():
                continue
            for service, n in serving.items():
                new = [shard_queue(service, k) for k in range(n)
                       if shard_queue(service, k) not in shared.queues]
                if not new:
                    continue
                log.info("service %s has %d shards now: serving %s too", service, n,
                         ", ".join(new))
                for name in new:
                    shared.queues[name] = service
                await self._create_groups(new)
                for name in new:
                    lifecycle.add(name)
                    self._start_mover(name, quiet)

    async def _create_groups(self, queues: list[str] | None = None) -> None:
        """Creates the consumer group of every queue (or of ``queues``). A
        jobs key of another type (WRONGTYPE: someone wrote over it) leaves
        that queue unserved, logged, and looked at again every second; the
        others are served."""
        assert self.shared is not None
        for name in list(self.shared.queues) if queues is None else queues:
            key = self.shared.keys.jobs(name)
            try:
                await self.shared.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" in str(e):
                    pass
                elif "WRONGTYPE" in str(e):
                    if name not in self._broken:
                        log.error("%s is not a stream (%s): not serving queue %s until it is",
                                  key, e, name)
                    self._broken.add(name)
                    continue
                else:
                    raise
            if name in self._broken:
                log.info("%s is a stream again: serving queue %s", key, name)
                self._broken.discard(name)
            # The queue's priority lanes seen (a NOGROUP on one: deleted and
            # recreated by someone).
            others = [p for p in self.shared.lanes.of(name) if p != DEFAULT_PRIORITY]
            if others:
                await create_lane_groups(self.shared.redis, self.shared.keys, self.shared.lanes,
                                         name, others)

    async def _take(self, reader: aredis.Redis, quiet: asyncio.Event) -> None:
        shared = self.shared
        assert shared is not None
        delay = 0.1
        picker = lane_take.LanePicker()
        while not quiet.is_set():
            free = shared.settings.concurrency - shared.running
            if free <= 0:
                shared.slot_freed.clear()
                await shared.slot_freed.wait()
                continue
            if self._broken and asyncio.get_running_loop().time() >= self._broken_retry_at:
                self._broken_retry_at = asyncio.get_running_loop().time() + 1.0
                await self._create_groups()
            # A paused service's every shard is left unread.
            queues = [q for q, service in list(shared.queues.items())
                      if service not in shared.paused and q not in self._broken]
            if not queues:
                await asyncio.sleep(0.1)
                continue
            try:
                if shared.lanes.any():
                    # Some queue has priority lanes: taken by weight, lane
                    # by lane (`lane_take.py`).
                    got = await lane_take.take(
                        reader, shared.settings.consumer, picker,
                        {p: [shared.keys.jobs_at(q, p) for q in queues if p in shared.lanes.of(q)]
                         for p in LANES},
                        free, BLOCK_MS)
                else:
                    # COUNT is per stream: the free slots are shared among the
                    # queues, so one read takes fewer than free + queues jobs
                    # (not free times queues: a service of many shards would
                    # swamp the slots).
                    per_queue = -(-free // len(queues))
                    streams: dict[Any, Any] = {shared.keys.jobs(q): ">" for q in queues}
                    got = await reader.xreadgroup(
                        GROUP, shared.settings.consumer, streams, count=per_queue, block=BLOCK_MS
                    )
                delay = 0.1
            except ResponseError as e:
                if "NOGROUP" in str(e) or "WRONGTYPE" in str(e):
                    await self._create_groups()
                    continue
                log.warning("reading jobs failed: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except Exception as e:  # noqa: BLE001 - Redis away
                log.warning("reading jobs failed: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for stream, entries in got or []:
                stream_key = stream.decode() if isinstance(stream, bytes) else str(stream)
                name = _queue_of(stream_key)
                service = shared.queues.get(name) or split_queue(name)[0]
                for entry_id, fields in entries:
                    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    fields = fields or {}
                    self._start(Delivery(
                        service=service,
                        queue=name,
                        lane=lane_of_key(stream_key),
                        entry_id=eid,
                        payload=fields.get(b"m", b""),
                        deliveries=1,
                        cancelled=fields.get(b"c") == b"1",
                    ))

    def _start(self, d: Delivery) -> None:
        shared = self.shared
        assert shared is not None
        shared.running += 1
        shared.leases.add((d.queue, d.entry_id, d.lane))
        task = asyncio.ensure_future(self._process(d))
        shared.tasks.add(task)
        task.add_done_callback(shared.tasks.discard)

    async def _process(self, d: Delivery) -> None:
        shared = self.shared
        assert shared is not None
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                shared.running -= 1
                shared.slot_freed.set()

        try:
            ran = await run_delivery(shared, d)
            release()
            if ran.outcome is not None:
                shared.counts.count(d.service, ran.outcome)
                if shared.metrics is not None:
                    job = _job_of(d.payload)
                    shared.metrics.ended(d.service, job, ran.outcome)
            await complete(shared.redis, shared.keys, d, ran.completion)
            if ran.failure is not None:
                await record_failure(shared.redis, shared.keys, d.queue, ran.failure)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bug here must not stop the worker
            log.exception("ending job %s of %s failed; it stays leased", d.entry_id, d.queue)
        finally:
            release()
            shared.leases.discard((d.queue, d.entry_id, d.lane))

    async def _leases(self, quiet: asyncio.Event, done: asyncio.Event) -> None:
        shared = self.shared
        assert shared is not None
        every = shared.settings.visibility_timeout_ms / 3000
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=every)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await shared.clock.sample(shared.redis)
                await leases.renew(shared)
                free = shared.settings.concurrency - shared.running
                if not quiet.is_set() and free > 0:
                    for d in await leases.reclaim(shared, free):
                        self._start(d)
            except Exception as e:  # noqa: BLE001 - Redis away: next turn
                log.warning("renewing or reclaiming leases failed: %s", e)

    async def _beat(self, started_ms: int, state: str) -> str | None:
        assert self.shared is not None
        try:
            return await beats.beat_once(self.shared, started_ms, state)
        except Exception as e:  # noqa: BLE001 - next beat
            log.warning("writing the heartbeat failed: %s", e)
            return None

    async def _beats(self, started_ms: int, quiet: asyncio.Event, stopping: asyncio.Event,
                     done: asyncio.Event) -> None:
        shared = self.shared
        assert shared is not None
        s = shared.settings
        loop = asyncio.get_running_loop()
        next_janitor = loop.time() + s.beat_ttl_ms / 1000
        state = "running"
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=s.beat_every_ms / 1000)
                return
            except asyncio.TimeoutError:
                pass
            if stopping.is_set():
                state = "stopping"
            control = await self._beat(started_ms, state)
            if control == "quiet" and state == "running":
                log.info("an operator quieted worker %s: taking no new jobs", s.consumer)
                state = "quiet"
                shared.quiet = True
                quiet.set()
            elif control == "stop":
                log.info("an operator stopped worker %s", s.consumer)
                stopping.set()
            if loop.time() >= next_janitor:
                next_janitor = loop.time() + s.beat_ttl_ms / 1000
                try:
                    await count_fleets(shared)
                    await beats.forget_consumers(shared, s.beat_ttl_ms, need_gone_beat=True)
                except Exception as e:  # noqa: BLE001
                    log.debug("the janitor failed: %s", e)

    async def _flush_counts(self, done: asyncio.Event) -> None:
        shared = self.shared
        assert shared is not None
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=FLUSH_EVERY_S)
                return
            except asyncio.TimeoutError:
                pass
            await shared.counts.flush(shared.redis, shared.keys)


def _check_service_name(name: str) -> None:
    """A service's name has no shard mark's separator (``S~3`` is shard 3
    of ``S``), as the Rust runtime refuses it."""
    if SEPARATOR in name:
        raise ValueError(f"service {name!r}: a service name has no `{SEPARATOR}` "
                         f"(`S{SEPARATOR}k` is a shard of `S`)")


def _queue_of(stream_key: str) -> str:
    start = stream_key.find("{")
    end = stream_key.rfind("}")
    return stream_key[start + 1 : end] if 0 <= start < end else stream_key


def _job_of(payload: bytes) -> str:
    import json

    try:
        job = json.loads(payload).get("job")
    except Exception:  # noqa: BLE001
        return "unknown"
    return job if isinstance(job, str) and len(job) <= 200 else "unknown"
