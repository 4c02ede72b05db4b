"""Every Redis key of the protocol, built here and nowhere else in Python.

The mirror of ``rpc-protocol/src/keys.rs``; docs/PROTOCOL.md, "Keys", is the
normative table. ``P`` is the prefix (``rpc`` unless configured); the
``{...}`` parts are Redis Cluster hash tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import limits, priority

#: The consumer group on every jobs stream.
GROUP = "workers"

_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def is_client_id(client_id: str) -> bool:
    """Whether ``client_id`` can name an inbox: 1 to 128 of ``A-Z a-z 0-9 _ - . :``."""
    return _CLIENT_ID.fullmatch(client_id) is not None


def is_idempotency_key(key: str) -> bool:
    """1 to 200 bytes, no control characters, no braces."""
    return (
        1 <= len(key.encode("utf-8")) <= limits.MAX_IDEMPOTENCY_KEY_BYTES
        and not any(_is_control(c) or c in "{}" for c in key)
    )


def _is_control(c: str) -> bool:
    # Rust's char::is_control: the Unicode Cc category.
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0


@dataclass(frozen=True)
class Keys:
    """The keys under one prefix."""

    prefix: str = "rpc"

    def _of_service(self, service: str, what: str) -> str:
        return f"{self.prefix}:{{{service}}}:{what}"

    def jobs(self, service: str) -> str:
        return self._of_service(service, "jobs")

    def jobs_at(self, queue: str, p: int) -> str:
        """``P:{Q}:jobs`` for the default priority (3), else ``P:{Q}:jobs:<p>``:
        the stream (lane) of queue ``queue``'s calls at priority ``p``
        (docs/PROTOCOL.md, "Priorities")."""
        if p == priority.DEFAULT:
            return self.jobs(queue)
        return self._of_service(queue, f"jobs:{p}")

    def intake(self, service: str) -> str:
        return self._of_service(service, "intake")

    def moving(self, service: str) -> str:
        return self._of_service(service, "moving")

    def dead(self, service: str) -> str:
        return self._of_service(service, "dead")

    def schedule(self, service: str) -> str:
        return self._of_service(service, "schedule")

    def scheduled(self, service: str) -> str:
        return self._of_service(service, "scheduled")

    def cancelled(self, service: str) -> str:
        return self._of_service(service, "cancelled")

    def paused(self, service: str) -> str:
        return self._of_service(service, "paused")

    def shards(self, service: str) -> str:
        """``P:{S}:shards``, a service's shard count (a hash: ``count``, what
        clients place calls on; ``seen``, the most it ever had, what workers
        read). Lives once, in shard 0's slot (see ``shards.py``)."""
        return self._of_service(service, "shards")

    def ready(self, queue: str) -> str:
        """``P:{Q}:ready``, the channel a client ``SPUBLISH``es to after
        adding a job to queue ``Q`` on a Redis Cluster (which this runtime
        does not serve yet)."""
        return self._of_service(queue, "ready")

    def once(self, service: str, key: str) -> str:
        return f"{self.prefix}:{{{service}}}:once:{key}"

    def rate(self, service: str, job: str | None) -> str:
        """``P:{S}:rate`` (the service's own limit) or ``P:{S}:rate:<job>``."""
        return self._of_service(service, "rate" if job is None else f"rate:{job}")

    def rate_turns(self, service: str, job: str | None) -> str:
        """``P:{S}:turns`` or ``P:{S}:turns:<job>``: the turns of calls that wait."""
        return self._of_service(service, "turns" if job is None else f"turns:{job}")

    def periodic(self, service: str) -> str:
        return self._of_service(service, "periodic")

    def periodic_last(self, service: str) -> str:
        return self._of_service(service, "periodic:last")

    def stat_processed(self, service: str, day: str) -> str:
        return f"{self.prefix}:{{{service}}}:stat:processed:{day}"

    def stat_failed(self, service: str, day: str) -> str:
        return f"{self.prefix}:{{{service}}}:stat:failed:{day}"

    def failures(self, service: str) -> str:
        return self._of_service(service, "failures")

    def workers(self, service: str) -> str:
        return self._of_service(service, "workers")

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{{{worker_id}}}"

    def worker_control(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{{{worker_id}}}:control"

    def inbox(self, client_id: str) -> str:
        return f"{self.prefix}:inbox:{{{client_id}}}"

    def result(self, call_id: str) -> str:
        return f"{self.prefix}:result:{{{call_id}}}"

    def progress(self, call_id: str) -> str:
        """``P:progress:{call}``, a call's newest progress (docs/PROTOCOL.md,
        "Progress")."""
        return f"{self.prefix}:progress:{{{call_id}}}"

    def client_of_inbox(self, key: str) -> str | None:
        """The client id of an inbox key under this prefix, or None: what a
        worker checks a message's ``reply_to`` with."""
        head = f"{self.prefix}:inbox:{{"
        if not (key.startswith(head) and key.endswith("}")):
            return None
        client = key[len(head) : -1]
        return client if is_client_id(client) else None

    def is_inbox(self, key: str) -> bool:
        return self.client_of_inbox(key) is not None
