"""The per-key limits a worker applies (its deploy-time overrides), the
group slots its running jobs hold, and when it last saw keyed calls of each
queue: the state ``groups.py`` keeps between steps (docs/PROTOCOL.md,
"Per-key concurrency"). A file of its own so that ``shared.py`` can hold it
without importing the steps that use ``Shared``; the mirror of
``rpc-runtime/src/worker/group_limits.rs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import limits


@dataclass(frozen=True)
class Held:
    """A slot this worker holds for a running job (or a reservation it is
    giving back): the call, its job's wire name in the service, the key,
    and the limit it was taken under."""

    id: str
    job: str
    key: str
    limit: int


def check_overrides(overrides: Mapping[str, int] | None) -> dict[str, int]:
    """``Worker(group_limits=...)`` checked as the Rust builder checks it:
    each key ``Service.job``, each limit 1 to 10000. Raises ``ValueError``."""
    out: dict[str, int] = {}
    for job, limit in (overrides or {}).items():
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
            1 <= limit <= limits.MAX_GROUP_LIMIT
        ):
            raise ValueError(
                f"the per-key limit of `{job}` must be 1 to {limits.MAX_GROUP_LIMIT} "
                f"({limit!r} given)"
            )
        service, dot, name = job.partition(".") if isinstance(job, str) else ("", "", "")
        if not dot or not service or not name:
            raise ValueError(f"a per-key limit names its job as `Service.job` ({job!r} given)")
        out[job] = limit
    return out


@dataclass
class GroupBook:
    """The per-key limits this worker applies, and the slots it holds."""

    #: ``Service.job`` -> its per-key limit (deploy-time overrides).
    overrides: dict[str, int] = field(default_factory=dict)
    #: Slots held by running jobs, by (queue, entry id).
    held: dict[tuple[str, str], Held] = field(default_factory=dict)
    #: When each queue's groups were last swept (``time.monotonic()``).
    swept: dict[str, float] = field(default_factory=dict)
    #: When this worker last saw a keyed call of each queue.
    keyed_seen: dict[str, float] = field(default_factory=dict)

    def limit_of(self, service: str, job: str, schema: int | None) -> int:
        """The per-key limit of ``Service.job`` here: the override, else the
        schema's (``schema``), else 1."""
        limit = self.overrides.get(f"{service}.{job}")
        if limit is None:
            limit = schema if schema is not None else 1
        return min(max(limit, 1), limits.MAX_GROUP_LIMIT)
