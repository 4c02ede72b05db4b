"""Calls the Calculator service (schema/calculator.rpc) from Python, as
build-examples/calculator's Rust ``client`` does: ``add 2 3``, ``divide 1 0``,
``log hello``, ``sum 1.5 2.5``, or no command for a short tour. Served by
the Rust ``worker`` or by calculator_worker.py alike.

Generate the typed module first, then run::

    target/debug/rpc-codegen gen --lang python schema/calculator.rpc -o python/examples/generated
    python python/examples/calculator_client.py --url redis://127.0.0.1:6379/ add 2 3

Exit status: 0 done; 1 a call failed (the error on stderr); 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import sys

import rpc_runtime
from generated.calculator import (
    CalculatorClient,
    MathErrorDivideByZero,
    MathErrorException,
    Tagged,
)


def run(calc: CalculatorClient, command: str, args: list[str]) -> None:
    if command == "add":
        print(calc.add(int(args[0]), int(args[1])))
    elif command == "divide":
        print(calc.divide(float(args[0]), float(args[1])))
    elif command == "log":
        print(f"sent {calc.log(' '.join(args))}")
    elif command == "sum":
        print(calc.sum([Tagged(float(v)) for v in args]).value)
    else:
        raise SystemExit(f"unknown command {command!r}: add, divide, log or sum")


def tour(calc: CalculatorClient) -> None:
    print(f"add(2, 3) = {calc.add(2, 3)}")
    try:
        calc.divide(1.0, 0.0)
    except MathErrorException as e:
        match e.error:
            case MathErrorDivideByZero():
                print("divide(1, 0) = DivideByZero (typed error)")
            case other:
                print(f"divide(1, 0) = {other!r}")
    print(f"divide(7, 2) = {calc.divide(7.0, 2.0)}")
    print(f"log(..) sent as {calc.log('hello from the Python client')}")
    pending = calc.add_send(20, 22)
    print(f"add_send(20, 22) -> id {pending.id}; awaited later: {pending.result()}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Call the Calculator service")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/"))
    parser.add_argument("--prefix", default="rpc")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("command", nargs="?")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    try:
        client = rpc_runtime.Client.connect(args.url, prefix=args.prefix, timeout=args.timeout)
    except Exception as e:  # noqa: BLE001 - any reason it cannot connect
        print(f"error: {e}", file=sys.stderr)
        return 2
    with client:
        calc = CalculatorClient(client)
        try:
            if args.command is None:
                tour(calc)
            else:
                run(calc, args.command, args.args)
        except MathErrorException as e:
            print(f"error: math error: {e.error!r}", file=sys.stderr)
            return 1
        except rpc_runtime.RpcError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
