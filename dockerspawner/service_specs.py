"""Spawner config -> swarm ``ServiceSpec``, as a pure function of plain data.

SwarmSpawner resolves everything that needs IO or callables (image, command,
env, limits, mounts, rendered extras) into a ``ServicePlan``; this module turns
it into the body of ``POST /services/create``. The ``extra_*`` dicts are in
docker-py's keyword vocabulary, as dockerspawner 14 passed them to
``docker.types.ContainerSpec``/``Resources``/``Placement``/``TaskTemplate``/
``EndpointSpec`` and to ``create_service``, so existing configs keep working;
docker.types does the keyword -> engine conversion, exactly as it did for 14.
Each extra replaces the keyword it names (14's ``dict.update``), except that
the owner labels always win: a service must never look like another owner's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docker import errors as docker_errors
from docker import types as docker_types
from docker.utils import convert_service_networks

from .naming import LABEL_SPEC_HASH
from .specs import PER_START_ENV, ServerPlan

#: What swarm applies to a spec without ``RestartPolicy`` (14 sent none); made
#: explicit so the spec says what happens when a server exits.
DEFAULT_RESTART_POLICY: dict[str, Any] = {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0}

#: ``create_service`` keywords an ``extra_create_kwargs`` may set, with their body key.
_CREATE_KEYS = {
    "name": "Name",
    "labels": "Labels",
    "task_template": "TaskTemplate",
    "mode": "Mode",
    "networks": "Networks",
    "endpoint_spec": "EndpointSpec",
    "update_config": "UpdateConfig",
    "rollback_config": "RollbackConfig",
}


@dataclass(frozen=True)
class ServicePlan(ServerPlan):
    """Everything the service create call depends on, already resolved.

    ``command`` is the spawner's command; like 14 it becomes the container's
    ``Args`` (the image's entrypoint stays). ``mounts`` are in the engine's form
    (``Type``, ``Source``, ``Target``, ``ReadOnly``...). Sizes are bytes, CPUs
    are fractions of a core.
    """

    network_name: str = ""
    use_internal_ip: bool = False
    endpoint_mode: str | None = None
    mounts: Sequence[Mapping[str, Any]] = ()
    mem_limit: int | None = None
    cpu_limit: float | None = None
    mem_guarantee: int | None = None
    cpu_guarantee: float | None = None
    volume_driver: str = ""
    volume_driver_options: Mapping[str, str] = field(default_factory=dict)
    restart_policy: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESTART_POLICY))
    extra_container_spec: Mapping[str, Any] = field(default_factory=dict)
    extra_resources_spec: Mapping[str, Any] = field(default_factory=dict)
    extra_placement_spec: Mapping[str, Any] = field(default_factory=dict)
    extra_task_spec: Mapping[str, Any] = field(default_factory=dict)
    extra_endpoint_spec: Mapping[str, Any] = field(default_factory=dict)
    extra_create_kwargs: Mapping[str, Any] = field(default_factory=dict)


def binds_to_mounts(binds: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """docker-py ``binds`` (from ``volume_binds``) -> engine mounts for a service.

    An absolute source is a host path (``bind``); any other source names a
    volume (``volume``). 14 made every entry a bind, which the engine refuses
    for a volume name ("invalid mount path").
    """
    mounts = []
    for source, bind in binds.items():
        mount: dict[str, Any] = {
            "Type": "bind" if source.startswith("/") else "volume",
            "Source": source,
            "Target": bind["bind"],
            "ReadOnly": bind.get("mode", "rw").split(",")[0] == "ro",
        }
        if bind.get("propagation") and mount["Type"] == "bind":
            mount["BindOptions"] = {"Propagation": bind["propagation"]}
        mounts.append(mount)
    return mounts


def with_volume_driver(
    mounts: Sequence[Mapping[str, Any]], driver: str, options: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Give every volume mount without a driver of its own ``driver``.

    A multi-host driver is what lets a user's volume follow the server to
    another node; bind mounts have no driver and are left alone.
    """
    out = []
    for mount in mounts:
        mount = dict(mount)
        if driver and mount.get("Type", "volume") == "volume":
            vo = dict(mount.get("VolumeOptions") or {})
            if not vo.get("DriverConfig"):
                vo["DriverConfig"] = {"Name": driver, "Options": dict(options or {})}
                mount["VolumeOptions"] = vo
        out.append(mount)
    return out


def _build(kind: Any, trait: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kind(**kwargs)`` with docker-py's own errors turned into one that
    names the trait an admin has to fix."""
    try:
        return kind(**kwargs)
    except TypeError as e:
        raise ValueError(f"{trait}: {e} (keywords of docker.types.{kind.__name__})") from None
    except (docker_errors.InvalidArgument, docker_errors.DockerException) as e:
        raise ValueError(f"{trait}: {e}") from None


def _drop_none(value: Any) -> Any:
    """The body without ``null`` members (the engine reads them as unset)."""
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _nano_cpus(cpus: float | None) -> int | None:
    return int(cpus * 1e9) if cpus else None


def service_spec(plan: ServicePlan) -> dict[str, Any]:
    """The engine's ``ServiceSpec`` body for ``plan``, labelled with its hash."""
    mounts = with_volume_driver(plan.mounts, plan.volume_driver, plan.volume_driver_options)
    container_kwargs: dict[str, Any] = {
        "image": plan.image,
        "env": dict(plan.env),
        "args": list(plan.command) if plan.command is not None else None,
        "mounts": mounts or None,
    }
    container_kwargs.update(plan.extra_container_spec)
    container = _build(docker_types.ContainerSpec, "extra_container_spec", container_kwargs)

    resources_kwargs: dict[str, Any] = {
        "mem_limit": plan.mem_limit or None,
        "mem_reservation": plan.mem_guarantee or None,
        "cpu_limit": _nano_cpus(plan.cpu_limit),
        "cpu_reservation": _nano_cpus(plan.cpu_guarantee),
    }
    resources_kwargs.update(plan.extra_resources_spec)
    resources = _build(docker_types.Resources, "extra_resources_spec", resources_kwargs)

    placement = _build(docker_types.Placement, "extra_placement_spec", dict(plan.extra_placement_spec))

    task_kwargs: dict[str, Any] = {
        "container_spec": container,
        "resources": resources,
        "networks": [plan.network_name] if plan.network_name else [],
        "placement": placement,
    }
    task_kwargs.update(plan.extra_task_spec)
    task = _build(docker_types.TaskTemplate, "extra_task_spec", task_kwargs)
    if "RestartPolicy" not in task and plan.restart_policy:
        task["RestartPolicy"] = dict(plan.restart_policy)

    endpoint_kwargs: dict[str, Any] = {}
    if plan.endpoint_mode:
        endpoint_kwargs["mode"] = plan.endpoint_mode
    if not plan.use_internal_ip:
        endpoint_kwargs["ports"] = {None: (plan.port, "tcp", "host")}
    endpoint_kwargs.update(plan.extra_endpoint_spec)
    endpoint = _build(docker_types.EndpointSpec, "extra_endpoint_spec", endpoint_kwargs)

    create: dict[str, Any] = {
        "name": plan.name,
        "task_template": task,
        "endpoint_spec": endpoint,
        "mode": {"Replicated": {"Replicas": 1}},
    }
    unknown = set(plan.extra_create_kwargs) - set(_CREATE_KEYS)
    if unknown:
        raise ValueError(
            f"extra_create_kwargs: unknown keys {sorted(unknown)[:5]}; "
            f"create_service takes {', '.join(sorted(_CREATE_KEYS))}"
        )
    create.update(plan.extra_create_kwargs)
    if isinstance(create["mode"], str):
        create["mode"] = _build(docker_types.ServiceMode, "extra_create_kwargs", {"mode": create["mode"]})
    if create.get("networks"):
        create["networks"] = convert_service_networks(create["networks"])
    create["labels"] = {**(create.get("labels") or {}), **plan.labels}

    body = _drop_none({_CREATE_KEYS[k]: v for k, v in create.items()})
    body["Labels"][LABEL_SPEC_HASH] = service_spec_hash(body)
    return body


def service_spec_hash(body: Mapping[str, Any]) -> str:
    """A stable digest of a service body, ignoring per-start env and the hash itself."""
    data = json.loads(json.dumps(body))
    data.get("Labels", {}).pop(LABEL_SPEC_HASH, None)
    cs = (data.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    if cs.get("Env"):
        cs["Env"] = [e for e in cs["Env"] if e.split("=", 1)[0] not in PER_START_ENV]
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
