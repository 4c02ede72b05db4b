"""A reply Redis refuses for good (an inbox overwritten with a string) ends
the job once: dead-lettered with the reason, result kept, acked. And the
optional /metrics endpoint counts jobs."""

from __future__ import annotations

import json
import urllib.request

from rpc_runtime import Worker

from conftest import RedisServer, free_port, wait_for


def test_a_refused_reply_is_dead_lettered_once(server: RedisServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    start_worker(Worker(server.url).handle("W.echo", lambda r: r.data))
    inbox = "rpc:inbox:{wrongtype}"
    server.r.set(inbox, "not a list")
    server.r.xadd("rpc:{W}:jobs", {"m": json.dumps(
        {"v": 1, "id": "w1", "job": "W.echo", "params": 1, "reply_to": inbox,
         "result_ttl_ms": 60000})})
    letters = wait_for(lambda: server.r.xrange("rpc:{W}:dead"), 30, "the dead letter")
    reason = letters[0][1][b"reason"].decode()
    assert reason.startswith(f"writing the reply to `{inbox}` was refused: WRONGTYPE"), reason
    assert json.loads(server.r.get("rpc:result:{w1}"))["ok"] == 1  # type: ignore[arg-type]
    wait_for(lambda: server.r.xpending("rpc:{W}:jobs", "workers")["pending"] == 0, 30, "acked")
    assert len(server.r.xrange("rpc:{W}:dead")) == 1


def test_metrics_count_jobs(server: RedisServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    start_worker(Worker(server.url, metrics_addr=f"127.0.0.1:{port}")
                 .handle("M.echo", lambda r: r.data))
    inbox = "rpc:inbox:{metrics}"
    server.r.xadd("rpc:{M}:jobs", {"m": json.dumps(
        {"v": 1, "id": "m1", "job": "M.echo", "params": 1, "reply_to": inbox})})
    assert server.r.blpop([inbox], 30) is not None
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'rpc_worker_jobs_total{job="M.echo",outcome="succeeded",service="M"} 1.0' in text
