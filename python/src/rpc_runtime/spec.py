"""What generated code hands the runtime: a job's description
(:class:`JobSpec`), a handler bound to it (:class:`JobBinding`) and the jobs
of one service (:class:`Service`).

The one contract between ``rpc-codegen gen --lang python`` and this
package: generated clients pass a ``JobSpec`` and the parameters (already
JSON) to ``Client.call_job``/``send_job``/``send_one_way``; generated
``<service>_service(handler)`` functions return a ``Service`` a
:class:`~rpc_runtime.Worker` mounts. Untyped jobs (``Worker.handle``) are
the same with identity codecs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, Sequence, TypeVar

from .errors import AppError

if TYPE_CHECKING:
    from .context import Context

R = TypeVar("R")


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class JobSpec(Generic[R]):
    """One job of a service, as the schema describes it."""

    #: The service, e.g. ``"Calculator"``.
    service: str
    #: The job's wire name within the service, e.g. ``"add"`` (a schema
    #: ``#[rename]`` wins: ``"shape.rotate"``).
    name: str
    #: One-way: nothing comes back; a client sends it without ``reply_to``.
    one_way: bool = False
    #: The ``ok`` value's JSON to ``R``; raises ``DecodeError`` naming the path.
    decode_result: Callable[[Any], R] = _identity
    #: ``R`` to JSON; raises ``EncodeError`` when the value does not fit.
    encode_result: Callable[[R], Any] = _identity
    #: An ``app`` error's ``data`` to the generated exception carrying the
    #: schema's error value; ``None`` for a job without a typed error.
    decode_error: Callable[[Any], AppError] | None = None
    #: The schema's ``#[timeout_ms]``.
    timeout_ms: int | None = None
    #: The schema's ``#[attempts]``.
    max_attempts: int | None = None
    #: The schema's ``#[backoff]``, as written (``"exponential(100ms, 30s)"``).
    backoff: str | None = None
    #: The job's ``#[rate]``, as written (``"50/s"``): its starts across
    #: the fleet (docs/PROTOCOL.md, "Rate limits").
    rate: str | None = None
    #: The service's ``#[rate]``: every job's starts of the service together.
    service_rate: str | None = None
    #: The schema's ``#[deprecated]`` note (``""`` when it has none).
    deprecated: str | None = None
    #: The service's ``#[shards = N]`` (1 to 256): how many shards a client
    #: places calls on unless Redis's shard count (``P:{S}:shards``) says.
    shards: int = 1
    #: The job's ``#[priority = N]`` (1, taken first, to 5): its calls'
    #: default priority; ``None`` is 3. A call's own ``CallOptions.priority``
    #: wins (docs/PROTOCOL.md, "Priorities").
    priority: int | None = None

    @property
    def job(self) -> str:
        """``Service.job``, as the message's ``job`` field."""
        return f"{self.service}.{self.name}"


@dataclass(frozen=True)
class JobBinding:
    """A job and the code that runs it.

    ``run(ctx, params)`` takes the message's ``params`` (untrusted JSON),
    decodes them (raising ``DecodeError``, answered ``bad_request``), calls
    the handler and returns its result: the value itself for a synchronous
    binding (run in a worker thread), an awaitable for an ``is_async`` one
    (awaited on the worker's event loop).
    """

    spec: JobSpec[Any]
    run: Callable[[Context, Any], Any]
    is_async: bool = False


@dataclass(frozen=True)
class Service:
    """The jobs of one service a worker serves."""

    name: str
    jobs: Sequence[JobBinding] = field(default_factory=tuple)
    #: The schema's ``#[shards = N]`` (1 to 256): a worker serves at least
    #: this many shards (more when Redis's shard count says).
    shards: int = 1
