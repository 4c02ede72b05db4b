"""Per-call options: what a caller may say about one call beyond its
parameters (docs/PROTOCOL.md, "Job message" and "Timeouts")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping


@dataclass(frozen=True)
class CallOptions:
    """Options of one call; ``None`` leaves a field to the job's schema or
    the client's default. Times are seconds (floats)."""

    #: How long the caller waits (and the call's ``timeout_ms``).
    timeout: float | None = None
    #: Do not run before this many seconds from now (``run_at_ms``).
    delay: float | None = None
    #: Do not run before this time: an aware ``datetime`` or Unix seconds.
    run_at: datetime | float | None = None
    #: Run at most once per key while the key is held.
    idempotency_key: str | None = None
    #: How long the key is held once claimed (default 1 h).
    idempotency_ttl: float | None = None
    #: Free-form caller metadata (``meta``), given to the handler.
    metadata: Mapping[str, str] | None = None
    #: Keep the reply under ``P:result:{id}`` this long (``result_ttl_ms``).
    keep_result: float | None = None
    #: Attempt limit (``max_attempts``), 1 to 1000.
    max_attempts: int | None = None
    #: The call's priority, 1 (taken first) to 5 (last); ``None``: the
    #: job's ``#[priority]``, else 3. Workers share their slots between
    #: priorities by weight, so a less urgent call is delayed, never starved
    #: (docs/PROTOCOL.md, "Priorities").
    priority: int | None = None

    def merged(self, other: CallOptions | None) -> CallOptions:
        """These options with ``other``'s set fields on top (metadata merged)."""
        if other is None:
            return self
        changes: dict[str, Any] = {
            f.name: getattr(other, f.name)
            for f in dataclasses.fields(other)
            if getattr(other, f.name) is not None
        }
        if self.metadata is not None and other.metadata is not None:
            changes["metadata"] = {**self.metadata, **other.metadata}
        return dataclasses.replace(self, **changes)
