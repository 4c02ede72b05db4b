"""Hostile replies in a Python client's inbox: what cannot be read is
dropped and the call waits on for a readable reply; a number no double can
hold (``1e400``) is unreadable, as the Rust reader finds it, not read as
``inf``. Before the fix the call returned ``inf``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import rpc_runtime

from conftest import RedisServer

JOBS = "rpc:{Fake}:jobs"


def answer_with(server: RedisServer, bodies: Callable[[str], list[bytes]]) -> threading.Thread:
    """A fake worker: takes the first job and pushes ``bodies(id)`` to its inbox."""

    def run() -> None:
        got = server.r.xread({JOBS: "0"}, block=30_000, count=1)
        assert got, "no job sent"
        msg = json.loads(got[0][1][0][1][b"m"])
        for body in bodies(msg["id"]):
            server.r.rpush(msg["reply_to"], body)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_garbage_replies_are_dropped_and_the_call_waits_for_a_readable_one(
        server: RedisServer) -> None:
    def bodies(cid: str) -> list[bytes]:
        return [b"\xff", b"[1]", ("[" * 100_000).encode(),
                f'{{"v":1,"id":"{cid}","ok":1,"ok":2}}'.encode(),
                f'{{"v":1,"id":"{cid}","ok":1e400}}'.encode(),
                f'{{"v":1,"id":"{cid}","ok":NaN}}'.encode(),
                f'{{"v":1,"id":"{cid}","ok":"fine"}}'.encode()]

    with rpc_runtime.Client.connect(server.url, timeout=30.0) as client:
        t = answer_with(server, bodies)
        assert client.call_and_wait("Fake.x", {}).data == "fine"
        t.join(30)


def test_only_unreadable_replies_time_out_at_the_deadline(server: RedisServer) -> None:
    def bodies(cid: str) -> list[bytes]:
        return [f'{{"v":1,"id":"{cid}","ok":-1e400}}'.encode(),
                f'{{"v":1,"id":"{cid}","holder":"x}}:jobs"}}'.encode()]

    with rpc_runtime.Client.connect(server.url, timeout=2.0) as client:
        t = answer_with(server, bodies)
        began = time.monotonic()
        try:
            client.call_and_wait("Fake.x", {})
        except rpc_runtime.CallTimeout:
            pass
        else:
            raise AssertionError("an unreadable reply was taken")
        assert time.monotonic() - began < 10, "waited past the deadline"
        t.join(30)
