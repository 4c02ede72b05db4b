"""Where the tests find what they run (the Rust binaries under
``<repo>/target/debug``, or ``$RPC_RUST_BIN``; redis-server on PATH) and what
happens when something is missing: a skip on a developer's machine, a
failure under ``RPC_TEST_REQUIRE_TOOLS=1`` or ``CI`` (scripts/test sets the
first, as it does for the Rust tests), so CI never passes a test it did not
run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

#: The repository this test tree belongs to.
REPO = Path(__file__).resolve().parents[3]


def require_tools() -> bool:
    """Whether a missing tool or binary fails the test instead of skipping
    it: ``RPC_TEST_REQUIRE_TOOLS`` says so when set, otherwise a ``CI``
    variable that is set (and not ``false`` or ``0``), as rpc-testkit decides
    for the Rust tests."""

    def yes(value: str) -> bool:
        return value.strip() not in ("", "0", "false")

    require = os.environ.get("RPC_TEST_REQUIRE_TOOLS")
    if require is not None:
        return yes(require)
    return yes(os.environ.get("CI", ""))


def missing(what: str) -> NoReturn:
    """Skips the test for want of ``what``, or fails it under
    ``RPC_TEST_REQUIRE_TOOLS=1``."""
    if require_tools():
        pytest.fail(f"{what} (RPC_TEST_REQUIRE_TOOLS is set: nothing may be skipped)",
                    pytrace=False)
    pytest.skip(what)


def rust_bin_dir() -> Path:
    """The directory of the Rust binaries: ``$RPC_RUST_BIN`` or ``<repo>/target/debug``."""
    return Path(os.environ.get("RPC_RUST_BIN") or REPO / "target" / "debug")


def rust_bin(name: str) -> Path:
    """The path of a built Rust binary (``worker``, ``client``, ``rpc``,
    ``chaos-worker``, ``everything-worker``, ``everything-check``,
    ``rpc-codegen``, ``rpc-bench``)."""
    path = rust_bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        hint = {
            "rpc-codegen": "cargo build -p rpc-codegen --features cli --bin rpc-codegen",
            "rpc": "cargo build -p rpc-cli --bin rpc",
            "chaos-worker": "cargo build -p rpc-chaos --bin chaos-worker",
            "everything-worker": "cargo build -p everything --bins",
            "everything-check": "cargo build -p everything --bins",
            "worker": "cargo build -p calculator --bins",
            "client": "cargo build -p calculator --bins",
            "rpc-bench": "cargo build -p rpc-bench",
        }.get(name, "cargo build")
        missing(f"the Rust binary {path} is not built ({hint})")
    return path


def redis_server_bin() -> str:
    """``redis-server`` on PATH."""
    found = shutil.which("redis-server")
    if found is None:
        missing("redis-server is not installed")
    return found
