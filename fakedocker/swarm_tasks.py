"""Swarm tasks: their states, messages and inspect shape, as the engine reports them.

A task's ``Status.Message`` names the last step it reached (``pending task
scheduling``, ``scheduler assigned task to node``, ``prepared``, ``started``,
``finished``...); a task that ends ``failed``, ``rejected`` or ``orphaned``
keeps the message of the step it was in and says why in ``Status.Err``.
``DesiredState`` is what the orchestrator wants: ``running``, ``ready`` for a
restarted task that waits out its restart delay, ``shutdown`` once the task
has ended or was replaced, ``remove`` while its service is being removed.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from ._util import now_ns, rfc3339_nano
from .swarm_nodes import Demand

#: Every state of the engine's ``TaskState``, in its order.
ORDER = (
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
)
#: The steps a task walks before it runs (``allocated`` is in the API's enum,
#: but 20.10 moves a task from ``new`` to ``pending`` directly).
WALK = ("pending", "assigned", "accepted", "preparing", "ready", "starting", "running")
ENDED = frozenset({"complete", "shutdown", "failed", "rejected", "remove", "orphaned"})
MESSAGES = {
    "new": "created",
    "allocated": "allocated",
    "pending": "pending task scheduling",
    "assigned": "scheduler assigned task to node",
    "accepted": "accepted",
    "preparing": "preparing",
    "ready": "prepared",
    "starting": "starting",
    "running": "started",
    "complete": "finished",
    "shutdown": "shutdown",
}


@dataclass
class TaskFailure:
    """An injected task outcome (``fake.swarm.fail_next_task``)."""

    pattern: str
    state: str  # "rejected" | "failed"
    err: str
    at: str  # the state in which it happens
    remaining: int | None = 1


@dataclass
class Task:
    id: str
    service_id: str
    slot: int
    spec: dict[str, Any]
    demand: Demand
    desired: str = "running"
    created_ns: int = field(default_factory=now_ns)
    updated_ns: int = field(default_factory=now_ns)
    version: int = 1
    state: str = "new"
    message: str = MESSAGES["new"]
    err: str = ""
    node_id: str = ""
    container_id: str = ""
    pid: int = 0
    exit_code: int = 0
    #: its node went down while it ran: the manager's view of it is stale
    stale: bool = False
    ports: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    runner: asyncio.Task | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def holds_node(self) -> bool:
        """Whether it takes resources and ports on its node."""
        return bool(self.node_id) and not self.ended and self.desired in ("running", "ready")

    def set_state(self, state: str, err: str = "") -> None:
        self.state = state
        self.err = err
        if state in MESSAGES:
            self.message = MESSAGES[state]
        self.updated_ns = now_ns()
        self.version += 1

    def set_desired(self, desired: str) -> None:
        if desired != self.desired:
            self.desired = desired
            self.updated_ns = now_ns()
            self.version += 1

    def render(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "Timestamp": rfc3339_nano(self.updated_ns),
            "State": self.state,
            "Message": self.message,
        }
        if self.err:
            status["Err"] = self.err
        if self.container_id:
            status["ContainerStatus"] = {
                "ContainerID": self.container_id,
                "PID": self.pid,
                "ExitCode": self.exit_code,
            }
        status["PortStatus"] = {"Ports": copy.deepcopy(self.ports)} if self.ports else {}
        out: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339_nano(self.created_ns),
            "UpdatedAt": rfc3339_nano(self.updated_ns),
            "Labels": {},
            "Spec": copy.deepcopy(self.spec),
            "ServiceID": self.service_id,
            "Slot": self.slot,
            "Status": status,
            "DesiredState": self.desired,
        }
        if self.node_id:
            out["NodeID"] = self.node_id
        if self.attachments:
            out["NetworksAttachments"] = copy.deepcopy(self.attachments)
        return out
