"""The Python modules ``rpc-codegen gen --lang python`` writes for
schema/calculator.rpc and schema/everything.rpc (with the common.rpc it
imports), generated once per test session into a temporary package
``generated`` that tests import and pass to the example workers on
PYTHONPATH."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .tools import REPO, missing, rust_bin

#: The schemas generated, from the repository's schema/ directory.
SCHEMAS = ("calculator.rpc", "everything.rpc")
#: The package the modules land in (as python/examples expects them).
PACKAGE = "generated"


@dataclass(frozen=True)
class Generated:
    """The generated package: ``root`` goes on sys.path / PYTHONPATH."""

    root: Path
    calculator: ModuleType
    everything: ModuleType
    common: ModuleType


def generate(root: Path) -> Generated:
    """Generates every schema into ``root/generated`` and imports the modules
    (``root`` is put first on sys.path)."""
    codegen = rust_bin("rpc-codegen")
    try:
        importlib.import_module("rpc_runtime.codec")
    except ImportError:
        missing("rpc_runtime.codec is not there (the code generator's runtime half)")
    out = root / PACKAGE
    for schema in SCHEMAS:
        done = subprocess.run(
            [str(codegen), "gen", "--lang", "python", str(REPO / "schema" / schema), "-o", str(out)],
            capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            if "--lang" in done.stderr and "unexpected argument" in done.stderr:
                missing(f"{codegen} cannot generate Python (no --lang): rebuild it")
            raise AssertionError(f"rpc-codegen gen --lang python {schema} failed:\n{done.stderr}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    return Generated(
        root=root,
        calculator=importlib.import_module(f"{PACKAGE}.calculator"),
        everything=importlib.import_module(f"{PACKAGE}.everything"),
        common=importlib.import_module(f"{PACKAGE}.common"),
    )
