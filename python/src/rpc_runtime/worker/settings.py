"""A worker's settings, checked once when it is built (the defaults are
docs/PROTOCOL.md's "Timeouts")."""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass

from .. import limits
from .retry import Backoff


@dataclass(frozen=True)
class Settings:
    url: str
    prefix: str
    concurrency: int
    visibility_timeout_ms: int
    max_attempts: int
    backoff: Backoff
    shutdown_grace_s: float
    inbox_ttl_ms: int
    cancel_grace_s: float
    max_message_bytes: int
    beat_every_ms: int
    beat_ttl_ms: int
    metrics_addr: str | None
    version: str
    consumer: str


_CONSUMER = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def default_consumer() -> str:
    """``host-pid-random``, as the Rust worker names itself."""
    host = re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname())[:80] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def check_consumer(name: str) -> str:
    if _CONSUMER.fullmatch(name) is None:
        raise ValueError(
            f"a worker id is 1 to 128 characters of A-Z a-z 0-9 _ - . : (got {name!r})"
        )
    return name


def check(
    *,
    concurrency: int,
    visibility_timeout: float,
    max_attempts: int,
    heartbeat: tuple[float, float],
    max_message_bytes: int,
) -> None:
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if visibility_timeout < 0.03:
        raise ValueError("visibility_timeout must be at least 30 ms")
    if not 1 <= max_attempts <= limits.MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be 1 to {limits.MAX_ATTEMPTS}")
    every, ttl = heartbeat
    if not 0.1 <= every <= 60.0 or not every <= ttl <= 600.0:
        raise ValueError("heartbeat: every 0.1 to 60 s, ttl from `every` to 600 s")
    if max_message_bytes < 1:
        raise ValueError("max_message_bytes must be positive")
