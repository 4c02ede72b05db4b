"""Serves ``Drawing``, ``Admin`` and ``Health`` (schema/everything.rpc and the
common.rpc it imports) from Python: the port of build-examples/everything's
``Canvas`` and ``Healthy`` handlers, answer for answer, so that the Rust
``everything-check`` (every job through the typed Rust clients) passes
against it as it does against the Rust ``everything-worker``. ``Drawing``
and ``Health`` are synchronous handlers (run in the worker's threads),
``Admin`` an asyncio one: both kinds serve side by side.

Generate the typed modules first, then run::

    target/debug/rpc-codegen gen --lang python schema/everything.rpc -o python/examples/generated
    python python/examples/everything_worker.py --url redis://127.0.0.1:6379/

It prints ``worker ready`` once it serves, and ``[LEVEL] LINE (attempt N)``
for each ``Drawing.log`` job, as the Rust worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import threading
import typing

import rpc_runtime
from generated import common
from generated.common import CommonErrorException, CommonErrorForbidden, CommonErrorNotFound
from generated.everything import (
    AsyncAdmin,
    Color,
    Containers,
    Drawing,
    DrawErrorCanvasFull,
    DrawErrorException,
    DrawErrorUnknownShape,
    Expr,
    ExprAdd,
    ExprCall,
    ExprLet,
    ExprNegate,
    ExprNumber,
    HttpHeader,
    Keywords,
    Node,
    OldShape,
    Person,
    Pet,
    Scalars,
    Shape,
    ShapeCircle,
    ShapeEmpty,
    ShapePolygon,
    Tree,
    admin_service,
    drawing_service,
)


class Canvas:
    """Shapes drawn so far, shared by the Drawing and Admin handlers."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.drawn = 0
        self.lock = threading.Lock()


class DrawingHandler(Drawing):
    """Drawing, synchronous: each job runs in one of the worker's threads."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas

    def count(self, ctx: rpc_runtime.Context) -> int:
        return self.canvas.drawn

    def clear(self, ctx: rpc_runtime.Context) -> None:
        with self.canvas.lock:
            self.canvas.drawn = 0

    def draw(self, ctx: rpc_runtime.Context, shape: Shape, color: Color) -> int:
        if isinstance(shape, ShapeEmpty):
            raise DrawErrorException(DrawErrorUnknownShape("Empty"))
        with self.canvas.lock:
            if self.canvas.drawn >= self.canvas.capacity:
                raise DrawErrorException(DrawErrorCanvasFull(capacity=self.canvas.capacity))
            self.canvas.drawn += 1
            return self.canvas.drawn

    def find(self, ctx: rpc_runtime.Context, id: int) -> Shape:
        if id == 0:
            return ShapeCircle(center=common.Point(x=0.0, y=0.0), radius=1.0)
        if id == 1:
            raise CommonErrorException(CommonErrorForbidden())
        raise CommonErrorException(CommonErrorNotFound(what=f"shape {id}"))

    def centroid(self, ctx: rpc_runtime.Context, points: list[common.Point],
                 page: common.Page | None) -> common.Point:
        chosen = points if page is None else points[page.offset:page.offset + page.limit]
        if not chosen:
            raise rpc_runtime.Fatal("no points to average")
        n = len(chosen)
        return common.Point(x=sum(p.x for p in chosen) / n, y=sum(p.y for p in chosen) / n)

    def log(self, ctx: rpc_runtime.Context, line: str, level: int | None) -> None:
        print(f"[{level or 0}] {line} (attempt {ctx.attempt})", flush=True)

    def evaluate(self, ctx: rpc_runtime.Context, expr: Expr, env: dict[str, float]) -> float:
        return evaluate(expr, env)

    def walk(self, ctx: rpc_runtime.Context, tree: Tree) -> list[str]:
        out: list[str] = []

        def visit(t: Tree) -> None:
            out.append(t.label)
            for child in t.children:
                visit(child)
            for key in sorted(t.by_key):
                visit(t.by_key[key])

        visit(tree)
        return out

    def reverse(self, ctx: rpc_runtime.Context, list_: Node) -> Node:
        values: list[int] = []
        node: Node | None = list_
        while node is not None:
            values.append(node.value)
            node = node.next
        reversed_: Node | None = None
        for value in values:
            reversed_ = Node(value, next=reversed_)
        assert reversed_ is not None  # a Node holds one value at least
        return reversed_

    def lookup(self, ctx: rpc_runtime.Context, name: str) -> Person | None:
        if name != "ada":
            return None
        return Person(name, pet=Pet("rex"))

    def echo(self, ctx: rpc_runtime.Context, scalars: Scalars, containers: Containers) -> Scalars:
        scalars.text = f"{scalars.text} ({len(containers.numbers)} numbers)"
        return scalars

    def raw(self, ctx: rpc_runtime.Context, blob: bytes, doc: typing.Any) -> typing.Any:
        return {"len": len(blob), "doc": doc}

    def type_(self, ctx: rpc_runtime.Context, self_: str, match_: Keywords) -> Keywords:
        return Keywords(type_=self_, match_=match_.match_, self_=match_.self_,
                        async_=match_.async_)

    def header_value(self, ctx: rpc_runtime.Context, header: HttpHeader) -> str:
        return f"{header.label_text}: {header.value}"

    def rotate(self, ctx: rpc_runtime.Context, shape: Shape, degrees: float) -> Shape:
        if not isinstance(shape, ShapePolygon):
            return shape
        s, c = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))
        return ShapePolygon([common.Point(x=p.x * c - p.y * s, y=p.x * s + p.y * c)
                             for p in shape.value])

    def paint(self, ctx: rpc_runtime.Context, shape: OldShape) -> None:
        return None


def evaluate(expr: Expr, env: dict[str, float]) -> float:
    """The Rust example's ``eval``: unknown functions are ``UnknownShape``."""
    match expr:
        case ExprNumber(value):
            return value
        case ExprNegate(inner):
            return -evaluate(inner, env)
        case ExprAdd(left, right):
            return evaluate(left, env) + evaluate(right, env)
        case ExprCall(name, args):
            values = [evaluate(a, env) for a in args]
            if name == "max":
                return max(values, default=-math.inf)
            if name == "var":
                raise DrawErrorException(DrawErrorUnknownShape("var takes a Let"))
            raise DrawErrorException(DrawErrorUnknownShape(name))
        case ExprLet(binding):
            value = evaluate(binding.value, env)
            return env.get(binding.name, value)
    raise TypeError(f"not an Expr: {expr!r}")


class AdminHandler(AsyncAdmin):
    """Admin, asyncio: its jobs run on the worker's event loop."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas

    async def reset(self, ctx: rpc_runtime.Context) -> bool:
        with self.canvas.lock:
            was, self.canvas.drawn = self.canvas.drawn, 0
        return was > 0

    async def stats(self, ctx: rpc_runtime.Context) -> dict[str, int]:
        return {"drawn": self.canvas.drawn, "capacity": self.canvas.capacity}


class Healthy(common.Health):
    """The Health service of common.rpc."""

    def ping(self, ctx: rpc_runtime.Context) -> str:
        return "pong"


async def serve(worker: rpc_runtime.Worker) -> None:
    """Runs ``worker`` until SIGTERM/SIGINT, saying ``worker ready`` once it serves."""
    await worker.run_async(signals=True, on_ready=lambda: print("worker ready", flush=True))
    print("worker stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve Drawing, Admin and Health")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/"))
    parser.add_argument("--prefix", default="rpc")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--visibility-timeout", type=float, default=30.0)
    parser.add_argument("--capacity", type=int, default=2)
    args = parser.parse_args()
    canvas = Canvas(args.capacity)
    worker = (
        rpc_runtime.Worker(args.url, prefix=args.prefix, concurrency=args.concurrency,
                           visibility_timeout=args.visibility_timeout,
                           version="everything (python example)")
        .mount(drawing_service(DrawingHandler(canvas)))
        .mount(admin_service(AdminHandler(canvas)))
        .mount(common.health_service(Healthy()))
    )
    asyncio.run(serve(worker))


if __name__ == "__main__":
    main()
