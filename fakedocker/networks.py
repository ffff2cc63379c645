"""Networks with per-subnet address allocation, like the engine's bridge IPAM.

Addresses come from loopback: each ``FakeDocker`` takes a random /16 of
127.0.0.0/8 (Linux answers on every loopback address without setup) and gives
each network a /24 of it, in creation order (the default bridge first). A
container's address is therefore reachable from the host: a program that
listens on a port in the container (the simulated ``jupyterhub-singleuser``,
``busybox httpd``) answers on ``<container IP>:<port>`` while the container is
attached, so ``use_internal_ip`` and user networks work. The gateway (``.1``)
is the host itself, as on a bridge.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import re
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dockerspawner.engine.protocol import Conflict, EngineError, NotFound

from ._util import labels_match, new_id, now_ns, rfc3339_nano
from .http import Handler, PortProxy

PREDEFINED = ("bridge", "host", "none")

_DEFAULT_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": "docker0",
    "com.docker.network.driver.mtu": "1500",
}


@dataclass
class Network:
    name: str
    id: str
    driver: str
    subnet: ipaddress.IPv4Network | None
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    options: dict[str, str] = field(default_factory=dict)
    created_ns: int = field(default_factory=now_ns)
    scope: str = "local"
    predefined: bool = False
    #: container id -> endpoint (only while the container runs)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    _used: set[int] = field(default_factory=set)
    #: container id -> {port: listener on the container's address}
    _servers: dict[str, dict[int, PortProxy]] = field(default_factory=dict)

    def serve(
        self,
        cid: str,
        port: int,
        lookup: Callable[[], Handler | None],
        spawn: Callable[[Coroutine[Any, Any, None]], Any],
    ) -> None:
        """Answer on the container's address at ``port`` with what its
        program listens with. An address:port another process holds stays
        silent (as a container would be unreachable), it fails nothing."""
        ip = (self.endpoints.get(cid) or {}).get("IPAddress")
        servers = self._servers.setdefault(cid, {})
        if not ip or port in servers:
            return
        sock = listen_on(ip, port)
        if sock is not None:
            servers[port] = proxy = PortProxy(sock, lookup)
            spawn(proxy.start())

    def unserve(self, cid: str) -> None:
        for proxy in self._servers.pop(cid, {}).values():
            proxy.close()

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1) if self.subnet else ""

    def allocate_ip(self) -> tuple[str, int]:
        """The lowest free host address after the gateway."""
        assert self.subnet is not None
        start = int(self.subnet.network_address) + 2
        end = int(self.subnet.broadcast_address)
        for value in range(start, end):
            if value not in self._used:
                self._used.add(value)
                return str(ipaddress.IPv4Address(value)), self.subnet.prefixlen
        raise EngineError(
            f"no available IPv4 addresses on this network's address pools: {self.name} ({self.id})", 500
        )

    def release_ip(self, ip: str) -> None:
        if ip:
            self._used.discard(int(ipaddress.IPv4Address(ip)))

    def inspect(self, container_names: dict[str, str]) -> dict[str, Any]:
        ipam_config: list[dict[str, str]] = []
        if self.subnet is not None:
            entry = {"Subnet": str(self.subnet)}
            if not (self.predefined and self.name == "bridge"):
                entry["Gateway"] = self.gateway
            ipam_config.append(entry)
        containers = {}
        for cid, ep in self.endpoints.items():
            containers[cid] = {
                "Name": container_names.get(cid, ""),
                "EndpointID": ep["EndpointID"],
                "MacAddress": ep["MacAddress"],
                "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}" if ep["IPAddress"] else "",
                "IPv6Address": "",
            }
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": rfc3339_nano(self.created_ns),
            "Scope": self.scope,
            "Driver": self.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam_config},
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": dict(self.options),
            "Labels": dict(self.labels),
        }


def listen_on(ip: str, port: int) -> socket.socket | None:
    """A listening TCP socket on ``ip:port``, or None when the address is
    taken (by another fake or another process) or not local."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            return None
        raise
    return sock


def loopback_block() -> tuple[int, int]:
    """A random 127.A.B.0 origin for one fake's subnets: two fakes on one
    machine (parallel test runs) rarely share an address."""
    return random.randint(16, 254), random.randint(0, 255)


def mac_for(ip: str) -> str:
    parts = [int(p) for p in ip.split(".")]
    return "02:42:" + ":".join(f"{p:02x}" for p in parts)


class Networks:
    def __init__(self, block: tuple[int, int] | None = None) -> None:
        self.by_id: dict[str, Network] = {}
        self._block = block or loopback_block()
        self._next_subnet = 0
        for name, driver, subnet, opts in (
            ("bridge", "bridge", self._subnet(), _DEFAULT_BRIDGE_OPTIONS),
            ("host", "host", None, {}),
            ("none", "null", None, {}),
        ):
            net = Network(
                name=name,
                id=new_id(),
                driver=driver,
                subnet=subnet,
                options=dict(opts),
                predefined=True,
            )
            self.by_id[net.id] = net

    def _subnet(self) -> ipaddress.IPv4Network:
        """The next free /24 of this fake's loopback block (256 in all; then
        the engine's "no available pool" error)."""
        a, b = self._block
        taken = {n.subnet for n in self.by_id.values() if n.subnet is not None}
        while self._next_subnet < 256:
            i = self._next_subnet
            self._next_subnet += 1
            candidate = ipaddress.IPv4Network(f"127.{a}.{(b + i) % 256}.0/24")
            if candidate not in taken:
                return candidate
        raise EngineError(
            "could not find an available, non-overlapping IPv4 address pool among the defaults "
            "to assign to the network",
            500,
        )

    def create(
        self,
        name: str,
        *,
        driver: str | None,
        labels: dict[str, str] | None,
        internal: bool,
        attachable: bool,
        swarm_active: bool,
    ) -> Network:
        if any(n.name == name for n in self.by_id.values()):
            raise Conflict(f"network with name {name} already exists")
        driver = driver or "bridge"
        if driver == "overlay" and not swarm_active:
            raise EngineError(
                'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                "to connect this node to swarm and try again.",
                503,
            )
        if driver in ("host", "null"):
            raise EngineError(f'only one instance of "{name}" network is allowed', 403)
        net = Network(
            name=name,
            id=new_id() if driver != "overlay" else new_id()[:25],
            driver=driver,
            subnet=self._subnet(),
            labels=dict(labels or {}),
            internal=internal,
            attachable=attachable,
            scope="swarm" if driver == "overlay" else "local",
        )
        self.by_id[net.id] = net
        return net

    def find(self, ref: str) -> Network | None:
        for net in self.by_id.values():
            if net.id == ref or net.name == ref:
                return net
        matches = [n for n in self.by_id.values() if n.id.startswith(ref)] if ref else []
        return matches[0] if len(matches) == 1 else None

    def get(self, ref: str) -> Network:
        net = self.find(ref)
        if net is None:
            raise NotFound(f"network {ref} not found")
        return net

    def matches(self, net: Network, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if key == "name":
                if not any(re.search(v, net.name) for v in values):
                    return False
            elif key == "id":
                if not any(net.id.startswith(v) for v in values):
                    return False
            elif key == "label":
                if not labels_match(net.labels, values):
                    return False
            elif key == "driver":
                if net.driver not in values:
                    return False
            elif key == "type":
                kind = "builtin" if net.predefined else "custom"
                if kind not in values:
                    return False
            elif key == "scope":
                if net.scope not in values:
                    return False
        return True
