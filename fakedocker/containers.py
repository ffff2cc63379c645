"""The container model and its rendering in the engine's JSON shapes.

The create body (built by ``dockerspawner.engine.wire.create_body``, as the
real backend builds it) is merged with the image config the way the engine
merges it; ``inspect()`` and ``list_entry()`` are derived from that state.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from ._util import ZERO_TIME, command_string, human_duration, rfc3339_nano
from .fs import ContainerFS
from .health import status_suffix
from .http import Handler
from .images import Image

#: HostConfig as the engine (20.10, API 1.41) fills it for a body that sets nothing.
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default",
    "PortBindings": None,
    "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "host",
    "Dns": None,
    "DnsOptions": None,
    "DnsSearch": None,
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "runc",
    "ConsoleSize": [0, 0],
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": None,
    "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": None,
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "KernelMemory": 0,
    "KernelMemoryTCP": 0,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "PidsLimit": None,
    "Ulimits": None,
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": [
        "/proc/asound",
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
    ],
    "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
}

CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
)


def empty_endpoint(aliases: list[str] | None = None, ipam: dict | None = None) -> dict[str, Any]:
    return {
        "IPAMConfig": ipam,
        "Links": None,
        "Aliases": aliases,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": None,
    }


def merge_config(body: dict[str, Any], image: Image, cid: str) -> dict[str, Any]:
    """The engine's merge of the request's config with the image's."""
    img = image.config
    cfg: dict[str, Any] = {k: body.get(k) for k in CONFIG_KEYS if k in body}
    for key in ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr"):
        cfg[key] = bool(cfg.get(key))
    cfg["Hostname"] = cfg.get("Hostname") or cid[:12]
    cfg["Domainname"] = cfg.get("Domainname") or ""
    cfg["User"] = cfg.get("User") or img.get("User") or ""
    env = list(cfg.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    for item in img.get("Env") or []:
        if item.split("=", 1)[0] not in keys:
            env.append(item)
    cfg["Env"] = env or None
    if not cfg.get("Entrypoint"):
        if not cfg.get("Cmd"):
            cfg["Cmd"] = copy.deepcopy(img.get("Cmd"))
        if cfg.get("Entrypoint") is None:
            cfg["Entrypoint"] = copy.deepcopy(img.get("Entrypoint"))
    cfg.setdefault("Cmd", None)
    cfg.setdefault("Entrypoint", None)
    exposed = dict(img.get("ExposedPorts") or {})
    exposed.update(cfg.get("ExposedPorts") or {})
    if exposed:
        cfg["ExposedPorts"] = exposed
    else:
        cfg.pop("ExposedPorts", None)
    labels = dict(img.get("Labels") or {})
    labels.update(cfg.get("Labels") or {})
    cfg["Labels"] = labels
    volumes = dict(img.get("Volumes") or {})
    volumes.update(cfg.get("Volumes") or {})
    cfg["Volumes"] = volumes or None
    cfg["WorkingDir"] = cfg.get("WorkingDir") or img.get("WorkingDir") or ""
    if not cfg.get("StopSignal") and img.get("StopSignal"):
        cfg["StopSignal"] = img["StopSignal"]
    cfg["OnBuild"] = None
    for key in ("Healthcheck", "MacAddress", "StopSignal", "StopTimeout"):
        if cfg.get(key) in (None, ""):
            cfg.pop(key, None)
    ordered = {k: cfg[k] for k in CONFIG_KEYS if k in cfg}
    return ordered


def fill_host_config(sent: dict[str, Any] | None) -> dict[str, Any]:
    hc = copy.deepcopy(HOST_CONFIG_DEFAULTS)
    for key, value in (sent or {}).items():
        hc[key] = copy.deepcopy(value)
    if hc.get("Memory") and not hc.get("MemorySwap"):
        hc["MemorySwap"] = hc["Memory"] * 2
    if not hc.get("PortBindings"):
        hc["PortBindings"] = None
    return hc


@dataclass
class LogLine:
    ns: int
    stream: str  # "stdout" | "stderr"
    data: bytes


@dataclass
class Container:
    id: str
    name: str  # with the leading slash
    created_ns: int
    image: Image
    image_ref: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str
    args: list[str]
    fs: ContainerFS
    #: network name -> endpoint settings (addresses filled while running)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_ns: int = 0
    finished_ns: int = 0
    restart_count: int = 0
    #: "8888/tcp" -> bindings, while running
    ports: dict[str, list[dict[str, str]] | None] = field(default_factory=dict)
    logs: list[LogLine] = field(default_factory=list)
    exec_ids: list[str] = field(default_factory=list)
    #: private port -> HTTP handler of the simulated program listening there
    listeners: dict[int, Handler] = field(default_factory=dict)
    task: asyncio.Task | None = None
    proxies: list[Any] = field(default_factory=list)
    process: Any = None
    #: host port handed to a local process that binds it itself
    process_port: int | None = None
    stop_requested: bool = False
    sigterm: list = field(default_factory=lambda: [None])
    _exited: asyncio.Event | None = None
    sandbox_id: str = ""
    #: State.Health while a health check is configured and the container has run
    health: dict[str, Any] | None = None
    health_task: asyncio.Task | None = None
    restart_task: asyncio.Task | None = None
    restart_delay: float = 0.0

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def bare_name(self) -> str:
        return self.name.lstrip("/")

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    @property
    def exited(self) -> asyncio.Event:
        if self._exited is None:
            self._exited = asyncio.Event()
            if not self.running:
                self._exited.set()
        return self._exited

    @property
    def labels(self) -> dict[str, str]:
        return self.config.get("Labels") or {}

    def log(self, stream: str, data: bytes) -> None:
        if data:
            self.logs.append(LogLine(time.time_ns(), stream, data))

    def event_attributes(self, **extra: str) -> dict[str, str]:
        attrs = dict(self.labels)
        attrs["image"] = self.image_ref
        attrs["name"] = self.bare_name
        attrs.update(extra)
        return attrs

    # -- rendering ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = {
            "Status": self.status,
            "Running": self.status in ("running", "paused", "restarting"),
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339_nano(self.started_ns) if self.started_ns else ZERO_TIME,
            "FinishedAt": rfc3339_nano(self.finished_ns) if self.finished_ns else ZERO_TIME,
        }
        if self.health is not None:
            state["Health"] = copy.deepcopy(self.health)
        return state

    def _network_settings(self, full: bool) -> dict[str, Any]:
        networks = copy.deepcopy(self.networks)
        if not full:
            return {"Networks": networks}
        bridge = networks.get("bridge") if self.running else None
        ports: dict[str, Any] = {}
        if self.running and self.host_config.get("NetworkMode") not in ("host", "none"):
            ports = copy.deepcopy(self.ports)
        return {
            "Bridge": "",
            "SandboxID": self.sandbox_id if self.started_ns else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SandboxKey": f"/var/run/docker/netns/{self.sandbox_id[:12]}" if self.started_ns else "",
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": bridge["EndpointID"] if bridge else "",
            "Gateway": bridge["Gateway"] if bridge else "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": bridge["IPAddress"] if bridge else "",
            "IPPrefixLen": bridge["IPPrefixLen"] if bridge else 0,
            "IPv6Gateway": "",
            "MacAddress": bridge["MacAddress"] if bridge else "",
            "Networks": networks,
        }

    def inspect(self) -> dict[str, Any]:
        base = f"/var/lib/docker/containers/{self.id}"
        started = bool(self.started_ns)
        return {
            "Id": self.id,
            "Created": rfc3339_nano(self.created_ns),
            "Path": self.path,
            "Args": list(self.args),
            "State": self.state(),
            "Image": self.image.id,
            "ResolvConfPath": f"{base}/resolv.conf" if started else "",
            "HostnamePath": f"{base}/hostname" if started else "",
            "HostsPath": f"{base}/hosts" if started else "",
            "LogPath": f"{base}/{self.id}-json.log" if started else "",
            "Name": self.name,
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": list(self.exec_ids) if self.exec_ids and self.running else None,
            "HostConfig": copy.deepcopy(self.host_config),
            "GraphDriver": {"Data": None, "Name": "overlay2"},
            "Mounts": copy.deepcopy(self.mounts),
            "Config": copy.deepcopy(self.config),
            "NetworkSettings": self._network_settings(full=True),
        }

    def status_text(self) -> str:
        now = time.time_ns()
        if self.status == "running":
            return f"Up {human_duration((now - self.started_ns) / 1e9)}{status_suffix(self.health)}"
        if self.status == "paused":
            return f"Up {human_duration((now - self.started_ns) / 1e9)} (Paused)"
        if self.status == "restarting":
            return f"Restarting ({self.exit_code}) {human_duration((now - self.finished_ns) / 1e9)} ago"
        if self.status == "removing":
            return "Removal In Progress"
        if self.status == "dead":
            return "Dead"
        if self.status == "exited":
            return f"Exited ({self.exit_code}) {human_duration((now - self.finished_ns) / 1e9)} ago"
        return "Created"

    def list_ports(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.running:
            return out
        for key in sorted(self.ports):
            port, _, proto = key.partition("/")
            bindings = self.ports[key]
            if not bindings:
                out.append({"PrivatePort": int(port), "Type": proto})
                continue
            for b in bindings:
                out.append(
                    {
                        "IP": b["HostIp"],
                        "PrivatePort": int(port),
                        "PublicPort": int(b["HostPort"]),
                        "Type": proto,
                    }
                )
        return out

    def list_entry(self) -> dict[str, Any]:
        argv = ([self.path] if self.path else []) + list(self.args)
        return {
            "Id": self.id,
            "Names": [self.name],
            "Image": self.image_ref,
            "ImageID": self.image.id,
            "Command": command_string(argv),
            "Created": self.created_ns // 1_000_000_000,
            "Ports": self.list_ports(),
            "Labels": dict(self.labels),
            "State": self.status,
            "Status": self.status_text(),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode", "default")},
            "NetworkSettings": self._network_settings(full=False),
            "Mounts": copy.deepcopy(self.mounts),
        }
