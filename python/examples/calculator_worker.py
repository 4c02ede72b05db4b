"""Serves the Calculator service (schema/calculator.rpc) from Python, as
build-examples/calculator's Rust ``worker`` does: the same answers, the same
``log [ID]: LINE`` lines, ``worker ready`` once it serves. A Rust client
(``client add 2 3``, ``rpc call Calculator.add '{"a":2,"b":3}'``) cannot tell
the two apart.

Generate the typed module first, then run::

    target/debug/rpc-codegen gen --lang python schema/calculator.rpc -o python/examples/generated
    python python/examples/calculator_worker.py --url redis://127.0.0.1:6379/

SIGTERM or ctrl-c stops it gracefully (running jobs finish first).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os

import rpc_runtime
from generated.calculator import (
    AsyncCalculator,
    MathErrorDivideByZero,
    MathErrorException,
    MathErrorOverflow,
    Tagged,
    calculator_service,
)

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


class Calc(AsyncCalculator):
    """The Rust example's ``Calc``, in Python."""

    async def add(self, ctx: rpc_runtime.Context, a: int, b: int) -> int:
        total = a + b
        if not I64_MIN <= total <= I64_MAX:
            raise rpc_runtime.Fatal(f"{a} + {b} overflows i64")
        return total

    async def divide(self, ctx: rpc_runtime.Context, a: float, b: float) -> float:
        if b == 0.0:
            raise MathErrorException(MathErrorDivideByZero())
        q = a / b
        if not math.isfinite(q):
            raise MathErrorException(MathErrorOverflow(limit=I64_MAX))
        return q

    async def log(self, ctx: rpc_runtime.Context, line: str) -> None:
        print(f"log [{ctx.id}]: {line}", flush=True)

    async def sum(self, ctx: rpc_runtime.Context, values: list[Tagged]) -> Tagged:
        return Tagged(math.fsum(t.value for t in values), label="sum")


async def serve(worker: rpc_runtime.Worker) -> None:
    """Runs ``worker`` until SIGTERM/SIGINT, saying ``worker ready`` once it serves."""
    await worker.run_async(signals=True, on_ready=lambda: print("worker ready", flush=True))
    print("worker stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Calculator service")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/"))
    parser.add_argument("--prefix", default="rpc")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--visibility-timeout", type=float, default=30.0)
    args = parser.parse_args()
    worker = rpc_runtime.Worker(
        args.url,
        prefix=args.prefix,
        concurrency=args.concurrency,
        visibility_timeout=args.visibility_timeout,
        version="calculator (python example)",
    ).mount(calculator_service(Calc()))
    asyncio.run(serve(worker))


if __name__ == "__main__":
    main()
