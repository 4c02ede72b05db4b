"""A mixed fleet: one Python worker (python/examples/chaos_worker.py) and
one Rust worker (rpc-chaos's ``chaos-worker``) serving the one ``Chaos``
queue, moving 500 delayed jobs, a fifth of them failing once or twice and
retried through the schedule with their backoff. Each worker prints
``ran ID ATTEMPT`` as a job begins: across both, every attempt of every job
runs exactly once (none twice through the schedule), every call is answered
with the attempt that succeeded (none lost), and both workers took jobs."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator

import pytest

from rpc_runtime import AsyncClient, CallOptions, JobSpec, Keys
from rpc_runtime.keys import GROUP
from support import Process, RedisServer, python_example, rust_process, wait_for

JOBS = 500


@pytest.fixture
def fleet(server: RedisServer) -> Iterator[tuple[Process, Process]]:
    with python_example("chaos_worker.py", server.url, ready="ready ") as py, \
            rust_process("chaos-worker", server.url) as rs:
        yield py, rs


def ran(process: Process) -> list[tuple[str, int]]:
    """The (id, attempt) of every ``ran`` line the process printed."""
    out = []
    for line in process.lines:
        if line.startswith("ran "):
            _, call_id, attempt, _at = line.split(" ")
            out.append((call_id, int(attempt)))
    return out


def test_500_delayed_jobs_and_retries_across_python_and_rust(server: RedisServer,
                                                             fleet: tuple[Process, Process]) -> None:
    py, rs = fleet
    rng = random.Random(22)
    record: JobSpec[None] = JobSpec("Chaos", "record")
    flaky: JobSpec[int] = JobSpec("Chaos", "flaky")
    # (spec, params, the attempt that succeeds)
    plan = []
    for i in range(JOBS):
        fails = (1 + i % 2) if i % 5 == 0 else 0
        if fails:
            plan.append((flaky, {"n": fails}, fails + 1))
        else:
            plan.append((record, {"ms": rng.choice([0, 0, 5, 20])}, 1))

    async def main() -> list[tuple[str, object, int]]:
        async with AsyncClient.connect(server.url, timeout=120.0) as client:
            sent = []
            for spec, params, succeeds in plan:
                delay = rng.uniform(0.2, 3.0)
                pending = await client.send_job(spec, params, CallOptions(delay=delay))
                sent.append((pending, succeeds))
            answers = await asyncio.gather(*(p.result(120.0) for p, _ in sent))
            return [(p.id, answer, succeeds) for (p, succeeds), answer in zip(sent, answers)]

    answered = asyncio.run(main())

    # None lost: every call answered, with the attempt that succeeded.
    assert len({call_id for call_id, _, _ in answered}) == JOBS
    for call_id, answer, succeeds in answered:
        # `record` answers null; `flaky` the attempt that got through.
        assert answer == (None if succeeds == 1 else succeeds), (call_id, answer, succeeds)

    # None run twice: each attempt of each job began exactly once, on one worker.
    want = Counter((call_id, attempt) for call_id, _, succeeds in answered
                   for attempt in range(1, succeeds + 1))
    wait_for(lambda: len(ran(py)) + len(ran(rs)) >= sum(want.values()), 30, "every ran line")
    got = Counter(ran(py) + ran(rs))
    twice = {k: n for k, n in got.items() if n > 1}
    assert not twice, f"run twice: {list(twice.items())[:5]}"
    assert got == want, (set(want) - set(got), set(got) - set(want))
    by_py, by_rs = len(ran(py)), len(ran(rs))
    print(f"\n[fleet] {sum(want.values())} attempts of {JOBS} jobs: "
          f"{by_py} on the Python worker, {by_rs} on the Rust worker")
    assert by_py > 0 and by_rs > 0, (by_py, by_rs)
    # Retries went through the schedule to either worker.
    retried_on = {("py" if (cid, a) in set(ran(py)) else "rs")
                  for cid, a in got if a > 1}
    assert retried_on == {"py", "rs"}, retried_on

    # Nothing left behind: no scheduled, queued-unacked or dead-lettered job.
    r, keys = server.r, Keys("rpc")
    assert r.zcard(keys.scheduled("Chaos")) == 0
    leased = r.xpending(keys.jobs("Chaos"), GROUP)
    assert leased["pending"] == 0, leased
    assert r.xlen(keys.dead("Chaos")) == 0
