"""docker-py keyword arguments -> the engine's JSON request bodies.

Both backends build a create body here, with docker-py's own types, so that the
fake stores exactly the body a real engine would have received.
"""

from __future__ import annotations

from typing import Any

from docker import errors as docker_errors
from docker.types import ContainerConfig, HostConfig

from .protocol import ContainerSpec, InvalidSpec

#: The API version the fake speaks and the body builder defaults to.
API_VERSION = "1.41"


def create_body(spec: ContainerSpec, api_version: str = API_VERSION) -> tuple[str | None, dict]:
    """Return ``(name, body)`` for ``POST /containers/create``.

    Raises ``InvalidSpec`` naming the argument docker-py rejects.
    """
    kwargs: dict[str, Any] = dict(spec)
    name = kwargs.pop("name", None)
    host_config = kwargs.pop("host_config", None) or {}
    image = kwargs.pop("image", None)
    if not image:
        raise InvalidSpec("create_container needs an image")
    command = kwargs.pop("command", None)
    try:
        if host_config and all(k[:1].isupper() for k in host_config):
            # already the engine's form (docker-py's create_host_config() result)
            hc = dict(host_config)
        else:
            hc = HostConfig(version=api_version, **host_config)
    except TypeError as e:
        raise InvalidSpec(f"invalid host_config: {e}") from None
    except docker_errors.DockerException as e:
        raise InvalidSpec(f"invalid host_config: {e}") from None
    try:
        body = ContainerConfig(api_version, image, command, host_config=hc, **kwargs)
    except TypeError as e:
        raise InvalidSpec(f"invalid container spec: {e}") from None
    except docker_errors.DockerException as e:
        raise InvalidSpec(f"invalid container spec: {e}") from None
    return name, dict(body)
