"""The Python client, typed by the generated modules, against the Rust
workers: build-examples/calculator's ``worker`` and build-examples/everything's
``everything-worker`` in processes of their own. Every job of everything.rpc
with the answers ``everything::check`` expects of any worker (every type,
every error), then per-call options against the calculator: one-way, kept
results, deadlines, delay, idempotency, cancel; sync and asyncio."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rpc_runtime
from rpc_runtime import CallError, CallTimeout, Client, DecodeError, JobSpec
from rpc_runtime import codec
from support import Process, RedisServer, python_example, rust_process, wait_for
from support.generated import Generated


@pytest.fixture
def client(server: RedisServer) -> Iterator[Client]:
    with Client.connect(server.url, timeout=10.0) as c:
        yield c


@pytest.fixture
def everything_rs(server: RedisServer) -> Iterator[Process]:
    with rust_process("everything-worker", server.url) as p:
        yield p


@pytest.fixture
def calculator_rs(server: RedisServer) -> Iterator[Process]:
    with rust_process("worker", server.url) as p:
        yield p


def scalars(ev: Any) -> Any:
    return ev.Scalars(flag=True, tiny=-8, small=-16, medium=-32, large=-(2**63), byte=255,
                      word=65535, dword=2**32 - 1, qword=2**64 - 1, single=1.5, double=-2.25,
                      text="héllo", blob=bytes([0, 1, 2, 254, 255]),
                      extra={"any": ["json", 1, None]})


def test_every_everything_job_against_the_rust_worker(generated: Generated, client: Client,
                                                      everything_rs: Process) -> None:
    ev, common = generated.everything, generated.common
    drawing = ev.DrawingClient(client)
    admin = ev.AdminClient(client)
    health = common.HealthClient(client)
    P = common.Point

    assert health.ping() == "pong"
    with pytest.warns(DeprecationWarning):
        admin.reset()
    assert drawing.count() == 0

    # Typed errors from this file and from the imported one.
    assert drawing.draw(ev.ShapePolygon([P(x=0.0, y=0.0)]), ev.ColorRed()) == 1
    rect = ev.ShapeRectangle(corner=P(x=1.0, y=1.0), width=2.0, height=3.0)
    assert drawing.draw(rect, ev.ColorBlue()) == 2
    with pytest.raises(ev.DrawErrorException) as full:
        drawing.draw(rect, ev.ColorGreen())
    assert full.value.error == ev.DrawErrorCanvasFull(capacity=2)
    with pytest.raises(ev.DrawErrorException) as unknown:
        drawing.draw(ev.ShapeEmpty(), ev.ColorGreen())
    assert unknown.value.error == ev.DrawErrorUnknownShape("Empty")
    assert drawing.find(0) == ev.ShapeCircle(center=P(x=0.0, y=0.0), radius=1.0)
    with pytest.raises(common.CommonErrorException) as forbidden:
        drawing.find(1)
    assert isinstance(forbidden.value.error, common.CommonErrorForbidden)
    with pytest.raises(common.CommonErrorException) as missing:
        drawing.find(9)
    assert missing.value.error == common.CommonErrorNotFound(what="shape 9")

    # Imported types, Option parameters, a handler's failure.
    pts = [P(x=0.0, y=0.0), P(x=2.0, y=2.0), P(x=4.0, y=4.0)]
    assert drawing.centroid(pts) == P(x=2.0, y=2.0)
    assert drawing.centroid(pts, common.Page(offset=1, limit=1)) == P(x=2.0, y=2.0)
    with pytest.raises(CallError) as failed:
        drawing.centroid([])
    assert failed.value.kind == "handler" and "no points" in failed.value.message

    # One-way, with and without parameters.
    log_id = drawing.log("hello", 3)
    assert isinstance(log_id, str) and log_id
    everything_rs.wait_line("[3] hello (attempt 1)", 30)
    drawing.clear()
    wait_for(lambda: drawing.count() == 0, 30, "clear ran")

    # Recursion.
    expr = ev.ExprAdd(ev.ExprNegate(ev.ExprNumber(2.0)),
                      ev.ExprCall("max", [ev.ExprNumber(1.0), ev.ExprNumber(10.0)]))
    assert drawing.evaluate(expr, {}) == 8.0
    assert drawing.evaluate(ev.ExprLet(ev.Binding("x", ev.ExprNumber(1.0))), {"x": 5.5}) == 5.5
    with pytest.raises(ev.DrawErrorException) as sqrt:
        drawing.evaluate(ev.ExprCall("sqrt", []), {})
    assert sqrt.value.error == ev.DrawErrorUnknownShape("sqrt")
    leaf = lambda label: ev.Tree(label, [], {})  # noqa: E731
    assert drawing.walk(ev.Tree("root", [leaf("a")], {"k": leaf("b")})) == ["root", "a", "b"]
    assert drawing.reverse(ev.Node(1, next=ev.Node(2))) == ev.Node(2, next=ev.Node(1))
    ada = drawing.lookup("ada")
    assert ada is not None and ada.pet is not None and ada.pet.name == "rex"
    assert ada.pet.owner is None
    assert drawing.lookup("bob") is None

    # Every scalar at its edges, containers, bytes, Json.
    containers = ev.Containers(
        numbers=[1, 2, 3], by_name={"x": 1}, matrix=[[1.0, 2.0], []],
        groups={"g": [P(x=1.0, y=2.0)]}, blobs=[bytes([9, 9, 9])], maybe=None,
        maybe_list=[1, None], maybe_map={"j": [1, "two"]},
    )
    echoed = drawing.echo(scalars(ev), containers)
    want = scalars(ev)
    want.text = "héllo (3 numbers)"
    assert echoed == want
    assert drawing.raw(bytes([1, 2, 3]), {"k": [True]}) == {"len": 3, "doc": {"k": [True]}}

    # Names: keywords, camelCase, renames; a deprecated job warns and works.
    got = drawing.type_("from self", ev.Keywords(type_="ignored", match_=True, self_=7, async_=1))
    assert got == ev.Keywords(type_="from self", match_=True, self_=7, async_=1)
    assert drawing.header_value(ev.HttpHeader("Accept", "json")) == "Accept: json"
    turned = drawing.rotate(ev.ShapePolygon([P(x=1.0, y=0.0)]), 90.0)
    assert isinstance(turned, ev.ShapePolygon)
    assert math.isclose(turned.value[0].x, 0.0, abs_tol=1e-9)
    assert math.isclose(turned.value[0].y, 1.0)
    with pytest.warns(DeprecationWarning):
        drawing.paint(ev.OldShape(sides=3))

    # The second service.
    assert drawing.draw(ev.ShapePolygon([]), ev.ColorRed()) == 1
    assert admin.stats() == {"capacity": 2, "drawn": 1}
    with pytest.warns(DeprecationWarning):
        assert admin.reset() is True

    # Values out of their type's range never leave the client.
    with pytest.raises(rpc_runtime.EncodeError):
        drawing.find(-1)
    bad = scalars(ev)
    bad.tiny = 128
    with pytest.raises(rpc_runtime.EncodeError, match="tiny"):
        drawing.echo(bad, containers)


def test_async_clients_against_the_rust_worker(server: RedisServer, generated: Generated,
                                               everything_rs: Process) -> None:
    ev, common = generated.everything, generated.common

    async def main() -> None:
        async with rpc_runtime.AsyncClient.connect(server.url, timeout=10.0) as aclient:
            drawing = ev.AsyncDrawingClient(aclient)
            assert await common.AsyncHealthClient(aclient).ping() == "pong"
            answers = await asyncio.gather(*(drawing.find(0) for _ in range(20)))
            assert all(isinstance(a, ev.ShapeCircle) for a in answers)
            pending = await drawing.walk_send(ev.Tree("r", [], {}))
            assert pending.id and await pending.result(10.0) == ["r"]
            with pytest.raises(common.CommonErrorException):
                await drawing.find(1)

    asyncio.run(main())


def test_call_options_against_the_rust_calculator(server: RedisServer, generated: Generated,
                                                  client: Client, calculator_rs: Process) -> None:
    calc_mod = generated.calculator
    calc = calc_mod.CalculatorClient(client)
    assert calc.add(2, 3) == 5
    assert calc.sum([calc_mod.Tagged(1.5), calc_mod.Tagged(2.0, label="x")]) == \
        calc_mod.Tagged(3.5, label="sum")
    with pytest.raises(calc_mod.MathErrorException) as zero:
        calc.divide(1.0, 0.0)
    assert zero.value.error == calc_mod.MathErrorDivideByZero()
    with pytest.raises(calc_mod.MathErrorException) as over:
        calc.divide(1e308, 1e-308)
    assert over.value.error == calc_mod.MathErrorOverflow(limit=2**63 - 1)
    with pytest.raises(CallError) as overflow:
        calc.add(2**63 - 1, 1)
    assert overflow.value.kind == "handler"

    # One-way: the id, and the Rust worker's line for it.
    log_id = calc.log("from python")
    calculator_rs.wait_line(f"log [{log_id}]: from python", 30)

    # Send now, wait later; kept results fetched by id.
    pending = calc.add_send(40, 2)
    assert pending.id and pending.response_key
    assert pending.result(10.0) == 42
    kept = calc.with_options(keep_result=60.0).add_send(20, 22)
    assert kept.result(10.0) == 42
    fetched = client.fetch(kept.id)
    assert fetched is not None and fetched.data == 42 and fetched.id == kept.id
    call_id = client.call("Calculator.add", {"a": 1, "b": 1})
    wait_for(lambda: client.fetch(call_id), 30, "the untyped call's kept result")
    response = client.call_and_wait("Calculator.add", {"a": 5, "b": 6})
    assert (response.data, bool(response.id), bool(response.response_key)) == (11, True, True)

    # A reply that does not match the job's types names the job and field.
    as_text: JobSpec[str] = JobSpec("Calculator", "add",
                                    decode_result=codec.result_reader(codec.read_str))
    with pytest.raises(DecodeError, match="Calculator.add"):
        client.call_job(as_text, {"a": 1, "b": 2})

    # Delay: not run before it is due.
    sent = time.monotonic()
    assert calc.with_options(delay=1.5).add(1, 2) == 3
    assert time.monotonic() - sent >= 1.4

    # Idempotency: one key, one run, every sender answered; other params conflict.
    once = calc.with_options(idempotency_key="order-7")
    first, second = once.add_send(1, 2), once.add_send(1, 2)
    assert (first.result(10.0), second.result(10.0)) == (3, 3)
    with pytest.raises(CallError) as conflict:
        once.add(2, 2)
    assert conflict.value.kind == "idempotency_conflict"

    # Cancel: a scheduled call never runs; its caller is told.
    doomed = calc.with_options(delay=30.0, timeout=60.0).add_send(1, 1)
    doomed.cancel()
    with pytest.raises(CallError) as cancelled:
        doomed.result(30.0)
    assert cancelled.value.kind == "cancelled"

    # Deadlines: with no worker up, the call times out at the caller; the
    # next worker answers its kept result `deadline_exceeded` without running it.
    assert calculator_rs.terminate() == 0
    late = calc.with_options(timeout=1.0, keep_result=60.0).add_send(1, 1)
    with pytest.raises(CallTimeout):
        late.result()
    with rust_process("worker", server.url):

        def expired() -> bool:
            try:
                client.fetch(late.id)
            except CallError as e:
                return e.kind == "deadline_exceeded"
            return False

        wait_for(expired, 30, "the expired call's kept answer")


def test_the_python_calculator_client_example_against_the_rust_worker(
        server: RedisServer, generated: Generated, calculator_rs: Process) -> None:
    tour = python_example("calculator_client.py", server.url, ready=None,
                          pythonpath=[generated.root])
    with tour:
        assert tour.wait(60) == 0, tour.describe()
        out = "\n".join(tour.lines)
    assert "add(2, 3) = 5" in out and "DivideByZero (typed error)" in out, out
    assert "awaited later: 42" in out, out
    with python_example("calculator_client.py", server.url, "divide", "1", "0", ready=None,
                        pythonpath=[generated.root]) as failed:
        assert failed.wait(60) == 1
        assert "MathErrorDivideByZero" in failed.stderr, failed.describe()
