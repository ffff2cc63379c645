"""Swarm nodes and the scheduler's choice among them.

A node has a role, labels, resources and an availability, and is ready or
down. Placing a task runs swarm's filter pipeline over the nodes (ready and
active, enough resources, placement constraints, free host-mode ports); when
no node passes, the task stays pending with swarm's own explanation, e.g.
``no suitable node (scheduling constraints not satisfied on 1 node)``: each
node is counted once, at the first filter it fails, and the reasons are
listed most frequent first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockerspawner.engine.protocol import EngineError

from ._util import now_ns, rfc3339_nano, swarm_id

ENGINE_VERSION = "20.10.24+dfsg1"
ROLES = ("manager", "worker")
AVAILABILITIES = ("active", "pause", "drain")

#: The scheduler's filters in swarm's pipeline order, with how each explains itself.
FILTERS = (
    ("ready", "not available for new tasks"),
    ("resources", "insufficient resources on"),
    ("constraints", "scheduling constraints not satisfied on"),
    ("host-ports", "host-mode port already in use on"),
)


@dataclass
class Node:
    id: str
    hostname: str
    role: str = "manager"
    labels: dict[str, str] = field(default_factory=dict)
    engine_labels: dict[str, str] = field(default_factory=dict)
    nano_cpus: int = 2_000_000_000
    memory_bytes: int = 8 << 30
    availability: str = "active"
    state: str = "ready"
    message: str = ""
    addr: str = "127.0.0.1"
    leader: bool = False
    os: str = "linux"
    arch: str = "x86_64"
    created_ns: int = field(default_factory=now_ns)
    updated_ns: int = field(default_factory=now_ns)
    version: int = 9

    def touch(self) -> None:
        self.updated_ns = now_ns()
        self.version += 1

    def render(self) -> dict[str, Any]:
        status: dict[str, Any] = {"State": self.state, "Addr": self.addr}
        if self.message:
            status["Message"] = self.message
        out: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339_nano(self.created_ns),
            "UpdatedAt": rfc3339_nano(self.updated_ns),
            "Spec": {"Labels": dict(self.labels), "Role": self.role, "Availability": self.availability},
            "Description": {
                "Hostname": self.hostname,
                "Platform": {"Architecture": self.arch, "OS": self.os},
                "Resources": {"NanoCPUs": self.nano_cpus, "MemoryBytes": self.memory_bytes},
                "Engine": {
                    "EngineVersion": ENGINE_VERSION,
                    "Labels": dict(self.engine_labels) or None,
                    "Plugins": [
                        {"Type": "Log", "Name": "json-file"},
                        {"Type": "Network", "Name": "bridge"},
                        {"Type": "Network", "Name": "overlay"},
                        {"Type": "Volume", "Name": "local"},
                    ],
                },
                "TLSInfo": {"TrustRoot": "", "CertIssuerSubject": "", "CertIssuerPublicKey": ""},
            },
            "Status": status,
        }
        if not self.engine_labels:
            del out["Description"]["Engine"]["Labels"]
        if self.role == "manager":
            out["ManagerStatus"] = {
                "Leader": self.leader,
                "Reachability": "reachable" if self.state == "ready" else "unreachable",
                "Addr": f"{self.addr}:2377",
            }
        return out


def new_node(hostname: str, **kw: Any) -> Node:
    role = kw.get("role", "worker")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if kw.get("availability", "active") not in AVAILABILITIES:
        raise ValueError(f"availability must be one of {AVAILABILITIES}")
    return Node(id=swarm_id(), hostname=hostname, **kw)


# -- constraints -----------------------------------------------------------------------------
_CONSTRAINT = re.compile(r"^\s*([\w.\-]+)\s*(==|!=)\s*(.*?)\s*$")
_KEY = re.compile(r"^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[^=!]+)|engine\.labels\.[^=!]+)$")


@dataclass(frozen=True)
class Constraint:
    key: str
    equal: bool
    value: str

    def matches(self, node: Node) -> bool:
        """Swarm compares values without regard to case; a missing label matches only ``!=``."""
        key = self.key.lower()
        have: str | None
        if key == "node.id":
            have = node.id
        elif key == "node.hostname":
            have = node.hostname
        elif key == "node.role":
            have = node.role
        elif key == "node.platform.os":
            have = node.os
        elif key == "node.platform.arch":
            have = node.arch
        elif key.startswith("node.labels."):
            have = node.labels.get(self.key[len("node.labels.") :])
        elif key.startswith("engine.labels."):
            have = node.engine_labels.get(self.key[len("engine.labels.") :])
        else:
            have = None
        same = have is not None and have.lower() == self.value.lower()
        return same if self.equal else not same


def parse_constraints(exprs: Iterable[str]) -> list[Constraint]:
    """Constraints as the manager parses them at create; an unknown key is
    accepted (no node will match it), a missing operator is refused."""
    out = []
    for expr in exprs:
        m = _CONSTRAINT.match(expr)
        if m is None:
            raise EngineError("rpc error: code = Unknown desc = constraint expected one operator from ==, !=", 500)
        out.append(Constraint(m.group(1), m.group(2) == "==", m.group(3)))
    return out


# -- scheduling ------------------------------------------------------------------------------
@dataclass
class Demand:
    """What one task asks of a node."""

    constraints: list[Constraint]
    nano_cpus: int = 0
    memory_bytes: int = 0
    host_ports: frozenset[tuple[int, str]] = frozenset()


@dataclass
class Usage:
    """What the tasks already placed on a node take."""

    nano_cpus: int = 0
    memory_bytes: int = 0
    host_ports: set[tuple[int, str]] = field(default_factory=set)
    tasks: int = 0


def demand_of(task_spec: Mapping[str, Any], endpoint_spec: Mapping[str, Any] | None) -> Demand:
    reservations = (task_spec.get("Resources") or {}).get("Reservations") or {}
    ports = frozenset(
        (int(p["PublishedPort"]), p.get("Protocol") or "tcp")
        for p in (endpoint_spec or {}).get("Ports") or []
        if p.get("PublishMode") == "host" and p.get("PublishedPort")
    )
    return Demand(
        constraints=parse_constraints((task_spec.get("Placement") or {}).get("Constraints") or []),
        nano_cpus=int(reservations.get("NanoCPUs") or 0),
        memory_bytes=int(reservations.get("MemoryBytes") or 0),
        host_ports=ports,
    )


def _first_failure(node: Node, demand: Demand, usage: Usage) -> str | None:
    if node.state != "ready" or node.availability != "active":
        return "ready"
    if (
        usage.nano_cpus + demand.nano_cpus > node.nano_cpus
        or usage.memory_bytes + demand.memory_bytes > node.memory_bytes
    ):
        return "resources"
    if not all(c.matches(node) for c in demand.constraints):
        return "constraints"
    if demand.host_ports & usage.host_ports:
        return "host-ports"
    return None


def schedule(nodes: list[Node], demand: Demand, usage: Mapping[str, Usage]) -> tuple[Node | None, str]:
    """The node a task goes to (the one with the fewest tasks that fits), or None and why not."""
    fits: list[Node] = []
    failures = {name: 0 for name, _ in FILTERS}
    for node in nodes:
        failed = _first_failure(node, demand, usage.get(node.id) or Usage())
        if failed is None:
            fits.append(node)
        else:
            failures[failed] += 1
    if fits:
        return min(fits, key=lambda n: (usage.get(n.id) or Usage()).tasks), ""
    order = [name for name, _ in FILTERS]
    reasons = []
    for name in sorted((n for n in order if failures[n]), key=lambda n: (-failures[n], order.index(n))):
        count = failures[name]
        text = dict(FILTERS)[name]
        plural = "node" if count == 1 else "nodes"
        reasons.append(f"{count} {plural} {text}" if name == "ready" else f"{text} {count} {plural}")
    return None, f"no suitable node ({'; '.join(reasons)})"
