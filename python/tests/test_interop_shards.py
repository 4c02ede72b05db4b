"""Sharded services across the languages: a schema's ``#[shards = 4]``
through ``rpc-codegen gen --lang python`` to the Python worker and client;
the Rust ``rpc`` CLI placing calls on a Python worker's shards (by
idempotency key: the same shard in both languages; and a batch); the
Python client placing calls on the Rust calculator worker's shards."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rpc_runtime
from rpc_runtime import CallOptions, Client, Worker
from rpc_runtime.keys import Keys
from rpc_runtime.shards import queue, shard_of_id, shard_of_key
from support import RedisServer, rust_bin, rust_process

K = Keys("rpc")
SHARDS_LUA = (Path(__file__).resolve().parents[2] / "rpc-protocol" / "scripts" / "shards.lua").read_text()
SCHEMA = """//! A sharded service, for the tests.

/// Echoes.
#[shards = 4]
service Sharded {
    /// Returns `n`.
    fn echo(n: i64) -> i64;
}
"""


def set_count(server: RedisServer, service: str, n: int) -> None:
    server.r.eval(SHARDS_LUA, 1, K.shards(service), "set", n, 256)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """SCHEMA generated into a package ``sharded_gen`` on sys.path."""
    codegen = rust_bin("rpc-codegen")
    root = tmp_path_factory.mktemp("sharded")
    (root / "sharded.rpc").write_text(SCHEMA)
    done = subprocess.run(
        [str(codegen), "gen", "--lang", "python", str(root / "sharded.rpc"), "-o",
         str(root / "sharded_gen")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    return importlib.import_module("sharded_gen.sharded")


def handler(sharded: ModuleType) -> Any:
    class Echo(sharded.Sharded):  # type: ignore[name-defined,misc]
        def echo(self, ctx: rpc_runtime.Context, n: int) -> int:
            return n

    return Echo()


def test_the_schemas_shards_reach_the_python_worker_and_client(  # type: ignore[no-untyped-def]
    sharded: ModuleType, server: RedisServer, start_worker
) -> None:
    service = sharded.sharded_service(handler(sharded))
    assert service.shards == 4
    assert all(b.spec.shards == 4 for b in service.jobs)
    running = start_worker(Worker(server.url, concurrency=4).mount(service))
    assert running.worker.wait_ready(30)
    # No count in Redis: the worker serves the schema's four, and says so.
    assert server.r.hmget(K.shards("Sharded"), "count", "seen") == [None, b"4"]
    with Client.connect(server.url, timeout=60) as c:
        calc = sharded.ShardedClient(c)
        pendings = [calc.echo_send(i) for i in range(8)]
        assert [p.result() for p in pendings] == list(range(8))
        assert {shard_of_id(p.id) for p in pendings} == {0, 1, 2, 3}


def keys_for_every_shard(count: int) -> dict[int, str]:
    """An idempotency key landing on each shard."""
    out: dict[int, str] = {}
    i = 0
    while len(out) < count:
        out.setdefault(shard_of_key(f"key-{i}", count), f"key-{i}")
        i += 1
    return out


def test_the_rust_cli_places_calls_on_a_python_workers_shards(  # type: ignore[no-untyped-def]
    sharded: ModuleType, server: RedisServer, start_worker
) -> None:
    # The CLI calls untyped (it has no schema's N): the count in Redis says 4.
    set_count(server, "Sharded", 4)
    start_worker(Worker(server.url, concurrency=4).mount(sharded.sharded_service(handler(sharded))))
    rpc = str(rust_bin("rpc"))
    for k, key in keys_for_every_shard(4).items():
        out = subprocess.run(
            [rpc, "--url", server.url, "call", "Sharded.echo", json.dumps({"n": k}), "--key", key,
             "--full"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["data"] == k
        # The Rust client put it on the key's shard as Python computes it,
        # and the Python worker claimed the key there.
        assert shard_of_id(answer["id"]) == k, answer
        assert server.r.exists(K.once(queue("Sharded", k), key)) == 1
    # A batch (one process, calls round robin once the count is read).
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(12))
    out = subprocess.run(
        [rpc, "--url", server.url, "call", "Sharded.echo", "-", "--full"],
        input=lines, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["data"] for a in answers] == list(range(12))


def test_the_python_client_places_calls_on_a_rust_workers_shards(server: RedisServer) -> None:
    set_count(server, "Calculator", 4)
    with rust_process("worker", server.url), Client.connect(server.url, timeout=60) as c:
        ids = []
        for i in range(8):
            r = c.call_and_wait("Calculator.add", {"a": i, "b": 1})
            assert r.data == i + 1
            ids.append(r.id)
        assert {shard_of_id(i) for i in ids} == {0, 1, 2, 3}, ids
        for k, key in keys_for_every_shard(4).items():
            r = c.call_and_wait("Calculator.add", {"a": k, "b": 0},
                                options=CallOptions(idempotency_key=key))
            assert r.data == k and shard_of_id(r.id) == k
            assert server.r.exists(K.once(queue("Calculator", k), key)) == 1


def test_the_python_workers_schema_number_reaches_the_rust_cli_through_seen(  # type: ignore[no-untyped-def]
    sharded: ModuleType, server: RedisServer, start_worker
) -> None:
    # No count set: the Python worker's `serve 4` (its schema's #[shards = 4])
    # raises `seen`, and the untyped Rust client places on `seen`.
    running = start_worker(Worker(server.url, concurrency=4).mount(
        sharded.sharded_service(handler(sharded))))
    assert running.worker.wait_ready(30)
    assert server.r.hmget(K.shards("Sharded"), "count", "seen") == [None, b"4"]
    rpc = str(rust_bin("rpc"))
    for k, key in keys_for_every_shard(4).items():
        out = subprocess.run(
            [rpc, "--url", server.url, "call", "Sharded.echo", json.dumps({"n": k}), "--key", key,
             "--full"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["data"] == k and shard_of_id(answer["id"]) == k, answer
