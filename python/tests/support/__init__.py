"""Helpers the Python tests share: private redis-servers, waiting on
observable events, the Rust binaries and the Python example workers as
processes, and the modules ``rpc-codegen gen --lang python`` writes.

Split from conftest.py so that test modules import them by name
(``from support import RedisServer``) and conftest.py keeps only fixtures.
"""

from .processes import Process, python_example, rust_process
from .redis_server import RedisServer, free_port, wait_for
from .tools import REPO, missing, require_tools, rust_bin

__all__ = [
    "REPO",
    "Process",
    "RedisServer",
    "free_port",
    "missing",
    "python_example",
    "require_tools",
    "rust_bin",
    "rust_process",
    "wait_for",
]
