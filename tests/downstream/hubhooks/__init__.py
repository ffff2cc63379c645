"""The code under test: what a deployment puts in its jupyterhub_config.py."""

from __future__ import annotations

#: The image users get unless they choose another of ALLOWED.
DEFAULT_IMAGE = "quay.io/jupyterhub/singleuser:6.1"


def pre_spawn_hook(spawner) -> None:
    """The user's first group becomes TEAM; admins get more memory."""
    groups = sorted(group.name for group in spawner.user.groups)
    spawner.environment["TEAM"] = groups[0] if groups else "none"
    if spawner.user.admin:
        spawner.mem_limit = "2G"


def host_config(spawner) -> dict:
    """A callable extra_host_config: the "big" group gets more CPU shares."""
    big = any(group.name == "big" for group in spawner.user.groups)
    return {"cpu_shares": 2048 if big else 512}


def spawner_config(image: str = DEFAULT_IMAGE) -> dict:
    """The deployment's DockerSpawner settings (c.DockerSpawner.<key> = value)."""
    return {
        "image": image,
        "allowed_images": {"default": image},
        "pre_spawn_hook": pre_spawn_hook,
        "extra_host_config": host_config,
        "remove": True,
    }
