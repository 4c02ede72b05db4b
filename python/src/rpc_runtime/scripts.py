"""The protocol's Lua scripts, run from the very files the Rust runtime
embeds (``rpc-protocol/scripts/*.lua``): loaded once with ``SCRIPT LOAD``,
called by hash with ``EVALSHA``, loaded again on ``NOSCRIPT``.

An installed wheel carries them as ``rpc_runtime/lua/`` (copied from
``rpc-protocol/scripts`` at build time, see pyproject.toml); an editable
install or a checkout reads them from the repository. ``RPC_SCRIPTS_DIR``
overrides both.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Sequence

import redis.asyncio as aredis
from redis.exceptions import NoScriptError


def _scripts_dir() -> Path:
    env = os.environ.get("RPC_SCRIPTS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    packaged = here / "lua"
    if (packaged / "complete.lua").is_file():
        return packaged
    # src/rpc_runtime -> python/src -> python -> the repository
    repo = here.parents[2] / "rpc-protocol" / "scripts"
    if (repo / "complete.lua").is_file():
        return repo
    raise FileNotFoundError(
        "the protocol's Lua scripts are neither in the package (rpc_runtime/lua) nor in "
        f"the repository ({repo}); set RPC_SCRIPTS_DIR"
    )


@dataclass(frozen=True)
class Script:
    """One script: its file name, source and SHA-1."""

    name: str
    source: str
    sha1: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha1", hashlib.sha1(self.source.encode("utf-8")).hexdigest())

    async def run(self, redis: aredis.Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``EVALSHA``, loading the script on ``NOSCRIPT`` and trying once more."""
        try:
            return await redis.evalsha(self.sha1, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha1, len(keys), *keys, *args)  # type: ignore[misc]


@cache
def script(name: str) -> Script:
    """The script named ``name`` (e.g. ``"complete.lua"``), read once."""
    path = _scripts_dir() / name
    # newline="" keeps the bytes as they are: Redis hashes exactly these.
    with open(path, encoding="utf-8", newline="") as f:
        return Script(name, f.read())


def complete() -> Script:
    return script("complete.lua")


def reply_and_ack() -> Script:
    return script("reply_and_ack.lua")


def intake() -> Script:
    return script("intake.lua")


def poll() -> Script:
    return script("poll.lua")


def cancel() -> Script:
    return script("cancel.lua")


def tick() -> Script:
    return script("tick.lua")


def shards() -> Script:
    return script("shards.lua")


def rate_limit() -> Script:
    return script("rate_limit.lua")


def forget_consumer() -> Script:
    return script("forget_consumer.lua")


def group_admit() -> Script:
    return script("group_admit.lua")


def group_release() -> Script:
    return script("group_release.lua")
