"""Typed views of what the engine answers, read in one place.

Inspect results are deep JSON whose optional parts differ between Docker,
Podman and fakedocker (``null`` vs ``{}`` vs missing). Every hook and ``poll``
reads them through these views, so a shape difference is handled once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import naming


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


class _Owned:
    """Owner and spec hash, read from an object's labels."""

    labels: Mapping[str, str]

    @property
    def owner(self) -> tuple[str, str] | None:
        """(user, server) from our labels; None when not made by this spawner family."""
        return naming.labels_owner(self.labels)

    @property
    def spec_hash(self) -> str | None:
        return self.labels.get(naming.LABEL_SPEC_HASH)


@dataclass(frozen=True)
class ContainerView(_Owned):
    """The parts of a container inspect a spawner decides on."""

    id: str
    name: str
    labels: Mapping[str, str]
    running: bool
    status: str
    exit_code: int | None
    error: str
    oom_killed: bool
    finished_at: str
    image_id: str
    hostname: str
    env: tuple[str, ...]
    ports: Mapping[str, list]
    networks: Mapping[str, Mapping[str, Any]]
    ip_address: str
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> ContainerView:
        config = _dict(info.get("Config"))
        state = _dict(info.get("State"))
        net = _dict(info.get("NetworkSettings"))
        code = state.get("ExitCode")
        return cls(
            id=info.get("Id") or info.get("ID") or "",
            name=(info.get("Name") or "").lstrip("/"),
            labels=_dict(config.get("Labels")),
            running=bool(state.get("Running")),
            status=state.get("Status") or "",
            exit_code=int(code) if isinstance(code, int) else None,
            error=state.get("Error") or "",
            oom_killed=bool(state.get("OOMKilled")),
            finished_at=state.get("FinishedAt") or "",
            image_id=info.get("Image") or "",
            hostname=config.get("Hostname") or "",
            env=tuple(config.get("Env") or ()),
            ports=_dict(net.get("Ports")),
            networks=_dict(net.get("Networks")),
            ip_address=net.get("IPAddress") or "",
            raw=info,
        )

    @property
    def api_token(self) -> str | None:
        """The token the server was created with (a reused container keeps it)."""
        for line in self.env:
            key, _, value = line.partition("=")
            if key in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN") and value:
                return value
        return None

    def host_binding(self, port: int) -> tuple[str, int] | None:
        """(host ip, host port) publishing ``port``/tcp, if any."""
        bindings = self.ports.get(f"{port}/tcp") or []
        if not bindings:
            return None
        binding = bindings[0]
        return binding.get("HostIp") or "", int(binding["HostPort"])

    def network_ip(self, network: str) -> str:
        """The address on ``network`` (or on its only network), "" when it has none."""
        net = self.networks.get(network) or next(iter(self.networks.values()), {})
        return _dict(net).get("IPAddress") or self.ip_address

    def exit_status(self) -> str:
        """The established ``poll()`` text for an exited container."""
        return f"ExitCode={self.exit_code}, Error='{self.error}', FinishedAt={self.finished_at}"


#: Task states on the way to running, in the order swarm moves through them.
TASK_PENDING_STATES = (
    "new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting",
)
#: Task states from which a task never runs again.
TASK_FINAL_STATES = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")


@dataclass(frozen=True)
class TaskView:
    """One swarm task: where it runs and how far it got."""

    id: str
    state: str
    desired_state: str
    message: str
    error: str
    node_id: str
    exit_code: int | None
    created_at: str
    container_id: str = ""
    #: target port -> published port of host-mode ports (swarm lists each once for IPv4, then IPv6)
    ports: Mapping[int, int] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def of(cls, task: Mapping[str, Any]) -> TaskView:
        status = _dict(task.get("Status"))
        container = _dict(status.get("ContainerStatus"))
        code = container.get("ExitCode")
        ports: dict[int, int] = {}
        for p in _dict(status.get("PortStatus")).get("Ports") or []:
            if p.get("TargetPort") and p.get("PublishedPort") and p.get("PublishMode", "host") == "host":
                # the first is the IPv4 binding; the engine may give the IPv6 one another port
                ports.setdefault(int(p["TargetPort"]), int(p["PublishedPort"]))
        return cls(
            id=task.get("ID") or "",
            state=(status.get("State") or "").lower(),
            desired_state=(task.get("DesiredState") or "").lower(),
            message=status.get("Message") or "",
            error=status.get("Err") or "",
            node_id=task.get("NodeID") or "",
            exit_code=int(code) if isinstance(code, int) else None,
            created_at=task.get("CreatedAt") or "",
            container_id=container.get("ContainerID") or "",
            ports=ports,
            raw=task,
        )

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def live(self) -> bool:
        """Wanted by the orchestrator: ``running``, or ``ready`` while a restarted
        task waits out its restart delay."""
        return self.desired_state in ("running", "ready")

    @property
    def serving(self) -> bool:
        """Running and still wanted; a task whose node went down keeps saying
        ``running`` but is desired ``shutdown``."""
        return self.running and self.desired_state == "running"

    @property
    def failed(self) -> bool:
        return self.state in ("failed", "rejected", "orphaned")

    @property
    def final(self) -> bool:
        return self.state in TASK_FINAL_STATES

    def reason(self) -> str:
        """What swarm says about this task, most specific first."""
        return self.error or self.message or self.state


@dataclass(frozen=True)
class ServiceView(_Owned):
    """A swarm service: owner labels and the ports it publishes."""

    id: str
    name: str
    labels: Mapping[str, str]
    published: Mapping[int, int]
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> ServiceView:
        spec = _dict(info.get("Spec"))
        ports = _dict(info.get("Endpoint")).get("Ports") or _dict(spec.get("EndpointSpec")).get("Ports") or []
        published = {
            int(p["TargetPort"]): int(p["PublishedPort"])
            for p in ports
            if p.get("TargetPort") and p.get("PublishedPort")
        }
        return cls(
            id=info.get("ID") or "",
            name=spec.get("Name") or "",
            labels=_dict(spec.get("Labels")),
            published=published,
            raw=info,
        )

    @property
    def running(self) -> bool:
        """A service is always meant to run (whether a task does is the task's
        to say), so an unlabelled one is treated as in use, like a running
        container: never taken unless the saved state names it."""
        return True


def newest_task(tasks: list[Mapping[str, Any]] | list[TaskView]) -> TaskView | None:
    """The task that matters: a live one (desired running or ready) if any, else the most recent."""
    views = [t if isinstance(t, TaskView) else TaskView.of(t) for t in tasks]
    if not views:
        return None
    live = [t for t in views if t.live]
    pool = live or views
    return max(pool, key=lambda t: t.created_at)
