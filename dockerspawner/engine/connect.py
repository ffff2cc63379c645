"""Choosing and sharing engine clients.

All spawners of a hub that talk to the same engine with the same settings share one
client (one thread pool, one shared-pull table, one fake daemon). Clients are bound
to the event loop they were made on, so the cache is per loop.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import weakref
from collections.abc import Callable
from typing import Any

from .protocol import DockerEngine

_cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, DockerEngine]] = (
    weakref.WeakKeyDictionary()
)

KINDS = ("docker", "fake")


def _factory(kind: str) -> Callable[..., DockerEngine]:
    if kind == "docker":
        from .dockerpy import DockerPyEngine

        return DockerPyEngine
    if kind == "fake":
        from fakedocker import FakeDocker

        return FakeDocker
    if ":" in kind or "." in kind:
        module, _, attr = kind.replace(":", ".").rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"engine {kind!r} cannot be imported: {e}") from None
    raise ValueError(
        f"unknown engine {kind!r}: use 'docker' (default), 'fake', "
        "an import path 'package.module:factory', or an engine object"
    )


def shared_engine(kind: str, **options: Any) -> DockerEngine:
    """The engine client for ``kind`` and ``options``, made once per event loop."""
    loop = asyncio.get_running_loop()
    key = kind + json.dumps(options, sort_keys=True, default=repr)
    per_loop = _cache.setdefault(loop, {})
    if key not in per_loop:
        per_loop[key] = _factory(kind)(**options)
    return per_loop[key]


_generation = 0


def engines_generation() -> int:
    """Changes whenever shared clients are forgotten: a caller that remembers
    one checks it to know its client is still the shared one."""
    return _generation


def forget_engines() -> list[DockerEngine]:
    """Drop the cache of the running loop and return its engines (to close them)."""
    global _generation
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return []
    _generation += 1
    return list(_cache.pop(loop, {}).values())
