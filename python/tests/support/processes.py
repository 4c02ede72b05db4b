"""Processes the tests start and watch: the Rust binaries
(target/debug/{worker,client,rpc,chaos-worker,everything-worker,
everything-check,...}) and the Python example workers (python/examples/),
each with its standard output read line by line in a thread so a test can
wait for an event line (``worker ready``, ``ran ID 2 ...``) and count them,
even for a process it has SIGKILLed. Stopped by pid (SIGTERM or SIGKILL),
never by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .tools import REPO, rust_bin

#: The Python example programs.
EXAMPLES = REPO / "python" / "examples"

LinePredicate = Callable[[str], bool]


class Process:
    """A child process whose stdout lines are collected as they come."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 name: str | None = None) -> None:
        self.name = name or Path(argv[0]).name
        self.argv = list(argv)
        full_env = dict(os.environ)
        full_env.setdefault("RUST_LOG", "error")
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=full_env,
        )
        self.pid = self.proc.pid
        self._lines: list[str] = []
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        self._out_done = False
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._lines, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr, False),
                             daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: object, into: list[str], is_stdout: bool) -> None:
        assert stream is not None
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            if is_stdout:
                self._out_done = True
            self._changed.notify_all()

    @property
    def lines(self) -> list[str]:
        """Every stdout line so far."""
        with self._changed:
            return list(self._lines)

    @property
    def stderr(self) -> str:
        """Its stderr so far."""
        with self._changed:
            return "\n".join(self._stderr)

    def describe(self) -> str:
        tail = "\n".join(self.lines[-20:])
        return (f"{self.name} (pid {self.pid}, exit {self.proc.poll()}):\n"
                f"--- stdout (last lines) ---\n{tail}\n--- stderr ---\n{self.stderr[-4000:]}")

    def wait_line(self, match: str | LinePredicate, timeout: float = 60.0) -> str:
        """The first stdout line that starts with ``match`` (or satisfies it),
        waiting up to ``timeout`` s; fails with the output when the process
        ends first or the time runs out."""
        pred: LinePredicate = (match if callable(match)
                               else (lambda line, m=match: line.startswith(m)))
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if pred(line):
                        return line
                seen = len(self._lines)
                if self._out_done:
                    raise AssertionError(f"{self.name} ended before {match!r}: {self.describe()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {match!r} from {self.name} in {timeout:.0f} s: "
                                         f"{self.describe()}")
                self._changed.wait(left)

    def count(self, pred: LinePredicate) -> int:
        """How many stdout lines so far satisfy ``pred``."""
        return sum(1 for line in self.lines if pred(line))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Sends ``sig`` to this process (by its pid) if it still runs."""
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL, then reaps it."""
        self.signal(signal.SIGKILL)
        self.proc.wait(30)
        self.join_output()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop), waits for the exit and returns its code."""
        self.signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.join_output()
        return code

    def wait(self, timeout: float = 60.0) -> int:
        """Waits for the process to exit on its own; its exit code."""
        code = self.proc.wait(timeout)
        self.join_output()
        return code

    def join_output(self) -> None:
        for t in self._readers:
            t.join(10)

    def stop(self) -> None:
        """Kills it if it still runs (the end of every test)."""
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: What each Rust binary prints once it serves.
READY = {
    "worker": "worker ready",
    "everything-worker": "worker ready",
    "chaos-worker": "ready ",
}


def rust_process(name: str, url: str, *args: str, ready: str | None = "",
                 env: dict[str, str] | None = None, timeout: float = 60.0) -> Process:
    """Starts target/debug/``name`` ``--url URL ARGS``; waits for its ready
    line (``ready=""``: the binary's usual one; ``None``: do not wait)."""
    p = Process([str(rust_bin(name)), "--url", url, *args], env=env)
    line = READY.get(name) if ready == "" else ready
    if line:
        try:
            p.wait_line(line, timeout)
        except BaseException:
            p.stop()
            raise
    return p


def python_example(script: str, url: str, *args: str, ready: str | None = "worker ready",
                   pythonpath: Sequence[Path] = (), env: dict[str, str] | None = None,
                   timeout: float = 60.0) -> Process:
    """Starts python/examples/``script`` with this interpreter (``--url URL
    ARGS``), the generated modules' directories on PYTHONPATH; waits for
    ``ready`` (a line prefix) unless it is None."""
    paths = [str(p) for p in pythonpath]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    full_env = {"PYTHONPATH": os.pathsep.join(paths)} if paths else {}
    full_env.update(env or {})
    p = Process([sys.executable, str(EXAMPLES / script), "--url", url, *args], env=full_env,
                name=script)
    if ready:
        try:
            p.wait_line(ready, timeout)
        except BaseException:
            p.stop()
            raise
    return p
