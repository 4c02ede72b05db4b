"""The asyncio client (:class:`AsyncClient`): sends calls as docs/PROTOCOL.md
says and waits for their answers through the client's one inbox.

A call is added with ``XADD P:{Q}:jobs * m <message>`` (``P:{Q}:jobs:<p>``
for a call at priority ``p`` other than 3, docs/PROTOCOL.md, "Priorities"),
``Q`` the queue of the shard it is placed on (``placement.py``: ``S`` itself for a service of
one shard, and then the call id is not marked); the first
``NOPERM`` turns the client to ``RPUSH P:{Q}:intake <message>`` for good
(``?enqueue=intake`` in the URL starts there; ``stream`` never turns).
Replies come back through one reader (``inbox.py``); a call waits until its
deadline on this machine's monotonic clock, then raises
:class:`~rpc_runtime.CallTimeout` with a short diagnosis of the service
(paused, no live worker, busy) read right after, within a second.
The synchronous :class:`~rpc_runtime.Client` runs one of these on a
private event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import TracebackType
from typing import Any, Generator, Mapping, TypeVar

import redis.asyncio as aredis
from redis.exceptions import NoPermissionError, ResponseError

from . import limits
from . import message as messages
from . import progress
from . import reply as replies
from . import shards
from . import url as urls
from .errors import CallTimeout, DecodeError
from .inbox import Inbox
from .keys import Keys
from .options import CallOptions
from .pending import AsyncPending, Response
from .placement import Placement
from .progress_watch import LONGEST_WATCH_S, AsyncProgressWatch
from .redis_clock import RedisClock
from .spec import JobSpec

log = logging.getLogger("rpc_runtime.client")

R = TypeVar("R")

#: The longest the reads behind a timeout's diagnosis may take (seconds).
DIAGNOSIS_BOUND = 1.0
#: Beats read for a diagnosis.
DIAGNOSIS_WORKERS = 32


def _untyped(job: str) -> JobSpec[Any]:
    service, name = messages.split_job(job)
    return JobSpec(service=service, name=name)


class AsyncClient:
    """Calls jobs over Redis from asyncio code. Make one with
    ``await AsyncClient.connect(url, ...)`` (or ``async with
    AsyncClient.connect(url) as client``) and share it: many concurrent
    calls use one inbox and one reader."""

    def __init__(
        self,
        target: urls.Target,
        *,
        prefix: str,
        timeout: float,
        result_ttl: float,
        client_id_prefix: str | None,
        enqueue: str,
        max_connections: int,
    ) -> None:
        self._target = target
        self.keys = Keys(prefix)
        self._default_timeout = timeout
        self._result_ttl = result_ttl
        self._client_id_prefix = client_id_prefix
        self._enqueue = enqueue
        self._via_intake = enqueue == "intake"
        pool = aredis.BlockingConnectionPool(max_connections=max_connections, timeout=None, **target.kwargs)
        self._redis: Any = aredis.Redis(connection_pool=pool)
        # The reader's connection: its own, no response timeout shorter
        # than the block time, never shared with other commands.
        reader_kwargs = dict(target.kwargs)
        reader_kwargs["socket_timeout"] = None
        reader_pool = aredis.ConnectionPool(max_connections=1, **reader_kwargs)
        self._reader: Any = aredis.Redis(connection_pool=reader_pool)
        self._inbox = Inbox(self._reader, self.keys, client_id_prefix)
        self.clock = RedisClock()
        self._placement = Placement(self.keys)
        self._sampling: asyncio.Task[None] | None = None
        self._closed = False

    # -- connecting -------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str = "redis://127.0.0.1:6379",
        *,
        prefix: str = "rpc",
        timeout: float = limits.DEFAULT_TIMEOUT_MS / 1000,
        result_ttl: float = limits.DEFAULT_RESULT_TTL_MS / 1000,
        client_id_prefix: str | None = None,
        enqueue: str | None = None,
        max_connections: int = 32,
    ) -> _Connecting:
        """A client of the Redis at ``url``: ``await`` it, or use it as
        ``async with``. ``timeout`` is the default call timeout and
        ``result_ttl`` how long results of kept calls are kept (seconds);
        ``enqueue`` (``auto``, ``stream``, ``intake``) overrides the URL's."""
        target = urls.parse(url)
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{}"):
            raise messages.InvalidCall(f"prefix {prefix!r}: a non-empty string without braces")
        messages.check_client_id_prefix(client_id_prefix)
        mode = enqueue if enqueue is not None else (target.enqueue or "auto")
        if mode not in urls.ENQUEUE_MODES:
            raise messages.InvalidCall(f"enqueue={mode!r}: expected auto, stream or intake")
        messages.check_options(CallOptions(timeout=timeout, keep_result=result_ttl))
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise messages.InvalidCall(f"max_connections is a positive integer ({max_connections!r} given)")
        client = cls(
            target,
            prefix=prefix,
            timeout=timeout,
            result_ttl=result_ttl,
            client_id_prefix=client_id_prefix,
            enqueue=mode,
            max_connections=max_connections,
        )
        return _Connecting(client)

    async def _open(self) -> AsyncClient:
        """Reaches Redis and samples its clock; a Redis user without
        ``+time`` leaves the local clock standing in."""
        try:
            await self.clock.sample(self._redis)
        except ResponseError as e:
            log.info("cannot read Redis's clock (%s); the local clock stands in", e)
        except Exception:
            await self.close()
            raise
        return self

    @property
    def client_id(self) -> str:
        """This client's id (its inbox is ``P:inbox:{client_id}``)."""
        return self._inbox.client_id

    @property
    def inbox(self) -> str:
        """The inbox key replies come to now."""
        return self._inbox.name

    @property
    def via_intake(self) -> bool:
        """Whether jobs go through the services' intakes."""
        return self._via_intake

    async def close(self) -> None:
        """Stops the reader and closes the connections; calls still waiting
        are cancelled."""
        if self._closed:
            return
        self._closed = True
        await self._inbox.close()
        if self._sampling is not None:
            self._sampling.cancel()
        await self._reader.aclose(close_connection_pool=True)
        await self._redis.aclose(close_connection_pool=True)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the typed path (generated code) ------------------------------------

    async def call_job(self, spec: JobSpec[R], params: Mapping[str, Any], options: CallOptions | None = None) -> R:
        """Calls ``spec``'s job with ``params`` (already JSON) and waits for
        its decoded answer. The result is not kept unless the options say."""
        pending = await self._send(spec, params, options, keep=False)
        return await pending.result()

    async def send_job(
        self, spec: JobSpec[R], params: Mapping[str, Any], options: CallOptions | None = None
    ) -> AsyncPending[R]:
        """Sends a call and returns its handle at once; the result is kept
        (the client's ``result_ttl``, 5 min by default) so that its id can
        be fetched from any process."""
        return await self._send(spec, params, options, keep=True)

    async def send_one_way(
        self, spec: JobSpec[Any], params: Mapping[str, Any], options: CallOptions | None = None
    ) -> str:
        """Sends a call without ``reply_to``: nothing comes back (kept only if
        ``keep_result`` says). Returns the call id."""
        options = options or CallOptions()
        out, queue = await self._build(spec, params, options, reply_to=None, keep=False)
        deadline = time.monotonic() + out.wait
        await self._push_until(out, queue, deadline)
        return out.id

    # -- the untyped path (the old library's API) -----------------------------

    async def call(self, name: str, data: Mapping[str, Any] | None = None, *, options: CallOptions | None = None) -> str:
        """Sends ``name`` (``Service.job``) with ``data`` and returns the call
        id at once; the result is kept (``result_ttl``) for :meth:`fetch`."""
        spec = _untyped(name)
        options = options or CallOptions()
        out, queue = await self._build(spec, data if data is not None else {}, options, reply_to=None,
                                       keep=True)
        await self._push_until(out, queue, time.monotonic() + out.wait)
        return out.id

    async def call_and_wait(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        options: CallOptions | None = None,
    ) -> Response:
        """Calls ``name`` with ``data`` and waits for the answer: a
        :class:`Response` (``data``, ``id``, ``response_key``; the result is
        kept). An error answer raises :class:`~rpc_runtime.CallError` (an
        ``app`` error carries its value in ``.data``)."""
        options = options or CallOptions()
        if timeout is not None:
            options = options.merged(CallOptions(timeout=timeout))
        pending = await self._send(_untyped(name), data if data is not None else {}, options, keep=True)
        answered_by, reply = await pending.answer()
        value = replies.outcome(reply, job=name, call_id=answered_by, decode_result=_same, decode_error=None)
        return Response(value, answered_by, self.keys.result(answered_by))

    async def fetch(self, call_id: str) -> Response | None:
        """The kept result of call ``call_id``, now: None while there is none
        (not done yet, expired, or never kept). An error answer raises
        :class:`~rpc_runtime.CallError`; a holder answer is followed to the
        holder's kept result (None while it has none)."""
        messages.check_call_id(call_id)
        body = await self._get_result(call_id)
        if body is None:
            return None
        reply = replies.parse(body)
        if reply is None:
            raise DecodeError("", f"what is kept under {self.keys.result(call_id)} is not a reply")
        answered_by = call_id
        if reply.holder is not None:
            kept = await self._get_result(reply.holder)
            if kept is None:
                return None
            answered_by = reply.holder
            reply = replies.vouched(replies.parse(kept), reply, None)
        value = replies.outcome(reply, job=None, call_id=answered_by, decode_result=_same, decode_error=None)
        return Response(value, answered_by, self.keys.result(answered_by))

    def attach(self, call_id: str, spec: JobSpec[R] | None = None, *, timeout: float | None = None) -> AsyncPending[Any]:
        """A handle to a call sent earlier, maybe by another process, whose
        result is kept: its ``result()`` polls the kept result until
        ``timeout`` (the client's default) passes."""
        messages.check_call_id(call_id)
        wait = self._default_timeout if timeout is None else timeout
        messages.check_options(CallOptions(timeout=wait))
        return AsyncPending(
            self, spec, call_id, future=None, deadline=time.monotonic() + wait, wait=wait, kept=True
        )

    # -- progress ----------------------------------------------------------------

    def watch_progress(self, call_id: str, timeout: float) -> AsyncProgressWatch:
        """Watches the progress of call ``call_id``, placed by any process,
        for at most ``timeout`` seconds: an async iterator (see
        :meth:`AsyncPending.progress`) that ends earlier once the call's
        kept result is there (a call whose result is not kept is watched to
        the end of ``timeout``)."""
        messages.check_call_id(call_id)
        if not timeout >= 0:
            raise ValueError(f"a watch's timeout is a number of seconds from 0, not {timeout!r}")
        deadline = time.monotonic() + min(float(timeout), LONGEST_WATCH_S)
        return AsyncProgressWatch(self, call_id, deadline, answer=None)

    async def read_progress(self, call_id: str) -> progress.Progress | None:
        """Call ``call_id``'s progress now: None if there is none (none
        reported, not written yet, or expired). Raises
        :class:`~rpc_runtime.BadProgress` if the key holds something else."""
        messages.check_call_id(call_id)
        raw = await self._read_progress(call_id)
        return progress.decode(raw) if raw else None

    async def _read_progress(self, call_id: str) -> bytes:
        """``GETRANGE P:progress:{id} 0 2048``: at most 2,049 bytes, empty
        when there is no value."""
        raw: bytes = await self._redis.execute_command(
            "GETRANGE", self.keys.progress(call_id), 0, progress.MAX_VALUE_BYTES
        )
        return raw

    # -- cancel, pause, resume -------------------------------------------------

    async def cancel(self, call_id: str, service: str, *, schema_shards: int = 1) -> None:
        """Cancels call ``call_id`` of ``service`` through the intake of its
        shard (``RPUSH P:{Q}:intake "cancel <id>"``): a worker answers it
        ``cancelled`` if it has not run, and tells its handler if it runs.
        An id that names no shard the service has (``~k``) is cancelled in
        every shard (``schema_shards`` is the schema's ``N``)."""
        messages.check_call_id(call_id)
        messages.check_service(service)
        serving = await self._placement.serving(self._redis, service, schema_shards)
        shard = shards.shard_of_id(call_id)
        targets = [shard] if shard is not None and shard < serving else range(serving)
        for k in targets:
            await self._redis.execute_command(
                "RPUSH", self.keys.intake(shards.queue(service, k)), f"cancel {call_id}"
            )

    async def pause(self, service: str) -> bool:
        """Pauses ``service`` (``SET P:{S}:paused <ms> NX``): workers stop
        taking its jobs within about a second. Returns whether it was
        running. Needs a user allowed to (an operator)."""
        messages.check_service(service)
        done = await self._redis.execute_command(
            "SET", self.keys.paused(service), str(self.clock.now_ms()), "NX"
        )
        return bool(done)

    async def resume(self, service: str) -> bool:
        """Resumes ``service`` (``DEL P:{S}:paused``). Returns whether it was paused."""
        messages.check_service(service)
        return bool(await self._redis.execute_command("DEL", self.keys.paused(service)))

    async def is_paused(self, service: str) -> bool:
        messages.check_service(service)
        return bool(await self._redis.execute_command("EXISTS", self.keys.paused(service)))

    # -- internals ---------------------------------------------------------------

    async def _build(
        self,
        spec: JobSpec[Any],
        params: Mapping[str, Any],
        options: CallOptions,
        *,
        reply_to: str | None,
        keep: bool,
    ) -> tuple[messages.Outgoing, str]:
        """The call's message and the queue of the shard it is placed on."""
        if self._closed:
            raise RuntimeError("the client is closed")
        service, _ = messages.split_job(spec.job)
        messages.check_options(options)
        if self.clock.is_stale():
            self._resample()
        shard, count = await self._placement.place(
            self._redis, service, spec.shards, options.idempotency_key
        )
        call_id = messages.new_id(self._client_id_prefix)
        if count > 1:
            call_id = shards.with_shard(call_id, shard)
        return messages.build(
            job=spec.job,
            params=params,
            call_id=call_id,
            reply_to=reply_to,
            options=options,
            timeout_ms=messages.timeout_ms(options, spec.timeout_ms, self._default_timeout),
            result_ttl_ms=messages.result_ttl_ms(options, keep, self._result_ttl),
            clock=self.clock,
            max_attempts=spec.max_attempts,
            default_priority=spec.priority,
        ), shards.queue(service, shard)

    async def _send(
        self, spec: JobSpec[R], params: Mapping[str, Any], options: CallOptions | None, *, keep: bool
    ) -> AsyncPending[R]:
        options = options or CallOptions()
        out, queue = await self._build(spec, params, options, reply_to=self._inbox.name, keep=keep)
        deadline = time.monotonic() + out.wait
        kept = messages.result_ttl_ms(options, keep, self._result_ttl) > 0
        future = self._inbox.wait_for(out.id, deadline)
        try:
            await self._push_until(out, queue, deadline)
        except BaseException:
            self._inbox.forget(out.id, future)
            raise
        return AsyncPending(self, spec, out.id, future=future, deadline=deadline, wait=out.wait, kept=kept)

    async def _push_until(self, out: messages.Outgoing, queue: str, deadline: float) -> None:
        """Adds the message to ``queue``, giving up at the call's deadline (a
        Redis that is away must not hold the caller past it)."""
        try:
            await asyncio.wait_for(self._push(queue, out.body, out.priority), timeout=max(0.001, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise await self._timeout(out.job, out.id, out.wait) from None

    async def _push(self, queue: str, body: bytes, priority: int) -> None:
        """Adds a call to the lane of its priority (``P:{Q}:jobs`` or
        ``P:{Q}:jobs:<p>``), or pushes it to the intake as any call: the
        mover adds it to the lane its ``priority`` field names."""
        if not self._via_intake:
            try:
                await self._redis.execute_command(
                    "XADD", self.keys.jobs_at(queue, priority), "*", "m", body)
                return
            except ResponseError as e:
                if self._enqueue == "stream" or not _is_noperm(e):
                    raise
                if not self._via_intake:
                    self._via_intake = True
                    log.info(
                        "this client may not add to jobs streams (NOPERM); sending its calls "
                        "through the services' intakes from now on"
                    )
        await self._redis.execute_command("RPUSH", self.keys.intake(queue), body)

    async def _get_result(self, call_id: str) -> bytes | None:
        body: bytes | None = await self._redis.execute_command("GET", self.keys.result(call_id))
        return body

    def _resample(self) -> None:
        if self._sampling is not None and not self._sampling.done():
            return

        async def sample() -> None:
            try:
                await self.clock.sample(self._redis)
            except Exception as e:
                log.debug("sampling Redis's clock failed: %s", e)

        self._sampling = asyncio.get_running_loop().create_task(sample())

    async def _timeout(self, job: str | None, call_id: str, wait: float) -> CallTimeout:
        """The timeout of a call, with a diagnosis of its service when the
        broker can tell within :data:`DIAGNOSIS_BOUND`."""
        diagnosis = None
        if job is not None:
            try:
                diagnosis = await asyncio.wait_for(self._diagnose(job.partition(".")[0]), DIAGNOSIS_BOUND)
            except Exception:
                diagnosis = None
        return CallTimeout(f"no answer within {wait:.3g} s", job=job, call_id=call_id, diagnosis=diagnosis)

    async def _diagnose(self, service: str) -> str | None:
        """Why a call of ``service`` may have got no answer: paused, no live
        worker, none taking jobs, or busy. None when it cannot tell."""
        keys, r = self.keys, self._redis
        try:
            if await r.execute_command("EXISTS", keys.paused(service)):
                return f"service `{service}` is paused: its jobs wait until it is resumed (`rpc resume {service}`)"
        except ResponseError:
            pass
        try:
            now_ms = self.clock.now_ms()
            listed = await r.execute_command(
                "ZRANGE", keys.workers(service), "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 0, DIAGNOSIS_WORKERS,
                "WITHSCORES",
            )
            ids = [listed[i].decode() for i in range(0, len(listed), 2)]
            last_seen = max((float(listed[i]) for i in range(1, len(listed), 2)), default=None)
            beats = await r.execute_command("MGET", *[keys.worker(w) for w in ids]) if ids else []
            live = quiet = 0
            for raw in beats:
                beat = _beat(raw)
                if beat is None or service not in beat.get("services", ()):
                    continue
                if now_ms - int(beat.get("beat_ms", 0)) <= int(beat.get("ttl_ms", 0)):
                    live += 1
                    if beat.get("state", "running") != "running":
                        quiet += 1
            if live == 0:
                if last_seen is None:
                    return f"no live worker serves `{service}` (none seen in the last day)"
                return f"no live worker serves `{service}` (one was last seen {(now_ms - last_seen) / 1000:.0f} s ago)"
            if quiet == live:
                return f"every live worker of `{service}` is quiet or stopping: none takes jobs"
            queued = 0
            for k in range(await self._placement.serving(r, service, 1)):
                queued += int(await r.execute_command("XLEN", keys.jobs(shards.queue(service, k))))
            s = "" if live == 1 else "s"
            if queued == 0:
                return f"`{service}` has {live} live worker{s} and no queued job: the job itself is slow"
            return f"`{service}` has {live} live worker{s} and is busy: {queued} queued"
        except (ResponseError, ValueError, TypeError, UnicodeDecodeError):
            return None


def _beat(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, (bytes, str)):
        return None
    try:
        beat = json.loads(raw)
    except ValueError:
        return None
    return beat if isinstance(beat, dict) else None


def _is_noperm(e: ResponseError) -> bool:
    return isinstance(e, NoPermissionError) or str(e).startswith("NOPERM")


def _same(value: Any) -> Any:
    return value


class _Connecting:
    """What :meth:`AsyncClient.connect` returns: ``await`` it for the
    client, or ``async with`` it to close the client at the end."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __await__(self) -> Generator[Any, None, AsyncClient]:
        return self._client._open().__await__()

    async def __aenter__(self) -> AsyncClient:
        return await self._client._open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.close()
