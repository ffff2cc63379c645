"""JupyterHub spawners that run single-user servers in Docker containers."""

from .dockerspawner import DockerSpawner, SpawnError

__all__ = ["DockerSpawner", "SpawnError"]
