"""JupyterHub spawners that run single-user servers in Docker containers."""

from typing import Any

from ._version import __version__

__all__ = ["__version__", "DockerSpawner", "SpawnError", "SwarmSpawner", "SystemUserSpawner"]

_where = {
    "DockerSpawner": "dockerspawner",
    "SpawnError": "dockerspawner",
    "SwarmSpawner": "swarmspawner",
    "SystemUserSpawner": "systemuserspawner",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `dockerspawner.engine` (used by fakedocker) does not load JupyterHub.
    if name in _where:
        import importlib

        return getattr(importlib.import_module(f".{_where[name]}", __name__), name)
    raise AttributeError(f"module 'dockerspawner' has no attribute {name!r}")
