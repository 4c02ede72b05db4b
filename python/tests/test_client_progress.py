"""The client side of progress (docs/PROTOCOL.md, "Progress"):
``progress.decode`` refuses what ``ProgressValue::decode`` refuses;
``pending.progress()`` of the async and sync clients gives a Python
worker's three steps in order and ends with the call; a Rust worker's
(rpc-chaos's ``Chaos.steps``) likewise; garbage written into the key with
redis-cli is one ``BadProgress`` item, then the good values go on; a watch
by id ends at its deadline (no value, garbage, Redis paused) or when the
kept result is there."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from typing import Any

import pytest

from rpc_runtime import (
    AsyncClient,
    BadProgress,
    CallOptions,
    Client,
    JobSpec,
    Progress,
    ProgressError,
    Request,
    Worker,
)
from rpc_runtime.progress import MAX_VALUE_BYTES, MESSAGE_CHARS, decode

from conftest import RedisServer, wait_for
from support import python_example, rust_process

PATIENCE = 60.0


def getranges(server: RedisServer) -> int:
    """``GETRANGE``s Redis has run so far (the watchers' reads)."""
    return int(server.r.info("commandstats").get("cmdstat_getrange", {}).get("calls", 0))


def wait_until_seen(server: RedisServer, call_id: str, seq: int) -> None:
    """Until call ``call_id``'s key holds report ``seq`` and a watcher has
    read the key since."""
    key = f"rpc:progress:{{{call_id}}}"
    wait_for(lambda: f'"seq":{seq},' in (server.r.get(key) or b"").decode(), PATIENCE,
             f"report {seq} written")
    seen = getranges(server)
    wait_for(lambda: getranges(server) > seen, PATIENCE, f"report {seq} read")


def redis_cli(server: RedisServer, *args: str) -> str:
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is needed (redis-tools)"
    out = subprocess.run([cli, "-p", str(server.port), *args], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def steps_worker(server: RedisServer) -> Worker:
    """``T.steps``: reports steps 1 to 3 of 3, each once a watcher has seen
    it, and answers ``{"copied": 3}``."""

    def steps(req: Request) -> Any:
        for i in range(1, 4):
            req.context.progress((i, 3), f"step {i}")
            wait_until_seen(server, req.id, i)
        return {"copied": 3}

    return Worker(server.url).handle("T.steps", steps)


def summary(items: list[Any]) -> list[Any]:
    return [(p.done, p.total, p.message) if isinstance(p, Progress) else type(p).__name__
            for p in items]


STEPS = [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


# -- decoding ---------------------------------------------------------------------


def test_decode_reads_the_documented_value_and_refuses_everything_else() -> None:
    value = decode(b'{"seq":3,"at_ms":1700000000000,"attempt":1,"done":3,"total":10,'
                   b'"fraction":0.3,"message":"copying"}')
    assert value == Progress(seq=3, attempt=1, at_ms=1700000000000, fraction=0.3, done=3,
                             total=10, message="copying")
    # A fraction alone, without `attempt`, unknown members ignored.
    plain = decode(b'{"seq":1,"at_ms":5,"fraction":1,"extra":{"seq":"x","seq":1},"done":null}')
    assert (plain.attempt, plain.done, plain.total, plain.message, plain.fraction) == \
        (1, None, None, "", 1.0)
    long = decode(('{"seq":1,"at_ms":1,"fraction":0.5,"message":"' + "é" * 300 + '"}').encode())
    assert long.message == "é" * MESSAGE_CHARS
    assert decode(b'{"seq":2,"at_ms":1,"attempt":2,"fraction":0}').is_after((1, 9))
    assert not decode(b'{"seq":2,"at_ms":1,"fraction":0}').is_after((1, 2))
    for bad in [
        b"", b"not json", b"null", b'"x"', b"[1,2,3,4,5,6,7]", b"\xff\xfe", b"[" * MAX_VALUE_BYTES,
        b'{"seq":"one","at_ms":1,"fraction":0.5}',
        b'{"seq":1,"at_ms":1,"fraction":1.5}',
        b'{"seq":1,"at_ms":1,"fraction":-0.1}',
        b'{"seq":1,"at_ms":1,"fraction":NaN}',
        b'{"seq":1,"at_ms":1,"fraction":1e400}',
        b'{"seq":1,"at_ms":1,"fraction":' + b"9" * 400 + b"}",
        b'{"seq":1,"at_ms":1,"fraction":true}',
        b'{"seq":-1,"at_ms":1,"fraction":0.1}',
        b'{"seq":1.0,"at_ms":1,"fraction":0.1}',
        b'{"seq":18446744073709551616,"at_ms":1,"fraction":0.1}',
        b'{"seq":1,"seq":2,"at_ms":1,"fraction":0.1}',
        b'{"at_ms":1,"fraction":0.1}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"done":4,"total":3}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"done":0,"total":0}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"done":1}',
        b'{"seq":1,"at_ms":1,"attempt":0,"fraction":0.1}',
        b'{"seq":1,"at_ms":1,"attempt":null,"fraction":0.1}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"message":7}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"message":null}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"message":"\\ud800"}',
        b'{"seq":1,"at_ms":1,"fraction":0.1,"message":"' + b"x" * MAX_VALUE_BYTES + b'"}',
    ]:
        with pytest.raises(BadProgress):
            decode(bad)


# -- watching a call placed here ----------------------------------------------------------


def test_the_async_client_watches_a_python_workers_three_steps(
    server: RedisServer, start_worker: Any
) -> None:
    running = start_worker(steps_worker(server))

    async def main() -> None:
        async with AsyncClient.connect(server.url) as client:
            spec: JobSpec[Any] = JobSpec("T", "steps")
            pending = await client.send_job(spec, {}, CallOptions(timeout=PATIENCE))

            async def watch() -> list[Any]:
                return [item async for item in pending.progress()]

            items, answer = await asyncio.gather(watch(), pending.result())
            assert answer == {"copied": 3}
            assert summary(items) == STEPS
            assert [p.seq for p in items] == [1, 2, 3] and all(p.attempt == 1 for p in items)
            assert [p.fraction for p in items] == [1 / 3, 2 / 3, 1.0]
            # Ended with the call: a new watch ends at once too.
            started = time.monotonic()
            again = [item async for item in pending.progress()]
            assert summary(again) == [STEPS[-1]] and time.monotonic() - started < 5

    asyncio.run(main())
    running.stop()


def test_the_sync_client_watches_a_python_workers_three_steps(
    server: RedisServer, start_worker: Any
) -> None:
    running = start_worker(steps_worker(server))
    with Client.connect(server.url, timeout=PATIENCE) as client:
        pending = client.send_job(JobSpec("T", "steps"), {})
        items = list(pending.progress())
        assert summary(items) == STEPS
        assert pending.result(timeout=5) == {"copied": 3}
        # And a plain call watched by id ends with its kept result.
        call_id = client.call("T.steps")
        by_id = list(client.watch_progress(call_id, PATIENCE))
        assert summary(by_id) == STEPS
        assert client.fetch(call_id) is not None
        read = client.read_progress(call_id)
        assert read is not None and read.seq == 3
    running.stop()


@pytest.mark.parametrize("worker", ["rust", "python"])
def test_a_chaos_workers_progress_watched_from_python(server: RedisServer, worker: str) -> None:
    """rpc-chaos's ``chaos-worker`` (and its Python twin) ``Chaos.steps``."""
    started = (rust_process("chaos-worker", server.url) if worker == "rust"
               else python_example("chaos_worker.py", server.url, ready="ready "))
    with started:

        async def main() -> None:
            async with AsyncClient.connect(server.url) as client:
                spec: JobSpec[int] = JobSpec("Chaos", "steps")
                pending = await client.send_job(spec, {"n": 3, "ms": 1000},
                                                CallOptions(timeout=PATIENCE))
                items: list[Any] = []

                async def watch() -> None:
                    async for item in pending.progress():
                        items.append(item)

                _, answer = await asyncio.gather(watch(), pending.result())
                assert answer == 3
                # A report stands for a second: a watch reading every 200 ms
                # sees each.
                assert summary(items) == STEPS, items
                assert [p.seq for p in items] == [1, 2, 3]
                assert all(p.at_ms > 1_600_000_000_000 for p in items)

        asyncio.run(main())


# -- hostile values ---------------------------------------------------------------


def test_garbage_in_the_key_is_one_error_item_then_the_good_values_go_on(
    server: RedisServer, start_worker: Any
) -> None:
    release = threading.Event()

    def gated(req: Request) -> Any:
        req.context.progress((1, 2), "one")
        assert release.wait(PATIENCE)
        req.context.progress((2, 2), "two")
        wait_until_seen(server, req.id, 2)
        return "done"

    running = start_worker(Worker(server.url).handle("T.gated", gated))

    async def main() -> None:
        async with AsyncClient.connect(server.url) as client:
            call_id = await client.call("T.gated")
            items: list[Any] = []

            async def watch() -> None:
                async for item in client.watch_progress(call_id, PATIENCE):
                    items.append(item)

            watching = asyncio.create_task(watch())

            async def until(n: int, what: str) -> None:
                limit = time.monotonic() + PATIENCE
                while len(items) < n:
                    assert time.monotonic() < limit, f"{what}: {items}"
                    assert not watching.done(), f"the watch ended: {items}"
                    await asyncio.sleep(0.01)

            await until(1, "the first value")
            redis_cli(server, "SET", f"rpc:progress:{{{call_id}}}", '{"seq":9,"at_ms":1,"fraction":7}')
            await until(2, "the garbage's error")
            # The same garbage, read again and again, is not reported again.
            reads = getranges(server)
            while getranges(server) < reads + 4:
                await asyncio.sleep(0.01)
            assert len(items) == 2
            release.set()
            await asyncio.wait_for(watching, PATIENCE)
            assert summary(items) == [(1, 2, "one"), "BadProgress", (2, 2, "two")]
            error = items[1]
            assert isinstance(error, BadProgress) and isinstance(error, ProgressError)
            assert "fraction" in str(error)

    asyncio.run(main())
    running.stop()


# -- deadlines -----------------------------------------------------------------------


def test_a_watch_by_id_ends_at_its_deadline(server: RedisServer) -> None:
    async def timed(client: AsyncClient, call_id: str, timeout: float) -> tuple[list[Any], float]:
        started = time.monotonic()
        items = [item async for item in client.watch_progress(call_id, timeout)]
        return items, time.monotonic() - started

    async def main() -> None:
        async with AsyncClient.connect(server.url) as client:
            # Nothing there: nothing yielded, to the deadline.
            items, took = await timed(client, "never-placed", 1.0)
            assert items == [] and 0.95 <= took < 3, took
            # Garbage there, too large: one error, then on to the deadline.
            redis_cli(server, "SET", "rpc:progress:{big}", "x" * 100_000)
            items, took = await timed(client, "big", 1.0)
            assert summary(items) == ["BadProgress"] and 0.95 <= took < 3, took
            assert "2048" in str(items[0])
            # Redis not answering (paused): the watch still ends on time.
            server.r.execute_command("CLIENT", "PAUSE", "4000", "ALL")
            items, took = await timed(client, "paused", 1.0)
            assert items == [] and took < 2.5, took
            with pytest.raises(ValueError):
                client.watch_progress("", 1.0)
            with pytest.raises(ValueError):
                client.watch_progress("ok", -1.0)

    asyncio.run(main())
    with Client.connect(server.url) as client:
        started = time.monotonic()
        assert list(client.watch_progress("never-placed", 0.5)) == []
        assert 0.45 <= time.monotonic() - started < 3
