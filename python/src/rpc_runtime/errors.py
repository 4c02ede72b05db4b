"""What can go wrong with a call, as exceptions.

The error kinds are docs/PROTOCOL.md's ("Error kinds"); a reply's
``error.kind`` that this version does not know reads as ``unknown``.
Handlers raise :class:`Retry` (try again later) or :class:`Fatal` (give up,
answer ``handler``); a generated ``<Enum>Exception`` (an :class:`AppError`)
carries a job's typed application error both ways.
"""

from __future__ import annotations

import builtins
from typing import Any


class ErrorKind:
    """The ``error.kind`` strings of a reply."""

    APP = "app"
    HANDLER = "handler"
    UNKNOWN_JOB = "unknown_job"
    BAD_REQUEST = "bad_request"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    UNKNOWN = "unknown"

    ALL = frozenset(
        {
            APP,
            HANDLER,
            UNKNOWN_JOB,
            BAD_REQUEST,
            DEADLINE_EXCEEDED,
            DEAD_LETTERED,
            CANCELLED,
            IDEMPOTENCY_CONFLICT,
            UNAUTHENTICATED,
            PERMISSION_DENIED,
        }
    )

    @staticmethod
    def read(kind: object) -> str:
        """A kind as read from a reply: unknown kinds are ``unknown``."""
        return kind if isinstance(kind, str) and kind in ErrorKind.ALL else ErrorKind.UNKNOWN


class RpcError(Exception):
    """Base of every error this package raises."""


class DecodeError(RpcError, ValueError):
    """A JSON value does not match the schema type it must have.

    ``path`` names the field (``"values[2].label"``), ``job`` the job
    (``"Calculator.sum"``) when known.
    """

    def __init__(self, path: str, message: str, job: str | None = None) -> None:
        self.path = path
        self.message = message
        self.job = job
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"`{self.path}`" if self.path else "the value"
        head = f"{self.job}: " if self.job else ""
        return f"{head}{where}: {self.message}"

    def in_job(self, job: str, prefix: str = "") -> DecodeError:
        """The same error, naming the job (and a path prefix such as ``ok``)."""
        path = f"{prefix}.{self.path}" if prefix and self.path else (prefix or self.path)
        return DecodeError(path, self.message, job)


class EncodeError(RpcError, ValueError):
    """A value given to a typed call does not fit its schema type (an int
    out of its range, a wrong type): the call is refused before it is sent."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"`{path}`: {message}" if path else message)


class CallError(RpcError):
    """The worker answered the call with an error (or it could not be made)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        data: Any = None,
        job: str | None = None,
        call_id: str | None = None,
    ) -> None:
        self.kind = kind
        self.message = message
        self.data = data
        self.job = job
        self.call_id = call_id
        where = f"{job} ({call_id})" if job and call_id else (job or call_id or "call")
        super().__init__(f"{where} failed: {kind}: {message}")


class CallTimeout(CallError, builtins.TimeoutError):
    """No answer came before the call's deadline. ``diagnosis`` says what the
    broker showed right after, when it could tell (paused, no live worker...)."""

    def __init__(
        self,
        message: str,
        *,
        job: str | None = None,
        call_id: str | None = None,
        diagnosis: str | None = None,
    ) -> None:
        self.diagnosis = diagnosis
        text = f"{message} ({diagnosis})" if diagnosis else message
        super().__init__("timeout", text, job=job, call_id=call_id)


class AppError(RpcError):
    """A job's typed application error (``Result<T, E>``'s ``E``).

    Generated code subclasses it once per error enum (``MathErrorException``,
    whose ``error`` is a ``MathError``); a handler raises it to answer
    ``app``, and a typed client raises it when the reply is ``app``.
    """

    def error_json(self) -> Any:
        """The error value as the reply's ``error.data``."""
        raise NotImplementedError


class Retry(RpcError):
    """Raised by a handler: this attempt failed, try again (after ``after``
    seconds, else the job's backoff) while attempts last."""

    def __init__(self, message: str = "retry", *, after: float | None = None) -> None:
        self.message = message
        self.after = after
        super().__init__(message)


class Fatal(RpcError):
    """Raised by a handler: the job failed for good (answered ``handler``,
    not retried)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ProgressError(RpcError):
    """A progress watch could not read a value (the broker failed): yielded
    by the watch as an item, which goes on. ``__cause__`` is the error."""


class BadProgress(ProgressError, ValueError):
    """What a call's progress key holds is not a progress value
    (docs/PROTOCOL.md, "Progress"): too large, not JSON, not the object,
    a field of the wrong type or out of range. A watch yields it once for
    each distinct bad value, skips it and goes on."""
