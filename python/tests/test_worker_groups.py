"""Per-key concurrency in Python (docs/PROTOCOL.md, "Per-key concurrency"):
the client writes a call's ``group`` and refuses a bad one in Rust's words;
Python workers keep one key's limit together through ``group_admit.lua`` and
``group_release.lua``, and so do a Python and a Rust ``chaos-worker``; a raw
message with a bad ``group`` is dead-lettered with the reason; a slot whose
holder died is handed on by the lifecycle poll's sweep."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rpc_runtime import AsyncClient, CallOptions, InvalidCall, JobSpec, Request, Worker
from rpc_runtime.worker.group_limits import GroupBook, check_overrides
from support import REPO, Process, RedisServer, python_example, rust_bin, rust_process, wait_for

WORK: JobSpec[Any] = JobSpec("T", "work")


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one time (one that ends as another
    starts does not overlap it)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = top = 0
    for _, step in events:
        now += step
        top = max(top, now)
    return top


def group_keys(server: RedisServer, queue: str) -> list[bytes]:
    return sorted(server.r.keys(f"rpc:{{{queue}}}:group*"))


def group_state(server: RedisServer, queue: str) -> dict[bytes, Any]:
    """The group keys of ``queue`` and what they hold (for a failure's message)."""
    out: dict[bytes, Any] = {}
    for k in group_keys(server, queue):
        kind = server.r.type(k)
        out[k] = (server.r.zrange(k, 0, -1, withscores=True) if kind == b"zset"
                  else server.r.lrange(k, 0, -1) if kind == b"list"
                  else server.r.smembers(k))
    return out


def test_limits_are_checked_and_the_override_wins() -> None:
    # The same rules as group_limits.rs: `Service.job`, 1 to 10000.
    assert check_overrides({"S.j": 1, "S.k": 10_000}) == {"S.j": 1, "S.k": 10_000}
    for bad, why in [({"S.j": 0}, "must be 1 to 10000"), ({"S.j": 10_001}, "must be 1 to 10000"),
                     ({"j": 2}, "`Service.job`"), ({".j": 2}, "`Service.job`")]:
        with pytest.raises(ValueError, match=why):
            check_overrides(bad)
    with pytest.raises(ValueError, match="must be 1 to 10000"):
        Worker("redis://127.0.0.1:1", group_limits={"S.j": 0})
    book = GroupBook(overrides={"S.j": 4})
    assert book.limit_of("S", "j", 9) == 4, "the override wins"
    assert book.limit_of("S", "other", 9) == 9, "then the schema's"
    assert book.limit_of("S", "other", None) == 1


def test_the_client_refuses_a_bad_group_key_in_rusts_words(server: RedisServer) -> None:
    # place.rs's refusal, before anything is sent; a good key is written as given.
    async def main() -> None:
        async with AsyncClient.connect(server.url, timeout=5.0) as client:
            for bad, size in [("", 0), ("a\nb", 3), ("x}:intake", 9), ("{S}", 3),
                              ("k" * 129, 129)]:
                with pytest.raises(InvalidCall) as refused:
                    await client.send_job(WORK, {}, CallOptions(group=bad))
                assert (f"is not 1 to 128 bytes without control characters or braces "
                        f"({size} bytes given)") in str(refused.value)
                assert str(refused.value).startswith("group key \""), str(refused.value)
            assert not server.r.exists("rpc:{T}:jobs"), "nothing was sent"
            await client.send_job(WORK, {}, CallOptions(group="tenant-7"))

    asyncio.run(main())
    (entry,) = server.r.xrange("rpc:{T}:jobs")
    message = json.loads(entry[1][b"m"])
    assert message["group"] == "tenant-7" and message["v"] == 1


def test_a_bad_group_in_a_raw_message_is_dead_lettered_with_the_reason(
        server: RedisServer, start_worker: Any) -> None:
    ran: list[str] = []
    start_worker(Worker(server.url).handle("T.work", lambda req: ran.append(req.id)))
    inbox = "rpc:inbox:{c-groups}"
    reasons = {
        "bad-braces": ('"x}:intake"', "`group` must be 1 to 128 bytes without control characters "
                       "or braces (9 bytes given)"),
        "bad-empty": ('""', "`group` must be 1 to 128 bytes without control characters or "
                      "braces (0 bytes given)"),
        "bad-control": ('"a\\u0001b"', "`group` must be 1 to 128 bytes without control "
                        "characters or braces (3 bytes given)"),
        "bad-type": ("7", "invalid type: integer `7`, expected a string"),
    }
    for call_id, (group, _) in reasons.items():
        text = (f'{{"v":1,"id":"{call_id}","job":"T.work","params":{{}},'
                f'"reply_to":"{inbox}","group":{group}}}')
        server.r.xadd("rpc:{T}:jobs", {"m": text})
    replies = [server.r.blpop([inbox], 30) for _ in reasons]
    answered = {json.loads(r[1])["id"]: json.loads(r[1])["error"] for r in replies if r}
    assert set(answered) == set(reasons)
    wait_for(lambda: server.r.xlen("rpc:{T}:dead") == len(reasons), 30, "the dead letters")
    dead = {json.loads(fields[b"m"])["id"]: fields[b"reason"].decode()
            for _, fields in server.r.xrange("rpc:{T}:dead")}
    for call_id, (_, reason) in reasons.items():
        assert dead[call_id] == f"unreadable job message: {reason}"
        assert answered[call_id]["kind"] == "bad_request"
    assert ran == [], "no handler ran"
    assert group_keys(server, "T") == []


def test_two_python_workers_run_at_most_k_calls_of_one_key_at_once(
        server: RedisServer, start_worker: Any) -> None:
    # Reproduces: 20 calls of one key, limit 2, two workers with 16 slots
    # each: never more than 2 handlers of the key at once, every call answered.
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []

    async def work(req: Request) -> str:
        began = time.monotonic()
        await asyncio.sleep(0.1)
        with lock:
            spans.append((began, time.monotonic()))
        return str(req.data["i"])

    for _ in range(2):
        start_worker(Worker(server.url, group_limits={"T.work": 2}, visibility_timeout=5.0)
                     .handle("T.work", work))

    async def main() -> list[Any]:
        async with AsyncClient.connect(server.url, timeout=60.0) as client:
            sent = [await client.send_job(WORK, {"i": i}, CallOptions(group="tenant-a"))
                    for i in range(20)]
            return list(await asyncio.gather(*(p.result(60.0) for p in sent)))

    started = time.monotonic()
    answers = asyncio.run(main())
    took = time.monotonic() - started
    assert answers == [str(i) for i in range(20)]
    assert len(spans) == 20
    assert most_at_once(spans) == 2, sorted(spans)
    # Ten rounds of 100 ms at two at a time, not one round of twenty.
    assert took >= 0.95, took
    wait_for(lambda: group_keys(server, "T") == [], 10, "the key's sets gone")
    assert not server.r.exists("rpc:{T}:groups")


def test_a_slot_whose_holder_died_is_handed_on_by_the_sweep(
        server: RedisServer, start_worker: Any) -> None:
    # Reproduces: a worker died holding the key's only slot (a running
    # member no one will release); the call parked behind it runs once the
    # slot lapses, handed on by the lifecycle poll with no completion.
    ran: list[float] = []
    start_worker(Worker(server.url).handle("T.work", lambda req: ran.append(time.monotonic())))
    now_s, now_us = server.r.time()
    lapses_ms = now_s * 1000 + now_us // 1000 + 1500
    server.r.zadd("rpc:{T}:group:work:k:running", {"ghost": lapses_ms})

    async def main() -> Any:
        async with AsyncClient.connect(server.url, timeout=30.0) as client:
            pending = await client.send_job(WORK, {}, CallOptions(group="k"))
            await asyncio.sleep(0.5)
            parked = server.r.llen("rpc:{T}:group:work:k:waiting")
            return parked, await pending.result(30.0)

    sent = time.monotonic()
    parked, _ = asyncio.run(main())
    assert parked == 1, "parked behind the dead worker's slot"
    assert ran and ran[0] - sent >= 1.2, "not before the slot lapsed"
    wait_for(lambda: group_keys(server, "T") == [], 10, "the key's sets gone")


def test_a_stopping_worker_gives_back_the_slot_of_a_job_it_drains(
        server: RedisServer, start_worker: Any) -> None:
    # Reproduces: a keyed job that ends while its worker drains for a stop
    # gives its slot back before the worker exits (not after 30 s, when it
    # would lapse).
    began = threading.Event()

    async def slow(req: Request) -> None:
        began.set()
        await asyncio.sleep(0.5)

    running = start_worker(Worker(server.url).handle("T.work", slow))
    message = {"v": 1, "id": "drained", "job": "T.work", "params": {}, "group": "k"}
    server.r.xadd("rpc:{T}:jobs", {"m": json.dumps(message)})
    assert began.wait(30), "the job started"
    assert server.r.zrange("rpc:{T}:group:work:k:running", 0, -1) == [b"drained"]
    running.stop()
    assert group_keys(server, "T") == [], group_state(server, "T")


def starts_of(process: Process) -> dict[str, int]:
    """Call id -> when its ``record`` began (µs), from the ``ran`` lines."""
    out = {}
    for line in process.lines:
        if line.startswith("ran "):
            _, call_id, _attempt, at = line.split(" ")
            out[call_id] = int(at)
    return out


def test_a_python_and_a_rust_worker_keep_one_keys_limit_together(server: RedisServer) -> None:
    # Reproduces: one key's calls served by workers of both languages with
    # the same limit: never more than K running at once across both.
    limit, ms = "Chaos.record=2", 100
    record: JobSpec[None] = JobSpec("Chaos", "record")
    with python_example("chaos_worker.py", server.url, "--group-limit", limit,
                        ready="ready ") as py, \
            rust_process("chaos-worker", server.url, "--group-limit", limit) as rs:

        async def main() -> list[str]:
            async with AsyncClient.connect(server.url, timeout=120.0) as client:
                sent = [await client.send_job(record, {"ms": ms}, CallOptions(group="t1"))
                        for _ in range(20)]
                await asyncio.gather(*(p.result(120.0) for p in sent))
                return [p.id for p in sent]

        ids = asyncio.run(main())
        wait_for(lambda: len(starts_of(py)) + len(starts_of(rs)) >= 20, 30, "every ran line")
        py_starts, rs_starts = starts_of(py), starts_of(rs)
        # Every slot given back while both still serve (a leaked one would
        # stay until its lease of 30 s lapsed).
        try:
            wait_for(lambda: group_keys(server, "Chaos") == [], 10, "the key's sets gone")
        except AssertionError:
            raise AssertionError(f"left: {group_state(server, 'Chaos')}\n{py.describe()}\n"
                                 f"{rs.describe()}") from None
    assert py_starts and rs_starts, "both workers ran calls of the key"
    every = {**py_starts, **rs_starts}
    assert sorted(every) == sorted(ids)
    # Each handler runs at least `ms` from its start (its slot is given
    # back after it ends), so these spans are within the true ones.
    spans = [(float(t), float(t + ms * 1000)) for t in every.values()]
    assert most_at_once(spans) <= 2, sorted(spans)


def generate_tenants(root: Path) -> ModuleType:
    """build-examples/tenants/tenants.rpc generated into ``root/tenants_gen``."""
    out = root / "tenants_gen"
    done = subprocess.run(
        [str(rust_bin("rpc-codegen")), "gen", "--lang", "python",
         str(REPO / "build-examples" / "tenants" / "tenants.rpc"), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    return importlib.import_module("tenants_gen.tenants")


def test_the_generated_client_sends_its_group_by_parameter_and_the_schema_limit_holds(
        server: RedisServer, start_worker: Any, tmp_path: Path) -> None:
    # Reproduces: `#[group_by = "tenant"] #[group_limit = 2]`: the typed
    # client sends the tenant as the call's group key (an integer in
    # decimal, a key the options name kept), and a worker without an
    # override applies the schema's limit of 2.
    tenants = generate_tenants(tmp_path)
    assert tenants.REPORTS_BUILD.group_limit == 2 and tenants.REPORTS_TOUCH.group_limit is None
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []
    touched: list[int] = []

    class Handler(tenants.AsyncReports):  # type: ignore[misc, name-defined]
        async def build(self, ctx: Any, tenant: str, pages: int) -> int:
            began = time.monotonic()
            await asyncio.sleep(0.1)
            with lock:
                spans.append((began, time.monotonic()))
            return pages

        async def touch(self, ctx: Any, account: int) -> None:
            touched.append(account)

    async def touches() -> None:
        async with AsyncClient.connect(server.url, timeout=60.0) as client:
            await tenants.AsyncReportsClient(client).touch(42)
            await tenants.AsyncReportsClient(client, CallOptions(group="chosen")).touch(7)

    asyncio.run(touches())
    groups = [json.loads(fields[b"m"]).get("group")
              for _, fields in server.r.xrange("rpc:{Reports}:jobs")]
    assert groups == ["42", "chosen"], groups
    start_worker(Worker(server.url).mount(tenants.reports_service(Handler())))

    async def builds() -> list[int]:
        async with AsyncClient.connect(server.url, timeout=60.0) as client:
            reports = tenants.AsyncReportsClient(client)
            sent = [await reports.build_send("acme", i) for i in range(8)]
            return list(await asyncio.gather(*(p.result(60.0) for p in sent)))

    assert asyncio.run(builds()) == list(range(8))
    assert most_at_once(spans) == 2, sorted(spans)
    wait_for(lambda: sorted(touched) == [7, 42], 10, "both touches")


def test_a_refused_message_moved_back_with_a_reserved_slot_gives_the_slot_back(
        server: RedisServer, start_worker: Any) -> None:
    # Reproduces: parking ahead moved a message no worker had checked (its
    # reply_to is no inbox) onto key k's waiting list, and the hand-on moved
    # it back with k's one slot reserved under its id. The worker that
    # dead-letters it gives the slot back, so the call behind it runs now,
    # not when the slot lapses (60 s).
    ran: list[str] = []
    start_worker(Worker(server.url, visibility_timeout=60.0)
                 .handle("T.work", lambda req: ran.append(req.id)))
    now_s, now_us = server.r.time()
    server.r.zadd("rpc:{T}:group:work:k:running",
                  {"bad": now_s * 1000 + now_us // 1000 + 60_000})
    server.r.rpush("rpc:{T}:group:work:k:waiting",
                   '{"v":1,"id":"next","job":"T.work","params":{},"group":"k"}')
    server.r.sadd("rpc:{T}:groups", "work:k")
    bad = '{"v":1,"id":"bad","job":"T.work","params":{},"reply_to":"rpc:{T}:jobs","group":"k"}'
    server.r.xadd("rpc:{T}:jobs", {"m": bad})
    wait_for(lambda: server.r.xlen("rpc:{T}:dead") == 1, 10, "the dead letter")
    wait_for(lambda: ran == ["next"], 8, "the call behind it to run")
    wait_for(lambda: group_keys(server, "T") == [], 10, "the key's sets gone")
