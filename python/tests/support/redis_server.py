"""A private redis-server per test (never the one on 6379): a free port
found by binding port 0, ``--save '' --appendonly no``, killed by pid at the
end; and :func:`wait_for`, the one way tests wait (on an observable event,
with a generous deadline, never a fixed sleep)."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any, Callable

import redis

from .tools import redis_server_bin


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Polls ``cond`` until it returns something true (returned), or fails
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


class RedisServer:
    """A redis-server on a free port of 127.0.0.1, with a client ``r``."""

    def __init__(self) -> None:
        binary = redis_server_bin()
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/"
        self.r = redis.Redis(port=self.port)
        wait_for(self._up, 10, "redis-server up")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited: {self.proc.returncode}")
        try:
            return bool(self.r.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Kills the server (by its pid) and waits for it."""
        self.r.close()
        self.proc.kill()
        self.proc.wait()
