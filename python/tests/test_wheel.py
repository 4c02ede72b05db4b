"""`pip install ./python` gives a package that works outside the checkout:
the wheel carries the protocol's Lua scripts (copied at build time from
rpc-protocol/scripts, byte for byte) and the py.typed marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_lua_scripts_byte_for_byte_and_py_typed(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO / "python")],
        check=True,
    )
    [wheel] = tmp_path.glob("rpc_runtime-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        scripts = sorted((REPO / "rpc-protocol" / "scripts").glob("*.lua"))
        assert scripts, "no scripts in rpc-protocol/scripts"
        for script in scripts:
            packed = f"rpc_runtime/lua/{script.name}"
            assert packed in names, f"{packed} is missing from {wheel.name}"
            assert z.read(packed) == script.read_bytes(), f"{packed} differs from {script}"
        assert "rpc_runtime/py.typed" in names
        assert "rpc_runtime/worker/__init__.py" in names
