"""Spawner config -> container spec, as pure functions of plain data.

The spawner resolves everything that needs IO or callables (image, command, env,
limits, formatted volume names) into a ``ContainerPlan``; turning that into the
engine's create arguments happens here, so it can be table-tested without a hub or
an engine, and so the spec hash that decides whether a stopped container may be
reused is computed from exactly what is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine.protocol import ContainerSpec
from .naming import LABEL_SPEC_HASH

#: Env variables that change at every start and so must not force a new container.
PER_START_ENV = frozenset({"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"})

#: The engine's CFS period (microseconds) unless extra_host_config sets cpu_period.
DEFAULT_CPU_PERIOD = 100_000

#: Longest file name (bytes) on the filesystems a host path lands on.
NAME_MAX = 255

#: Networks on which a server is reached through a published host port.
HOST_PORT_NETWORKS = frozenset({"bridge", "default"})

_MOUNT_KEYS = {
    "target": "Target",
    "source": "Source",
    "type": "Type",
    "read_only": "ReadOnly",
    "consistency": "Consistency",
}


@dataclass(frozen=True)
class ServerPlan:
    """What every server object (container or service) is made from."""

    name: str
    image: str
    command: Sequence[str] | None
    env: Mapping[str, str]
    labels: Mapping[str, str]
    port: int = 8888


@dataclass(frozen=True)
class ContainerPlan(ServerPlan):
    """Everything the create call depends on, already resolved by the spawner."""

    host_ip: str = "127.0.0.1"
    network_name: str = "bridge"
    use_internal_ip: bool = False
    use_internal_hostname: bool = False
    binds: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    mounts: Sequence[Mapping[str, Any]] = ()
    links: Mapping[str, str] = field(default_factory=dict)
    mem_limit: int | None = None
    cpu_limit: float | None = None
    extra_create_kwargs: Mapping[str, Any] = field(default_factory=dict)
    extra_host_config: Mapping[str, Any] = field(default_factory=dict)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``; nested dicts merge, other values replace.

    Admins write ``extra_host_config = {"port_bindings": ...}`` to change one key
    of what the spawner builds, not to drop its siblings.
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_templates(
    value: Any, namespace: Mapping[str, str], warn: Callable[[str], None] | None = None
) -> Any:
    """Format every string inside ``value`` with the template namespace.

    A string that is not a valid template (JSON in a label, a typo such as
    ``{usrname}``) is kept as written, as the established spawner did, and
    reported through ``warn`` so the admin can see it.
    """
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return value.format(**namespace)
        except (KeyError, ValueError, IndexError, AttributeError) as e:
            if warn is not None:
                warn(
                    f"{value!r} is not rendered as a template ({e.__class__.__name__}: {e}); "
                    f"known fields: {', '.join(sorted(namespace))}"
                )
            return value
    if isinstance(value, Mapping):
        return {render_templates(k, namespace, warn): render_templates(v, namespace, warn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(render_templates(v, namespace, warn) for v in value)
    return value


def check_confined(template: str, rendered: str) -> str:
    """Return ``rendered`` if names filled into ``template`` stayed single path
    components, else raise ValueError.

    ``/srv/users/{raw_username}/work`` names one directory per user; a name
    with ``/`` would reach another user's directory or leave ``/srv/users``,
    and ``.``, ``..`` or an empty name would name the parent; ``:`` would split
    the engine's ``source:target:mode`` bind. Names are not
    decoded, so ``%2e%2e`` or look-alike characters stay plain file names.
    """
    if "{" not in template:
        return rendered
    template_parts = template.split("/")
    parts = rendered.split("/")
    shown = _clip(rendered)
    if "\x00" in rendered or len(parts) != len(template_parts):
        raise ValueError(f"{shown} (from {template!r}): a name filled in contains '/' or a NUL byte")
    for template_part, part in zip(template_parts, parts):
        if "{" not in template_part:
            continue
        # "" (the default server's {servername}) collapses like "a//b"; it cannot climb
        if part in (".", ".."):
            raise ValueError(f"{shown} (from {template!r}): a name filled in makes the path component {part!r}")
        if ":" in part:
            # a bind is "source:target:mode": the engine refuses a path with ':' (500)
            raise ValueError(f"{shown} (from {template!r}): a name filled in contains ':', which a bind cannot carry")
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > NAME_MAX:
            raise ValueError(
                f"{shown} (from {template!r}): a path component would be {size} bytes long,"
                f" over the filesystem limit of {NAME_MAX}"
            )
    return rendered


def _clip(text: str, limit: int = 80) -> str:
    """A bounded repr for messages: names can be long."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def volume_binds(
    volumes: Mapping[str, str | Mapping[str, str]],
    read_only_volumes: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """``volumes`` / ``read_only_volumes`` traits -> docker-py ``binds``.

    A value is the container path, or a dict with ``bind`` and optional ``mode``
    (``rw``, ``ro``, ``z``, ``Z``) and ``propagation``. Read-only volumes win over a
    read-write entry for the same host path, as in the established spawner.
    """
    binds: dict[str, dict[str, str]] = {}
    for source, target, default_mode in [
        *((s, t, "rw") for s, t in volumes.items()),
        *((s, t, "ro") for s, t in (read_only_volumes or {}).items()),
    ]:
        if isinstance(target, Mapping):
            if "bind" not in target:
                raise ValueError(f"volume {source!r}: a dict value needs a 'bind' key, got {dict(target)!r}")
            entry = {"bind": target["bind"], "mode": target.get("mode", default_mode)}
            if target.get("propagation"):
                entry["propagation"] = target["propagation"]
        else:
            entry = {"bind": target, "mode": default_mode}
        binds[source] = entry
    return binds


def engine_mount(mount: Mapping[str, Any]) -> dict[str, Any]:
    """A ``mounts`` entry in docker-py's ``Mount`` keywords -> the engine's form.

    Entries already in the engine's form (``Target``...) pass through unchanged.
    """
    if "Target" in mount:
        return dict(mount)
    if "target" not in mount:
        raise ValueError(f"mount {dict(mount)!r} needs a 'target'")
    unknown = set(mount) - set(_MOUNT_KEYS) - {
        "propagation", "no_copy", "labels", "driver_config", "tmpfs_size", "tmpfs_mode",
    }
    if unknown:
        raise ValueError(f"mount {dict(mount)!r}: unknown keys {sorted(unknown)}")
    out: dict[str, Any] = {"Type": "volume", "ReadOnly": False}
    for key, wire_key in _MOUNT_KEYS.items():
        if mount.get(key) is not None:
            out[wire_key] = mount[key]
    if mount.get("propagation"):
        out["BindOptions"] = {"Propagation": mount["propagation"]}
    volume_options: dict[str, Any] = {}
    if mount.get("no_copy"):
        volume_options["NoCopy"] = True
    if mount.get("labels"):
        volume_options["Labels"] = dict(mount["labels"])
    driver = mount.get("driver_config")
    if driver:
        if isinstance(driver, str):
            driver = {"name": driver}
        volume_options["DriverConfig"] = {
            "Name": driver.get("name") or driver.get("Name"),
            "Options": driver.get("options") or driver.get("Options") or {},
        }
    if volume_options:
        out["VolumeOptions"] = volume_options
    tmpfs: dict[str, Any] = {}
    if mount.get("tmpfs_size") is not None:
        tmpfs["SizeBytes"] = mount["tmpfs_size"]
    if mount.get("tmpfs_mode") is not None:
        tmpfs["Mode"] = mount["tmpfs_mode"]
    if tmpfs:
        out["TmpfsOptions"] = tmpfs
    return out


def publishes_port(network_name: str, use_internal_ip: bool) -> bool:
    """Whether the hub reaches the server through a host port (else: container IP)."""
    return not use_internal_ip and network_name != "host"


def host_config(plan: ContainerPlan) -> dict[str, Any]:
    """docker-py ``create_host_config`` keywords, before ``extra_host_config``."""
    hc: dict[str, Any] = {"network_mode": plan.network_name}
    if plan.binds:
        hc["binds"] = {k: dict(v) for k, v in plan.binds.items()}
    if plan.mounts:
        hc["mounts"] = [engine_mount(m) for m in plan.mounts]
    if plan.links:
        hc["links"] = dict(plan.links)
    if publishes_port(plan.network_name, plan.use_internal_ip):
        hc["port_bindings"] = {plan.port: (plan.host_ip,)}
    if plan.mem_limit:
        hc["mem_limit"] = plan.mem_limit
    if plan.cpu_limit:
        # the quota is per period: an admin's own cpu_period must scale it
        period = int(plan.extra_host_config.get("cpu_period") or DEFAULT_CPU_PERIOD)
        hc["cpu_period"] = period
        hc["cpu_quota"] = int(float(plan.cpu_limit) * period)
    return hc


def container_spec(plan: ContainerPlan) -> ContainerSpec:
    """The full create arguments, labelled with the hash of everything that matters."""
    mount_points = [b["bind"] for b in plan.binds.values()]
    spec: dict[str, Any] = {
        "name": plan.name,
        "image": plan.image,
        "command": list(plan.command) if plan.command is not None else None,
        "environment": dict(plan.env),
        "labels": dict(plan.labels),
        "ports": [plan.port],
    }
    if mount_points:
        spec["volumes"] = mount_points
    if plan.use_internal_hostname:
        spec["hostname"] = plan.name
    spec = deep_merge(spec, plan.extra_create_kwargs)
    spec["host_config"] = deep_merge(host_config(plan), plan.extra_host_config)
    spec["labels"] = {**spec.get("labels", {}), LABEL_SPEC_HASH: spec_hash(spec)}
    return spec  # type: ignore[return-value]


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A stable digest of a create spec, ignoring per-start values.

    Two specs with equal hashes create equivalent containers, so a stopped container
    carrying this hash may be started again instead of recreated.
    """
    data = dict(spec)
    env = data.get("environment") or {}
    if isinstance(env, Mapping):
        data["environment"] = {k: v for k, v in env.items() if k not in PER_START_ENV}
    labels = data.get("labels") or {}
    data["labels"] = {k: v for k, v in labels.items() if k != LABEL_SPEC_HASH}
    blob = json.dumps(data, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)
