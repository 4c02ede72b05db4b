"""A mounted (typed) service: params that do not decode are ``bad_request``
naming job and field, params that are not an object too, a result that
does not encode is ``handler``; and ``Worker.run()`` drains and exits on
SIGTERM with its running job answered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

from rpc_runtime import Context, DecodeError, EncodeError, JobBinding, JobSpec, Service, Worker

from conftest import RedisServer, wait_for


def decode_add(ctx: Context, params: Any) -> int:
    a = params.get("a")
    if not isinstance(a, int) or isinstance(a, bool):
        raise DecodeError("a", "expected an integer")
    return a + 1


def bad_encoder(value: Any) -> Any:
    raise EncodeError("", "does not fit an i8")


def test_typed_bindings(server: RedisServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    service = Service("Typed", (
        JobBinding(JobSpec("Typed", "inc"), decode_add),
        JobBinding(JobSpec("Typed", "big", encode_result=bad_encoder), lambda ctx, p: 1000),
    ))
    start_worker(Worker(server.url).mount(service))

    def call(job: str, params: Any, call_id: str) -> Any:
        inbox = f"rpc:inbox:{{t-{call_id}}}"
        server.r.xadd("rpc:{Typed}:jobs", {"m": json.dumps(
            {"v": 1, "id": call_id, "job": job, "params": params, "reply_to": inbox})})
        popped = server.r.blpop([inbox], 30)
        assert popped is not None
        return json.loads(popped[1])

    assert call("Typed.inc", {"a": 1}, "1")["ok"] == 2
    err = call("Typed.inc", {"a": "x"}, "2")["error"]
    assert err == {"kind": "bad_request", "message": "Typed.inc: `a`: expected an integer"}
    err = call("Typed.inc", [1], "3")["error"]
    assert err["kind"] == "bad_request" and "JSON object" in err["message"]
    err = call("Typed.big", {}, "4")["error"]
    assert err["kind"] == "handler" and "does not fit an i8" in err["message"]


def test_sigterm_drains_and_exits(server: RedisServer) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from rpc_runtime import Worker
        def slow(req):
            print("running", flush=True)
            time.sleep(1.0)
            return "done"
        Worker({server.url!r}, consumer="sigterm-test").handle("S.slow", slow).run()
        print("exited", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        inbox = "rpc:inbox:{sig}"
        server.r.xadd("rpc:{S}:jobs", {"m": json.dumps(
            {"v": 1, "id": "s1", "job": "S.slow", "params": {}, "reply_to": inbox})})
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGTERM)
        popped = server.r.blpop([inbox], 30)
        assert popped is not None and json.loads(popped[1])["ok"] == "done"
        assert proc.wait(30) == 0
        assert proc.stdout.read().strip() == "exited"
        wait_for(lambda: server.r.exists("rpc:worker:{sigterm-test}") == 0, 10, "beat deleted")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
