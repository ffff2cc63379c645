"""JupyterHub spawners that run single-user servers in Docker containers."""

from typing import Any

__all__ = ["DockerSpawner", "SpawnError"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `dockerspawner.engine` (used by fakedocker) does not load JupyterHub.
    if name in __all__:
        from . import dockerspawner as _module

        return getattr(_module, name)
    raise AttributeError(f"module 'dockerspawner' has no attribute {name!r}")
