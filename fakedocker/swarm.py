"""Swarm services and their tasks.

Each task walks the engine's states (new, pending, assigned, accepted,
preparing, starting, running) with a configurable delay per step, runs a
real fake container (so logs, exits and HTTP work as for plain containers)
and ends complete, failed (``task: non-zero exit (N)``) or rejected (an image
that is neither local nor pullable: ``No such image: <ref>``).
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockerspawner.engine.protocol import Conflict, EngineError, NotFound

from ._util import labels_match, normalize_filters, now_ns, rfc3339_nano, swarm_id

if TYPE_CHECKING:
    from .engine import FakeDocker

STATES = ("new", "pending", "assigned", "accepted", "preparing", "starting", "running")
MESSAGES = {
    "new": "created",
    "pending": "pending task scheduling",
    "assigned": "scheduler assigned task to node",
    "accepted": "accepted",
    "preparing": "preparing",
    "ready": "ready",
    "starting": "starting",
    "running": "started",
    "complete": "finished",
    "shutdown": "shutdown",
}
NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)


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
    created_ns: int = field(default_factory=now_ns)
    updated_ns: int = field(default_factory=now_ns)
    version: int = 1
    state: str = "new"
    desired: str = "running"
    err: str = ""
    container_id: str = ""
    pid: int = 0
    exit_code: int = 0
    ports: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    runner: asyncio.Task | None = None

    def set_state(self, state: str, err: str = "") -> None:
        self.state = state
        self.err = err
        self.updated_ns = now_ns()
        self.version += 1

    def render(self, node_id: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        status: dict[str, Any] = {
            "Timestamp": rfc3339_nano(self.updated_ns),
            "State": self.state,
            "Message": MESSAGES.get(self.state, "preparing" if self.state == "rejected" else "started"),
        }
        if self.err:
            status["Err"] = self.err
        if self.state not in ("new", "pending", "assigned"):
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
            "Labels": dict(labels or {}),
            "Spec": copy.deepcopy(self.spec),
            "ServiceID": self.service_id,
            "Slot": self.slot,
            "Status": status,
            "DesiredState": self.desired,
        }
        if self.state not in ("new", "pending"):
            out["NodeID"] = node_id
        if self.attachments:
            out["NetworksAttachments"] = copy.deepcopy(self.attachments)
        return out


@dataclass
class Service:
    id: str
    spec: dict[str, Any]
    version: int
    created_ns: int = field(default_factory=now_ns)
    updated_ns: int = field(default_factory=now_ns)
    previous: dict[str, Any] | None = None
    task_ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.get("Name", "")

    def render(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339_nano(self.created_ns),
            "UpdatedAt": rfc3339_nano(self.updated_ns),
            "Spec": copy.deepcopy(self.spec),
            "Endpoint": endpoint,
        }
        if self.previous is not None:
            out["PreviousSpec"] = copy.deepcopy(self.previous)
        return out


def fill_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The defaults swarm adds to a ServiceSpec."""
    s = copy.deepcopy(spec)
    tt = s.setdefault("TaskTemplate", {})
    cs = tt.setdefault("ContainerSpec", {})
    cs.setdefault("Isolation", "default")
    tt.setdefault("ForceUpdate", 0)
    tt.setdefault("Runtime", "container")
    rp = tt.get("RestartPolicy")
    if rp is None:
        tt["RestartPolicy"] = {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0}
    else:
        rp.setdefault("Condition", "any")
        rp.setdefault("Delay", 0)
        rp.setdefault("MaxAttempts", 0)
        rp.setdefault("Window", 0)
    if "Mode" not in s or not s["Mode"]:
        s["Mode"] = {"Replicated": {"Replicas": 1}}
    es = s.get("EndpointSpec")
    if es is not None and "Mode" not in es:
        es["Mode"] = "vip"
    return s


def _replicas(spec: dict[str, Any]) -> int:
    mode = spec.get("Mode") or {}
    if "Global" in mode:
        return 1
    rep = (mode.get("Replicated") or {}).get("Replicas")
    return 1 if rep is None else int(rep)


class Swarm:
    """``fake.swarm``: services and tasks, plus knobs for tests."""

    def __init__(self, engine: FakeDocker, active: bool, step_delay: float) -> None:
        self.engine = engine
        self.active = active
        self.step_delay = step_delay
        self.node_id = swarm_id()
        self.cluster_id = swarm_id()
        self.created_ns = now_ns()
        self.services: dict[str, Service] = {}
        self.tasks: dict[str, Task] = {}
        self.failures: list[TaskFailure] = []
        self._version = 10

    def fail_next_task(
        self,
        service_pattern: str = "*",
        *,
        state: str = "rejected",
        err: str = "no suitable node (insufficient resources on 1 node)",
        at: str | None = None,
        times: int | None = 1,
    ) -> TaskFailure:
        """Make the next task of a service named like ``service_pattern`` end
        ``rejected`` or ``failed`` with ``err`` (at ``at``: the state it
        reaches first; default ``pending`` for rejected, ``running`` for failed)."""
        if state not in ("rejected", "failed"):
            raise ValueError("state must be 'rejected' or 'failed'")
        failure = TaskFailure(
            service_pattern, state, err, at or ("pending" if state == "rejected" else "running"), times
        )
        self.failures.append(failure)
        return failure

    def _take_failure(self, name: str) -> TaskFailure | None:
        for f in self.failures:
            if (f.remaining is None or f.remaining > 0) and fnmatch.fnmatchcase(name, f.pattern):
                if f.remaining is not None:
                    f.remaining -= 1
                return f
        return None

    # -- info ------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        if not self.active:
            return {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            }
        return {
            "NodeID": self.node_id,
            "NodeAddr": "127.0.0.1",
            "LocalNodeState": "active",
            "ControlAvailable": True,
            "Error": "",
            "RemoteManagers": [{"NodeID": self.node_id, "Addr": "127.0.0.1:2377"}],
            "Nodes": 1,
            "Managers": 1,
            "Cluster": {
                "ID": self.cluster_id,
                "Version": {"Index": 10},
                "CreatedAt": rfc3339_nano(self.created_ns),
                "UpdatedAt": rfc3339_nano(self.created_ns),
                "Spec": {"Name": "default", "Labels": {}, "Orchestration": {"TaskHistoryRetentionLimit": 5}},
                "SubnetSize": 24,
                "DataPathPort": 4789,
            },
        }

    def _require_active(self) -> None:
        if not self.active:
            raise EngineError(NOT_MANAGER, 503)

    # -- services ------------------------------------------------------------------------
    def find(self, ref: str) -> Service | None:
        for svc in self.services.values():
            if svc.id == ref or svc.name == ref:
                return svc
        matches = [s for s in self.services.values() if ref and s.id.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def get(self, ref: str) -> Service:
        self._require_active()
        svc = self.find(ref)
        if svc is None:
            raise NotFound(f"service {ref} not found")
        return svc

    def _endpoint(self, svc: Service) -> dict[str, Any]:
        es = svc.spec.get("EndpointSpec")
        if not es:
            return {"Spec": {}}
        out: dict[str, Any] = {"Spec": copy.deepcopy(es)}
        ports = [dict(p, PublishMode=p.get("PublishMode", "ingress")) for p in es.get("Ports") or []]
        if ports:
            out["Ports"] = ports
        return out

    def render_service(self, svc: Service) -> dict[str, Any]:
        return svc.render(self._endpoint(svc))

    def create(self, spec: dict[str, Any]) -> Service:
        self._require_active()
        name = spec.get("Name") or ""
        if not name:
            name = f"svc_{swarm_id()[:8]}"
            spec = dict(spec, Name=name)
        if any(svc.name == name for svc in self.services.values()):
            raise Conflict(
                f"rpc error: code = AlreadyExists desc = name conflicts with an existing object: "
                f"service {name} already exists"
            )
        if not ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image"):
            raise EngineError(
                "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided",
                400,
            )
        self._check_networks(spec)
        svc = Service(id=swarm_id(), spec=fill_spec(spec), version=self._next_version())
        self.services[svc.id] = svc
        self.engine.bus.publish("service", "create", svc.id, {"name": svc.name}, scope="swarm")
        for slot in range(1, _replicas(svc.spec) + 1):
            self._new_task(svc, slot)
        return svc

    def _check_networks(self, spec: dict[str, Any]) -> None:
        tt = spec.get("TaskTemplate") or {}
        for net in (tt.get("Networks") or []) + (spec.get("Networks") or []):
            target = net.get("Target") if isinstance(net, dict) else net
            if target and self.engine.networks.find(target) is None:
                raise NotFound(f"network {target} not found")

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def update(self, ref: str, version: int, spec: dict[str, Any]) -> None:
        svc = self.get(ref)
        if int(version) != svc.version:
            raise EngineError("rpc error: code = Unknown desc = update out of sequence", 500)
        self._check_networks(spec)
        new = fill_spec(dict(spec, Name=spec.get("Name") or svc.name))
        old = svc.spec
        svc.previous, svc.spec = old, new
        svc.version = self._next_version()
        svc.updated_ns = now_ns()
        self.engine.bus.publish("service", "update", svc.id, {"name": svc.name}, scope="swarm")
        live = [self.tasks[t] for t in svc.task_ids if self.tasks[t].desired == "running"]
        if new.get("TaskTemplate") != old.get("TaskTemplate"):
            for task in live:
                self._shutdown(task, svc)
            live = []
        want = _replicas(new)
        slots = sorted(t.slot for t in live)
        for task in live:
            if task.slot > want:
                self._shutdown(task, svc)
        for slot in range(1, want + 1):
            if slot not in slots:
                self._new_task(svc, slot)

    def remove(self, ref: str) -> None:
        svc = self.get(ref)
        del self.services[svc.id]
        for tid in svc.task_ids:
            task = self.tasks.pop(tid, None)
            if task is not None:
                self._shutdown(task, svc, remove_container=True)
        self.engine.bus.publish("service", "remove", svc.id, {"name": svc.name}, scope="swarm")

    def list_services(self, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
        self._require_active()
        wanted = normalize_filters(filters)
        out = []
        for svc in self.services.values():
            ok = True
            for key, values in wanted.items():
                if key == "id":
                    ok = any(svc.id.startswith(v) for v in values)
                elif key == "name":
                    ok = any(svc.name.startswith(v) for v in values)
                elif key == "label":
                    ok = labels_match(svc.spec.get("Labels"), values)
                elif key == "mode":
                    mode = "global" if "Global" in (svc.spec.get("Mode") or {}) else "replicated"
                    ok = mode in values
                if not ok:
                    break
            if ok:
                out.append(self.render_service(svc))
        return out

    def list_tasks(self, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
        self._require_active()
        wanted = normalize_filters(filters)
        service_ids: set[str] | None = None
        if "service" in wanted:
            service_ids = set()
            for ref in wanted["service"]:
                svc = self.find(ref)
                if svc is None:
                    raise NotFound(f"service {ref} not found")
                service_ids.add(svc.id)
        out = []
        for task in self.tasks.values():
            if service_ids is not None and task.service_id not in service_ids:
                continue
            svc = self.services.get(task.service_id)
            name = f"{svc.name if svc else ''}.{task.slot}"
            ok = True
            for key, values in wanted.items():
                if key == "desired-state":
                    ok = task.desired in values
                elif key == "id":
                    ok = any(task.id.startswith(v) for v in values)
                elif key == "name":
                    ok = any(name.startswith(v) or f"{name}.{task.id}".startswith(v) for v in values)
                elif key == "node":
                    ok = self.node_id in values or "self" in values
                elif key == "label":
                    ok = labels_match({}, values)
                if not ok:
                    break
            if ok:
                out.append(task.render(self.node_id))
        return out

    # -- tasks ---------------------------------------------------------------------------
    def _new_task(self, svc: Service, slot: int) -> Task:
        task = Task(id=swarm_id(), service_id=svc.id, slot=slot, spec=copy.deepcopy(svc.spec["TaskTemplate"]))
        self.tasks[task.id] = task
        svc.task_ids.append(task.id)
        task.runner = self.engine._spawn(self._run_task(svc, task))
        return task

    def _shutdown(self, task: Task, svc: Service, remove_container: bool = False) -> None:
        task.desired = "shutdown"
        if task.runner is not None and not task.runner.done():
            task.runner.cancel()
        if task.state in STATES or task.state == "ready":
            task.set_state("shutdown")
        if task.container_id:
            grace = (task.spec.get("ContainerSpec") or {}).get("StopGracePeriod")
            timeout = 10 if grace is None else grace / 1e9
            self.engine._spawn(self.engine._stop_and_remove(task.container_id, timeout, remove_container))

    async def _run_task(self, svc: Service, task: Task) -> None:
        failure = self._take_failure(svc.name)
        cs = task.spec.get("ContainerSpec") or {}
        for state in STATES[1:]:
            if failure is not None and failure.at == state and failure.state == "rejected":
                task.set_state("rejected", failure.err)
                task.desired = "shutdown"
                return
            if state == "preparing":
                task.set_state(state)
                await asyncio.sleep(self.step_delay)
                err = await self.engine._swarm_prepare_image(cs.get("Image", ""))
                if err:
                    task.set_state("rejected", err)
                    task.desired = "shutdown"
                    return
                continue
            if state == "starting":
                task.set_state(state)
                try:
                    cid = await self.engine._swarm_start_container(svc, task)
                except EngineError as e:
                    task.set_state("rejected", e.explanation)
                    task.desired = "shutdown"
                    return
                task.container_id = cid
                await asyncio.sleep(self.step_delay)
                continue
            task.set_state(state)
            if state != "running":
                await asyncio.sleep(self.step_delay)
        container = self.engine.containers.get(task.container_id)
        if container is not None:
            task.pid = container.pid
        if failure is not None and failure.state == "failed":
            await asyncio.sleep(self.step_delay)
            await self.engine._swarm_fail_container(task.container_id)
            task.set_state("failed", failure.err)
            task.exit_code = 1
            task.pid = 0
            await self._maybe_restart(svc, task, failed=True)
            return
        code = await self.engine._wait_exit(task.container_id)
        task.pid = 0
        task.exit_code = code
        if task.desired != "running":
            task.set_state("shutdown")
            return
        if code == 0:
            task.set_state("complete")
        else:
            task.set_state("failed", f"task: non-zero exit ({code})")
        await self._maybe_restart(svc, task, failed=code != 0)

    async def _maybe_restart(self, svc: Service, task: Task, failed: bool) -> None:
        policy = task.spec.get("RestartPolicy") or {}
        condition = policy.get("Condition", "any")
        if condition == "none" or (condition == "on-failure" and not failed):
            return
        attempts = policy.get("MaxAttempts") or 0
        slot_tasks = [
            self.tasks[t] for t in svc.task_ids if t in self.tasks and self.tasks[t].slot == task.slot
        ]
        if attempts and len(slot_tasks) > attempts:
            return
        task.desired = "shutdown"
        await asyncio.sleep((policy.get("Delay") or 0) / 1e9)
        if svc.id in self.services:
            self._new_task(svc, task.slot)
