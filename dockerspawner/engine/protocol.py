"""The Docker client protocol: the only way spawner code touches a container engine.

Two backends implement it: ``dockerspawner.engine.dockerpy.DockerPyEngine`` (a real
Docker or Podman engine through docker-py) and ``fakedocker.FakeDocker`` (in memory).
One contract suite (``tests/contract``) holds both to the same behaviour.

Conventions, so that a caller never needs to know which backend it has:

- Inputs use docker-py's vocabulary (snake_case keyword names, as in
  ``docker.APIClient.create_container`` and ``create_host_config``), because that is
  what existing ``extra_create_kwargs`` / ``extra_host_config`` configs are written in.
- Outputs are the engine's own JSON, as plain dicts (``Id``, ``State``, ``Config``,
  ``HostConfig``, ``NetworkSettings``...), because that is what both real engines
  return and what a fake must imitate.
- Failures are the exception types below; no docker-py or HTTP exception escapes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

__all__ = [
    "EngineError",
    "NotFound",
    "Conflict",
    "EngineUnavailable",
    "InvalidSpec",
    "classify_500",
    "PullEvent",
    "ExecResult",
    "ContainerSpec",
    "DockerEngine",
]


class EngineError(Exception):
    """The engine refused or failed a request.

    ``status`` is the HTTP status the engine answered with (``None`` when the
    request never reached it), ``explanation`` the engine's own message.
    """

    def __init__(self, explanation: str, status: int | None = None):
        super().__init__(explanation)
        self.explanation = explanation
        self.status = status

    def __str__(self) -> str:
        if self.status is None:
            return self.explanation
        return f"{self.status}: {self.explanation}"


class NotFound(EngineError):
    """No such container, image, volume, network, service, exec or path (404)."""

    def __init__(self, explanation: str, status: int | None = 404):
        super().__init__(explanation, status)


class Conflict(EngineError):
    """The name is taken, or the object is in a state that forbids the call (409)."""

    def __init__(self, explanation: str, status: int | None = 409):
        super().__init__(explanation, status)


class EngineUnavailable(EngineError):
    """The engine did not answer: socket missing, connection refused, timeout.

    Transient by nature: callers such as ``poll`` must not read it as "stopped".
    """

    def __init__(self, explanation: str, status: int | None = None):
        super().__init__(explanation, status)


class InvalidSpec(EngineError):
    """A request was malformed before it reached the engine (unknown keyword,
    bad value); the message names the bad argument."""

    def __init__(self, explanation: str, status: int | None = 400):
        super().__init__(explanation, status)


# Swarm-mode Docker and Podman answer 500 where plain Docker answers 404/409;
# their messages (lowercased) say which it is, and a spawner must be able to
# tell "name taken" or "not running" from a broken engine.
_NOT_FOUND_500 = ("rpc error: code = notfound", "network not found", "no such container")
# swarm: 'network sw-x not found' (the name sits between the words)
_NOT_FOUND_500_RE = re.compile(r"\bnetwork \S+ not found\b")
_CONFLICT_500 = ("container state improper", "is already in use by", "already exists", "already used")


def classify_500(message: str) -> EngineError:
    """The protocol error an engine's 500 answer stands for, judged by its message."""
    lowered = message.lower()
    if any(f in lowered for f in _NOT_FOUND_500) or _NOT_FOUND_500_RE.search(lowered):
        return NotFound(message, 500)
    if any(f in lowered for f in _CONFLICT_500):
        return Conflict(message, 500)
    return EngineError(message, 500)


@dataclass(frozen=True)
class PullEvent:
    """One progress event of an image pull.

    The engine's own events carry ``status`` (e.g. ``Downloading``), the ``layer``
    id they concern and byte counts. Every pull that succeeds ends with exactly one
    event whose ``status`` is ``"complete"`` and whose ``image_id`` is the pulled
    image's id; a pull that fails raises instead (also when the engine reports the
    failure inside a successful stream, as Podman does).
    """

    status: str
    layer: str | None = None
    current: int | None = None
    total: int | None = None
    image_id: str | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ContainerSpec(TypedDict, total=False):
    """Keyword arguments of docker-py's ``APIClient.create_container``.

    ``host_config`` holds the keyword arguments of ``APIClient.create_host_config``
    (``binds``, ``mounts``, ``port_bindings``, ``network_mode``, ``mem_limit``,
    ``cpu_period``, ``cpu_quota``, ``auto_remove``, ``init``, ``device_requests``,
    ...); ``mounts`` entries are in the engine's form (``Target``, ``Source``,
    ``Type``, ``ReadOnly``). ``networking_config`` is the engine's
    ``NetworkingConfig`` body (``{"EndpointsConfig": {net: {...}}}``). Any other
    ``create_container`` keyword (``working_dir``, ``user``, ``hostname``, ...) may
    be given too.
    """

    name: str
    image: str
    command: list[str] | str | None
    environment: dict[str, str] | list[str]
    labels: dict[str, str]
    ports: list[Any]
    host_config: dict[str, Any]
    networking_config: dict[str, Any]


@runtime_checkable
class DockerEngine(Protocol):
    """What a spawner may ask of a container engine. Every method is a coroutine
    (or an async iterator) and never blocks the event loop.

    ``ref`` arguments accept a name or an id (names of containers with or without
    the leading slash; images as ``repo[:tag]``, ``repo@digest`` or id).
    """

    # -- engine ---------------------------------------------------------------
    async def version(self) -> dict:
        """The engine's ``/version`` document (``Version``, ``ApiVersion``, ...)."""

    async def ping(self) -> bool:
        """True when the engine answers; raises ``EngineUnavailable`` otherwise."""

    async def info(self) -> dict:
        """The engine's ``/info`` document (``Swarm.LocalNodeState``, ...)."""

    # -- images ---------------------------------------------------------------
    async def inspect_image(self, ref: str) -> dict:
        """Raises ``NotFound`` ("No such image: <ref>")."""

    def pull_image(self, ref: str) -> AsyncIterator[PullEvent]:
        """Pull ``ref`` (default tag ``latest``), yielding progress.

        Concurrent pulls of one ref may share a single engine pull; each caller
        still sees the whole event sequence ending in ``complete``. Raises
        ``NotFound`` for an unknown repository or tag.
        """

    async def list_images(self, *, name: str | None = None, filters: dict[str, Any] | None = None) -> list[dict]:
        """The engine's image list (``Id``, ``RepoTags``, ``Labels``, ``Size``...);
        ``name`` keeps images of that repository (``repo`` or ``repo:tag``)."""

    async def tag_image(self, ref: str, repository: str, tag: str | None = None) -> None: ...

    async def remove_image(self, ref: str, force: bool = False) -> None: ...

    # -- containers -------------------------------------------------------------
    async def create_container(self, spec: ContainerSpec) -> str:
        """Create and return the new container's id.

        Raises ``Conflict`` when the name is taken (the message names the
        container that holds it), ``NotFound`` when the image or a named network
        is missing, ``InvalidSpec`` for an argument docker-py would reject.
        """

    async def start_container(self, ref: str) -> None:
        """Starting a running container is a no-op, as on the real engine."""

    async def inspect_container(self, ref: str) -> dict: ...

    async def list_containers(
        self, *, all: bool = True, filters: dict[str, Any] | None = None
    ) -> list[dict]:
        """The engine's container list (``Id``, ``Names``, ``Image``, ``State``,
        ``Status``, ``Labels``, ``Ports``...). ``filters`` as in docker-py
        (``{"label": ["a=b", "c"], "name": "x", "status": "running", "id": ...}``).
        """

    async def stop_container(self, ref: str, timeout: int | None = None) -> None:
        """Stopping a container that is not running is not an error."""

    async def kill_container(self, ref: str, signal: str | int | None = None) -> None:
        """Raises ``Conflict`` when the container is not running."""

    async def remove_container(
        self, ref: str, *, force: bool = False, volumes: bool = False
    ) -> None:
        """Raises ``Conflict`` for a running container without ``force``."""

    async def wait_container(self, ref: str, timeout: float | None = None) -> int:
        """Wait until the container is not running; return its exit code.

        Raises ``EngineUnavailable`` when ``timeout`` seconds pass first.
        """

    async def container_logs(
        self, ref: str, *, tail: int | None = None, stdout: bool = True, stderr: bool = True
    ) -> str:
        """Decoded log text; ``tail`` keeps the last N lines (``None``: all)."""

    async def exec_run(
        self,
        ref: str,
        cmd: list[str] | str,
        *,
        user: str | None = None,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in a running container and wait for it.

        Raises ``Conflict`` when the container is not running.
        """

    async def put_archive(self, ref: str, path: str, data: bytes) -> None:
        """Extract the tar archive ``data`` into ``path`` (which must exist)."""

    async def port(self, ref: str, private_port: int | str, protocol: str = "tcp") -> list[dict]:
        """Host bindings of a container port: ``[{"HostIp": .., "HostPort": ..}]``,
        empty when it is not published."""

    # -- volumes ----------------------------------------------------------------
    async def create_volume(
        self,
        name: str,
        *,
        driver: str | None = None,
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        """Creating an existing volume returns it (the engine's behaviour)."""

    async def inspect_volume(self, name: str) -> dict: ...

    async def list_volumes(self, filters: dict[str, Any] | None = None) -> list[dict]: ...

    async def remove_volume(self, name: str, force: bool = False) -> None:
        """Raises ``Conflict`` while a container uses it."""

    # -- networks ---------------------------------------------------------------
    async def create_network(
        self,
        name: str,
        *,
        driver: str | None = None,
        labels: dict[str, str] | None = None,
        internal: bool = False,
        attachable: bool = False,
    ) -> str: ...

    async def inspect_network(self, ref: str) -> dict: ...

    async def list_networks(
        self, *, names: list[str] | None = None, filters: dict[str, Any] | None = None
    ) -> list[dict]: ...

    async def remove_network(self, ref: str) -> None: ...

    async def connect_network(
        self, network: str, container: str, *, aliases: list[str] | None = None
    ) -> None: ...

    async def disconnect_network(self, network: str, container: str, *, force: bool = False) -> None: ...

    # -- swarm --------------------------------------------------------------------
    async def create_service(self, spec: dict) -> str:
        """Create a service from the engine's ``ServiceSpec`` body (``Name``,
        ``Labels``, ``TaskTemplate``, ``Mode``, ``EndpointSpec``, ``Networks``);
        return its id. Raises ``EngineError`` (503) when swarm is not active."""

    async def inspect_service(self, ref: str) -> dict: ...

    async def update_service(self, ref: str, version: int, spec: dict) -> None: ...

    async def remove_service(self, ref: str) -> None: ...

    async def list_services(self, filters: dict[str, Any] | None = None) -> list[dict]: ...

    async def list_tasks(self, filters: dict[str, Any] | None = None) -> list[dict]: ...

    async def list_nodes(self, filters: dict[str, Any] | None = None) -> list[dict]:
        """The swarm's nodes (``ID``, ``Spec{Role,Labels,Availability}``,
        ``Description{Hostname,...}``, ``Status{State,Addr,Message}``);
        ``filters`` ``id``, ``name``, ``role``, ``node.label``."""

    async def inspect_node(self, ref: str) -> dict:
        """One node by id or hostname (``self``: the engine's own); raises
        ``NotFound`` ("node <ref> not found")."""

    # -- events -------------------------------------------------------------------
    def events(
        self, *, filters: dict[str, Any] | None = None, since: float | None = None
    ) -> AsyncIterator[dict]:
        """The engine's event stream (``Type``, ``Action``, ``Actor{ID,
        Attributes}``, ``time``, ``timeNano``), filtered as docker-py filters
        (``{"type": "container", "label": [...], "event": [...]}``). Runs until
        the consumer stops iterating (``aclose``)."""

    async def close(self) -> None:
        """Release threads, connections and servers. Idempotent."""
