"""The synchronous client (:class:`Client`): an :class:`AsyncClient` on a
private event loop in a daemon thread, every method forwarded with
``asyncio.run_coroutine_threadsafe``.

One implementation of the protocol (the asyncio one); this facade only
crosses threads. It is safe to share between threads: each call blocks its
own thread while the loop serves all of them with one inbox and one reader.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from types import TracebackType
from typing import Any, Coroutine, Mapping, TypeVar

from . import limits
from .client import AsyncClient
from .options import CallOptions
from .pending import Pending, Response
from .progress import Progress
from .progress_watch import ProgressWatch
from .spec import JobSpec

R = TypeVar("R")
T = TypeVar("T")


class Client:
    """Calls jobs over Redis from synchronous code (threads welcome). Make
    one with ``Client.connect(url, ...)``; close it, or use ``with``."""

    def __init__(self, inner: AsyncClient, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._inner = inner
        self._loop = loop
        self._thread = thread
        self._closed = False

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
    ) -> Client:
        """Connects to the Redis at ``url`` (see :meth:`AsyncClient.connect`
        for the arguments)."""
        # Refuse bad arguments here, before a thread exists.
        connecting = AsyncClient.connect(
            url,
            prefix=prefix,
            timeout=timeout,
            result_ttl=result_ttl,
            client_id_prefix=client_id_prefix,
            enqueue=enqueue,
            max_connections=max_connections,
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_serve, args=(loop,), name="rpc-runtime-client", daemon=True)
        thread.start()

        async def open_() -> AsyncClient:
            return await connecting

        try:
            inner = asyncio.run_coroutine_threadsafe(open_(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        return cls(inner, loop, thread)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("the synchronous Client cannot be called from its own event loop")
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (KeyboardInterrupt) or failed: nothing left running.
            future.cancel()
            raise

    @property
    def client_id(self) -> str:
        return self._inner.client_id

    @property
    def inbox(self) -> str:
        return self._inner.inbox

    @property
    def keys(self) -> Any:
        return self._inner.keys

    @property
    def async_client(self) -> AsyncClient:
        """The :class:`AsyncClient` underneath (it lives on the private loop)."""
        return self._inner

    # -- the typed path --------------------------------------------------------

    def call_job(self, spec: JobSpec[R], params: Mapping[str, Any], options: CallOptions | None = None) -> R:
        """See :meth:`AsyncClient.call_job`."""
        return self._run(self._inner.call_job(spec, params, options))

    def send_job(self, spec: JobSpec[R], params: Mapping[str, Any], options: CallOptions | None = None) -> Pending[R]:
        """See :meth:`AsyncClient.send_job`."""
        return Pending(self._run(self._inner.send_job(spec, params, options)), self._run)

    def send_one_way(self, spec: JobSpec[Any], params: Mapping[str, Any], options: CallOptions | None = None) -> str:
        """See :meth:`AsyncClient.send_one_way`."""
        return self._run(self._inner.send_one_way(spec, params, options))

    # -- the untyped path --------------------------------------------------------

    def call(self, name: str, data: Mapping[str, Any] | None = None, *, options: CallOptions | None = None) -> str:
        """See :meth:`AsyncClient.call`."""
        return self._run(self._inner.call(name, data, options=options))

    def call_and_wait(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        options: CallOptions | None = None,
    ) -> Response:
        """See :meth:`AsyncClient.call_and_wait`."""
        return self._run(self._inner.call_and_wait(name, data, timeout=timeout, options=options))

    def fetch(self, call_id: str) -> Response | None:
        """See :meth:`AsyncClient.fetch`."""
        return self._run(self._inner.fetch(call_id))

    def attach(self, call_id: str, spec: JobSpec[R] | None = None, *, timeout: float | None = None) -> Pending[Any]:
        """See :meth:`AsyncClient.attach`."""
        return Pending(self._inner.attach(call_id, spec, timeout=timeout), self._run)

    # -- progress --------------------------------------------------------------------

    def watch_progress(self, call_id: str, timeout: float) -> ProgressWatch:
        """See :meth:`AsyncClient.watch_progress`: an iterator that blocks
        between values."""
        return ProgressWatch(self._inner.watch_progress(call_id, timeout), self._run)

    def read_progress(self, call_id: str) -> Progress | None:
        """See :meth:`AsyncClient.read_progress`."""
        return self._run(self._inner.read_progress(call_id))

    # -- cancel, pause, resume ------------------------------------------------------

    def cancel(self, call_id: str, service: str, *, schema_shards: int = 1) -> None:
        """See :meth:`AsyncClient.cancel`."""
        self._run(self._inner.cancel(call_id, service, schema_shards=schema_shards))

    def pause(self, service: str) -> bool:
        """See :meth:`AsyncClient.pause`."""
        return self._run(self._inner.pause(service))

    def resume(self, service: str) -> bool:
        """See :meth:`AsyncClient.resume`."""
        return self._run(self._inner.resume(service))

    def is_paused(self, service: str) -> bool:
        return self._run(self._inner.is_paused(service))

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connections and stops the private loop."""
        if self._closed:
            return
        try:
            self._run(self._inner.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()
