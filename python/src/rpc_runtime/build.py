"""Generating Python from a schema inside a Python build: a thin hook over
the ``rpc-codegen`` binary (``rpc-codegen gen --lang python FILE -o DIR``).

From a build script, a ``setup.py``/hatch hook or a Makefile::

    from rpc_runtime.build import generate
    generate("schema/calculator.rpc", "src/myapp/rpc")

or from a shell: ``python -m rpc_runtime.build schema/calculator.rpc src/myapp/rpc``.
It writes ``<module>.py`` for the schema and each file it imports, plus an
``__init__.py`` when the directory has none, and raises
:class:`CodegenError` with the compiler's diagnostics when the schema has
errors. The binary is ``codegen`` when given, else ``$RPC_CODEGEN``, else
``rpc-codegen`` on the ``PATH``, else the repository's
``target/{debug,release}/rpc-codegen`` when running from a checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import RpcError

__all__ = ["CodegenError", "find_codegen", "generate", "main"]


class CodegenError(RpcError):
    """``rpc-codegen`` could not be found, or refused the schema (the
    message holds its diagnostics)."""


def _repository() -> Path:
    # src/rpc_runtime/build.py -> src -> python -> the repository
    return Path(__file__).resolve().parents[3]


def find_codegen(codegen: str | os.PathLike[str] | None = None) -> Path:
    """The ``rpc-codegen`` binary to run (see the module's docstring)."""
    if codegen is not None:
        return Path(codegen)
    env = os.environ.get("RPC_CODEGEN")
    if env:
        return Path(env)
    on_path = shutil.which("rpc-codegen")
    if on_path:
        return Path(on_path)
    for profile in ("debug", "release"):
        built = _repository() / "target" / profile / "rpc-codegen"
        if built.is_file():
            return built
    raise CodegenError(
        "rpc-codegen not found: install it (`cargo install --path rpc-codegen`), build it "
        "(`cargo build -p rpc-codegen --features cli`), or set RPC_CODEGEN"
    )


def generate(
    schema: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    codegen: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Writes the Python modules of ``schema`` (and its imports) into
    ``out_dir``; returns the paths of the ``.py`` files there."""
    binary = find_codegen(codegen)
    out = Path(out_dir)
    try:
        done = subprocess.run(
            [str(binary), "gen", "--lang", "python", str(schema), "-o", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as err:
        raise CodegenError(f"cannot run {binary}: {err}") from err
    if done.returncode != 0:
        raise CodegenError(
            f"rpc-codegen refused {schema} (exit {done.returncode}):\n{done.stderr.rstrip()}"
        )
    return sorted(out.glob("*.py"))


def main(argv: list[str] | None = None) -> int:
    """``python -m rpc_runtime.build SCHEMA OUT_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m rpc_runtime.build SCHEMA.rpc OUT_DIR", file=sys.stderr)
        return 2
    try:
        for path in generate(args[0], args[1]):
            print(path)
    except CodegenError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
