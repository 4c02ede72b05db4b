"""Support for the client's tests (no tests here): a private redis-server
and a hand-written fake worker that follows docs/PROTOCOL.md by hand
(XREADGROUP, the intake moved with the real intake.lua, replies pushed and
kept, cancellations, delayed calls, idempotency keys with fingerprints), so
the client is tested without the Python worker.

``python test_client_support.py PORT PREFIX`` runs the fake worker as a
process of its own (for the throughput figures).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rpc_runtime import scripts  # noqa: E402
from rpc_runtime.keys import GROUP, Keys  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on a free port, killed by pid at the end."""

    def __init__(self, extra: list[str] | None = None) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for these tests"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             *(extra or [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=self.port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)

    def client(self) -> Any:
        """A plain synchronous redis-py client (typed Any: redis-py's sync
        and async return types are one union)."""
        return redis.Redis(port=self.port)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def canonical(value: Any) -> str:
    """Enough of the fingerprint's canonical form for the test values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(job: str, params: Any) -> str:
    return hashlib.sha256(f"{job}\n{canonical(params)}".encode()).hexdigest()


Handler = Callable[[dict[str, Any], "FakeWorker"], Any]


class FakeWorker:
    """One consumer of ``P:{service}:jobs`` answering the test jobs."""

    def __init__(self, port: int, prefix: str, service: str = "Calc", *, move_intake: bool = True) -> None:
        self.r: Any = redis.Redis(port=port)
        self.keys = Keys(prefix)
        self.service = service
        self.move_intake = move_intake
        self.stop_flag = threading.Event()
        self.delayed: list[dict[str, Any]] = []
        self.ran: list[str] = []  # call ids whose handler ran
        self.seen: list[dict[str, Any]] = []  # every message taken
        self.thread: threading.Thread | None = None
        self.job_threads: list[threading.Thread] = []
        self.jobs = self.keys.jobs(service)
        self.consumer = f"fake-{os.getpid()}-{id(self)}"
        try:
            self.r.xgroup_create(self.jobs, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def start(self) -> FakeWorker:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(10)
        for t in self.job_threads:
            t.join(40)

    # -- the loop --------------------------------------------------------

    def run(self) -> None:
        intake = scripts.intake()
        while not self.stop_flag.is_set():
            if self.move_intake:
                k, s = self.keys, self.service
                args: list[Any] = [k.moving(s), k.intake(s), k.jobs(s), k.schedule(s), k.scheduled(s), k.cancelled(s),
                        k.dead(s), 1000, 1 << 20, 86_400_000, 256, 16 << 20, 10_000]
                try:
                    self.r.evalsha(intake.sha1, 7, *args)
                except redis.exceptions.NoScriptError:
                    self.r.script_load(intake.source)
            now = self.redis_ms()
            due = [m for m in self.delayed if m["run_at_ms"] <= now]
            for m in due:
                self.delayed.remove(m)
                if self.r.zscore(self.keys.cancelled(self.service), m["id"]) is not None:
                    self.answer(m, {"error": {"kind": "cancelled", "message": "the call was cancelled"}})
                else:
                    self.handle(m, None, None)
            got = self.r.xreadgroup(GROUP, self.consumer, {self.jobs: ">"}, count=100, block=50)
            for _, entries in got or []:
                for entry_id, fields in entries:
                    self.take(entry_id, fields)

    def redis_ms(self) -> int:
        s, us = self.r.time()
        return int(s) * 1000 + int(us) // 1000

    def take(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        msg = json.loads(fields[b"m"])
        self.seen.append(msg)
        cancelled = fields.get(b"c") == b"1" or self.r.zscore(self.keys.cancelled(self.service), msg["id"]) is not None
        self.r.xack(self.jobs, GROUP, entry_id)
        self.r.xdel(self.jobs, entry_id)
        if cancelled:
            self.answer(msg, {"error": {"kind": "cancelled", "message": "the call was cancelled before it ran"}})
            return
        if msg.get("run_at_ms") and msg["run_at_ms"] > self.redis_ms():
            self.delayed.append(msg)
            return
        self.handle(msg, entry_id, fields)

    def handle(self, msg: dict[str, Any], entry_id: bytes | None, fields: Any) -> None:
        key = msg.get("idempotency_key")
        fp = None
        if key is not None:
            fp = fingerprint(msg["job"], msg["params"])
            ttl = msg.get("idempotency_ttl_ms", 3_600_000)
            held = self.r.set(self.keys.once(self.service, key), f"{msg['id']} {fp}", nx=True, px=ttl, get=True)
            if held is not None:
                holder, _, their_fp = held.decode().partition(" ")
                if their_fp != fp:
                    self.answer(msg, {"error": {"kind": "idempotency_conflict", "message": "held",
                                                "data": {"key": key}}}, fp)
                    return
                self.answer(msg, {"holder": holder}, fp, keep=holder != msg["id"])
                return
        job = msg["job"].partition(".")[2]
        handler = getattr(self, "job_" + job, None)
        if handler is None:
            self.answer(msg, {"error": {"kind": "unknown_job", "message": f"no job named `{job}`"}}, fp)
            return
        if job == "slow" or job == "lost":
            t = threading.Thread(target=lambda: self.run_job(handler, msg, fp), daemon=True)
            self.job_threads.append(t)
            t.start()
        else:
            self.run_job(handler, msg, fp)

    def run_job(self, handler: Callable[[dict[str, Any]], Any], msg: dict[str, Any], fp: str | None) -> None:
        self.ran.append(msg["id"])
        answer = handler(msg)
        if answer is not None:
            self.answer(msg, answer, fp)

    def answer(self, msg: dict[str, Any], answer: dict[str, Any], fp: str | None = None, *, keep: bool = True,
               push: bool = True) -> None:
        reply: dict[str, Any] = {"v": 1, "id": msg["id"]}
        if fp is not None:
            reply["fingerprint"] = fp
        reply.update(answer)
        body = json.dumps(reply, separators=(",", ":"))
        # Kept first: complete.lua writes both in one step.
        ttl = msg.get("result_ttl_ms", 0)
        if keep and ttl:
            self.r.set(self.keys.result(msg["id"]), body, px=ttl)
        if push and msg.get("reply_to"):
            try:
                self.r.rpush(msg["reply_to"], body)
            except redis.ResponseError:  # WRONGTYPE: a real worker dead-letters it
                return
            self.r.pexpire(msg["reply_to"], 60_000)

    # -- the jobs ----------------------------------------------------------

    def job_add(self, msg: dict[str, Any]) -> Any:
        p = msg["params"]
        return {"ok": p["a"] + p["b"]}

    def job_echo(self, msg: dict[str, Any]) -> Any:
        return {"ok": {"params": msg["params"], "meta": msg.get("meta"), "message": msg}}

    def job_nothing(self, msg: dict[str, Any]) -> Any:
        return {"ok": None}

    def job_fail(self, msg: dict[str, Any]) -> Any:
        return {"error": {"kind": "handler", "message": "it broke"}}

    def job_app(self, msg: dict[str, Any]) -> Any:
        return {"error": {"kind": "app", "message": "app error", "data": msg["params"].get("error", "DivideByZero")}}

    def job_newkind(self, msg: dict[str, Any]) -> Any:
        return {"error": {"kind": "brand_new_kind", "message": "from the future"}}

    def job_empty(self, msg: dict[str, Any]) -> Any:
        return {}

    def job_garbage(self, msg: dict[str, Any]) -> Any:
        # Unreadable replies first (ignored by the client), then the answer.
        for junk in ["not json", "[1,2]", json.dumps({"v": 1, "id": msg["id"], "ok": 1, "ok ": 2})[:-3],
                     '{"v":1,"id":"%s","ok":1,"ok":2}' % msg["id"], '{"v":"1","id":"%s","ok":1}' % msg["id"]]:
            self.r.rpush(msg["reply_to"], junk)
        return {"ok": "fine"}

    def job_slow(self, msg: dict[str, Any]) -> Any:
        time.sleep(msg["params"].get("ms", 100) / 1000)
        return {"ok": "slow"}

    def job_lost(self, msg: dict[str, Any]) -> Any:
        # The reply is written only to the kept result, once the test says.
        release = self.keys.prefix + ":test:release"
        deadline = time.monotonic() + 30
        while not self.r.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.answer(msg, {"ok": "kept"}, push=False)
        return None


def running_worker(server: RedisServer, prefix: str, **kwargs: Any) -> Iterator[FakeWorker]:
    worker = FakeWorker(server.port, prefix, **kwargs).start()
    try:
        yield worker
    finally:
        worker.stop()


def spawn_worker(port: int, prefix: str) -> subprocess.Popen[bytes]:
    """The fake worker as a process of its own (it then competes with the
    client for the CPU, not for the GIL)."""
    return subprocess.Popen([sys.executable, __file__, str(port), prefix])


if __name__ == "__main__":
    FakeWorker(int(sys.argv[1]), sys.argv[2], move_intake=False).run()
