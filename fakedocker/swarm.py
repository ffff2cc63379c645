"""Swarm services, their tasks and the orchestrator that keeps them running.

A service's tasks walk the engine's states (``swarm_tasks``) with a
configurable delay per step, are placed on a node by swarm's filters
(``swarm_nodes``; a task no node takes stays ``pending`` with the reason), run
a real fake container (so logs, exits and HTTP work as for plain containers)
and end ``complete``, ``failed`` (``task: non-zero exit (N)``) or ``rejected``
(an image that is neither local nor pullable: ``No such image: <ref>``). As on
the engine, an ended task's desired state becomes ``shutdown`` and the
service's restart policy decides whether a new task replaces it; a node that
goes down leaves its tasks stale (still ``running``, desired ``shutdown``)
and gets them replaced; an update that changes the task template replaces the
tasks and reports ``UpdateStatus``.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockerspawner.engine.protocol import Conflict, EngineError, NotFound, classify_500

from ._util import labels_match, normalize_filters, now_ns, rfc3339_nano, swarm_id
from .swarm_nodes import AVAILABILITIES, Node, Usage, demand_of, new_node, schedule
from .swarm_tasks import ENDED, ORDER, WALK, Task, TaskFailure

if TYPE_CHECKING:
    from .engine import FakeDocker

__all__ = ["Service", "Swarm", "Task", "TaskFailure", "ORDER"]

NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
#: swarm's defaults when a spec does not say: restart delay, update monitor, history kept per slot
DEFAULT_RESTART_DELAY_NS = 5_000_000_000
DEFAULT_MONITOR_NS = 5_000_000_000
TASK_HISTORY = 5
#: seconds an ended task of a removed service stays listed (desired ``remove``)
REMOVE_LINGER = 0.25


@dataclass
class Service:
    id: str
    spec: dict[str, Any]
    version: int
    created_ns: int = field(default_factory=now_ns)
    updated_ns: int = field(default_factory=now_ns)
    previous: dict[str, Any] | None = None
    task_ids: list[str] = field(default_factory=list)
    #: network id -> "addr/prefix" of the service's virtual IP on it
    vips: dict[str, str] = field(default_factory=dict)
    update_status: dict[str, Any] | None = None
    updater: asyncio.Task | None = None
    #: "8888/tcp" -> the published port of an ingress-mode port (the fake's
    #: stand-in for the routing mesh: the host port of its newest task)
    ingress: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.get("Name", "")

    def endpoint(self) -> dict[str, Any]:
        """``Endpoint``: empty unless the service publishes ports or has VIPs."""
        es = self.spec.get("EndpointSpec") or {}
        ports = es.get("Ports") or []
        if not ports and not self.vips:
            return {"Spec": {}}
        out: dict[str, Any] = {"Spec": copy.deepcopy(es) if ports else {"Mode": es.get("Mode", "vip")}}
        if ports:
            out["Ports"] = []
            for p in ports:
                port = dict(p, Protocol=p.get("Protocol") or "tcp", PublishMode=p.get("PublishMode") or "ingress")
                published = self.ingress.get(f"{port.get('TargetPort')}/{port['Protocol']}")
                if port["PublishMode"] == "ingress" and published and not port.get("PublishedPort"):
                    port["PublishedPort"] = published
                out["Ports"].append(port)
        if self.vips:
            out["VirtualIPs"] = [{"NetworkID": nid, "Addr": addr} for nid, addr in self.vips.items()]
        return out

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339_nano(self.created_ns),
            "UpdatedAt": rfc3339_nano(self.updated_ns),
            "Spec": copy.deepcopy(self.spec),
            "Endpoint": self.endpoint(),
        }
        if self.previous is not None:
            out["PreviousSpec"] = copy.deepcopy(self.previous)
        if self.update_status is not None:
            out["UpdateStatus"] = dict(self.update_status)
        return out


def fill_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The defaults swarm writes into a ServiceSpec (a restart policy it adds
    only when one was given; otherwise its defaults apply unseen)."""
    s = copy.deepcopy(spec)
    tt = s.setdefault("TaskTemplate", {})
    cs = tt.setdefault("ContainerSpec", {})
    cs.setdefault("Isolation", "default")
    tt.setdefault("ForceUpdate", 0)
    tt.setdefault("Runtime", "container")
    if tt.get("RestartPolicy") is not None:
        tt["RestartPolicy"].setdefault("MaxAttempts", 0)
    if "Mode" not in s or not s["Mode"]:
        s["Mode"] = {"Replicated": {"Replicas": 1}}
    es = s.get("EndpointSpec")
    if es is not None and "Mode" not in es:
        es["Mode"] = "vip"
    for p in (es or {}).get("Ports") or []:
        p.setdefault("Protocol", "tcp")
    return s


def task_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A task's ``Spec``: the template as the task sees it (no ``Runtime``)."""
    tt = copy.deepcopy(spec.get("TaskTemplate") or {})
    tt.pop("Runtime", None)
    return tt


Check = Callable[[Any, list[str]], bool]


def _matching(items: Iterable[Any], filters: dict[str, Any] | None, checks: dict[str, Check]) -> list[Any]:
    """The items that pass every filter the engine knows for them."""
    wanted = normalize_filters(filters)
    return [item for item in items if all(checks[k](item, vs) for k, vs in wanted.items() if k in checks)]


def _replicas(spec: dict[str, Any]) -> int:
    mode = spec.get("Mode") or {}
    if "Global" in mode or "global" in mode:
        return 1
    rep = (mode.get("Replicated") or mode.get("replicated") or {}).get("Replicas")
    return 1 if rep is None else int(rep)


def _networks(spec: dict[str, Any]) -> list[str]:
    tt = spec.get("TaskTemplate") or {}
    out = []
    for net in (tt.get("Networks") or []) + (spec.get("Networks") or []):
        target = net.get("Target") if isinstance(net, dict) else net
        if target:
            out.append(target)
    return out


class Swarm:
    """``fake.swarm``: nodes, services and tasks, plus knobs for tests."""

    def __init__(self, engine: FakeDocker, active: bool, step_delay: float) -> None:
        self.engine = engine
        self.active = active
        self.step_delay = step_delay
        self.cluster_id = swarm_id()
        self.created_ns = now_ns()
        self.manager = new_node("vm", role="manager", leader=True)
        self.nodes: dict[str, Node] = {self.manager.id: self.manager}
        self.services: dict[str, Service] = {}
        self.tasks: dict[str, Task] = {}
        self.failures: list[TaskFailure] = []
        self._version = 10
        self._wake: asyncio.Event | None = None

    @property
    def node_id(self) -> str:
        """The id of the node the engine itself is (the first manager)."""
        return self.manager.id

    # -- knobs -------------------------------------------------------------------------------
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

    def add_node(
        self,
        hostname: str | None = None,
        *,
        role: str = "worker",
        labels: dict[str, str] | None = None,
        engine_labels: dict[str, str] | None = None,
        nano_cpus: int = 2_000_000_000,
        memory_bytes: int = 8 << 30,
        availability: str = "active",
        addr: str = "127.0.0.1",
    ) -> Node:
        """Join another node (a worker by default). The fake runs every task's
        container itself, so ``addr`` is only what ``inspect_node`` reports."""
        node = new_node(
            hostname or f"node-{len(self.nodes) + 1}",
            role=role,
            labels=dict(labels or {}),
            engine_labels=dict(engine_labels or {}),
            nano_cpus=int(nano_cpus),
            memory_bytes=int(memory_bytes),
            availability=availability,
            addr=addr,
        )
        self.nodes[node.id] = node
        self._poke()
        return node

    def node(self, ref: str) -> Node:
        """A node by id, id prefix or hostname (raises ``NotFound``)."""
        for node in self.nodes.values():
            if node.id == ref or node.hostname == ref:
                return node
        matches = [n for n in self.nodes.values() if ref and n.id.startswith(ref)]
        if len(matches) != 1:
            raise NotFound(f"node {ref} not found")
        return matches[0]

    def update_node(
        self,
        ref: str,
        *,
        labels: dict[str, str] | None = None,
        availability: str | None = None,
        role: str | None = None,
    ) -> Node:
        """Change a node's spec as ``docker node update`` does; pending tasks
        are scheduled again."""
        node = self.node(ref)
        if availability is not None:
            if availability not in AVAILABILITIES:
                raise ValueError(f"availability must be one of {AVAILABILITIES}")
            node.availability = availability
        if labels is not None:
            node.labels = dict(labels)
        if role is not None:
            node.role = role
        node.touch()
        self._poke()
        return node

    def node_down(self, ref: str) -> Node:
        """The node stops answering (its engine died or its link went down).

        As the manager sees it after the missed heartbeats: the node is
        ``down`` ("heartbeat failure"); its tasks keep their last state but are
        desired ``shutdown`` (their containers may well still run: the fake
        leaves them running, as a killed dockerd does); the restart policy
        replaces them on another node, or they wait ``pending``."""
        node = self.node(ref)
        node.state, node.message = "down", "heartbeat failure"
        node.touch()
        for task in list(self.tasks.values()):
            if task.node_id == node.id and not task.ended and task.desired in ("running", "ready"):
                task.stale = True
                task.set_desired("shutdown")
                svc = self.services.get(task.service_id)
                if svc is not None:
                    self._restart(svc, task, failed=True)
        self._poke()
        return node

    def node_up(self, ref: str) -> Node:
        """The node is back: ``ready``; its stale tasks are stopped now (a
        running one ends ``failed``, ``task: non-zero exit (143)``)."""
        node = self.node(ref)
        node.state, node.message = "ready", ""
        node.touch()
        for task in list(self.tasks.values()):
            if task.node_id == node.id and task.stale and not task.ended:
                if task.container_id and task.state == "running":
                    self.engine._spawn(self.engine._stop_and_remove(task.container_id, self._grace(task), False))
                else:
                    self._cancel_runner(task)
                    task.set_state("shutdown")
        self._poke()
        return node

    def orphan_tasks(self, ref: str) -> list[str]:
        """What swarm does to the tasks of a node that stayed down (24 h by
        default): they become ``orphaned``. Returns their ids."""
        node = self.node(ref)
        if node.state != "down":
            raise ValueError(f"node {node.hostname} is {node.state}, not down")
        ids = []
        for task in self.tasks.values():
            if task.node_id == node.id and not task.ended:
                self._cancel_runner(task)
                task.set_state("orphaned", task.err)
                ids.append(task.id)
        return ids

    # -- nodes API ---------------------------------------------------------------------------
    def list_nodes(self, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
        self._require_active()
        checks: dict[str, Check] = {
            "id": lambda n, vs: any(n.id.startswith(v) for v in vs),
            "name": lambda n, vs: any(n.hostname.startswith(v) for v in vs),
            "role": lambda n, vs: n.role in vs,
            "membership": lambda n, vs: "accepted" in vs,
            "node.label": lambda n, vs: labels_match(n.labels, vs),
            "label": lambda n, vs: labels_match(n.engine_labels, vs),
        }
        return [n.render() for n in _matching(self.nodes.values(), filters, checks)]

    def inspect_node(self, ref: str) -> dict[str, Any]:
        self._require_active()
        if ref == "self":
            return self.manager.render()
        return self.node(ref).render()

    # -- info --------------------------------------------------------------------------------
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
        managers = [n for n in self.nodes.values() if n.role == "manager"]
        return {
            "NodeID": self.manager.id,
            "NodeAddr": self.manager.addr,
            "LocalNodeState": "active",
            "ControlAvailable": True,
            "Error": "",
            "RemoteManagers": [{"NodeID": n.id, "Addr": f"{n.addr}:2377"} for n in managers],
            "Nodes": len(self.nodes),
            "Managers": len(managers),
            "Cluster": {
                "ID": self.cluster_id,
                "Version": {"Index": 10},
                "CreatedAt": rfc3339_nano(self.created_ns),
                "UpdatedAt": rfc3339_nano(self.created_ns),
                "Spec": {
                    "Name": "default",
                    "Labels": {},
                    "Orchestration": {"TaskHistoryRetentionLimit": TASK_HISTORY},
                },
                "SubnetSize": 24,
                "DataPathPort": 4789,
            },
        }

    def _require_active(self) -> None:
        if not self.active:
            raise EngineError(NOT_MANAGER, 503)

    # -- services ----------------------------------------------------------------------------
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

    def render_service(self, svc: Service) -> dict[str, Any]:
        return svc.render()

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
        self._check(spec)
        svc = Service(id=swarm_id(), spec=fill_spec(spec), version=self._next_version())
        self._allocate_vips(svc)
        self.services[svc.id] = svc
        self.engine.bus.publish("service", "create", svc.id, {"name": svc.name}, scope="swarm")
        for slot in range(1, _replicas(svc.spec) + 1):
            self._new_task(svc, slot)
        return svc

    def _check(self, spec: dict[str, Any]) -> None:
        """What the manager refuses at create or update: a network that does not
        exist (a 500, as on the engine), a constraint without an operator."""
        for target in _networks(spec):
            if self.engine.networks.find(target) is None:
                raise classify_500(f"network {target} not found")
        demand_of(spec.get("TaskTemplate") or {}, spec.get("EndpointSpec"))

    def _allocate_vips(self, svc: Service) -> None:
        mode = (svc.spec.get("EndpointSpec") or {}).get("Mode", "vip")
        wanted = set()
        if mode == "vip":
            for target in _networks(svc.spec):
                net = self.engine.networks.find(target)
                if net is not None and net.scope == "swarm":
                    wanted.add(net.id)
                    if net.id not in svc.vips:
                        ip, prefix = net.allocate_ip()
                        svc.vips[net.id] = f"{ip}/{prefix}"
        for nid in [n for n in svc.vips if n not in wanted]:
            self._release_vip(svc, nid)

    def _release_vip(self, svc: Service, nid: str) -> None:
        addr = svc.vips.pop(nid)
        net = self.engine.networks.find(nid)
        if net is not None:
            net.release_ip(addr.split("/")[0])

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def update(self, ref: str, version: int, spec: dict[str, Any]) -> None:
        svc = self.get(ref)
        if int(version) != svc.version:
            raise EngineError("rpc error: code = Unknown desc = update out of sequence", 500)
        self._check(spec)
        new = fill_spec(dict(spec, Name=spec.get("Name") or svc.name))
        old = svc.spec
        svc.previous, svc.spec = old, new
        svc.version = self._next_version()
        svc.updated_ns = now_ns()
        self._allocate_vips(svc)
        self.engine.bus.publish("service", "update", svc.id, {"name": svc.name}, scope="swarm")
        live = [self.tasks[t] for t in svc.task_ids if t in self.tasks and self.tasks[t].desired in ("running", "ready")]
        if svc.updater is not None and not svc.updater.done():
            svc.updater.cancel()
        if new.get("TaskTemplate") != old.get("TaskTemplate"):
            for task in live:
                self._shutdown(task)
            live = []
            svc.update_status = {"State": "updating", "StartedAt": rfc3339_nano(now_ns()), "Message": "update in progress"}
        else:
            svc.update_status = None
        want = _replicas(new)
        slots = sorted(t.slot for t in live)
        for task in live:
            if task.slot > want:
                self._shutdown(task)
        fresh = [self._new_task(svc, slot) for slot in range(1, want + 1) if slot not in slots]
        if svc.update_status is not None:
            svc.updater = self.engine._spawn(self._watch_update(svc, fresh))

    async def _watch_update(self, svc: Service, fresh: list[Task]) -> None:
        """``UpdateStatus``: completed once every new task ran for the monitor
        period, paused when one of them ends first."""
        monitor = ((svc.spec.get("UpdateConfig") or {}).get("Monitor") or DEFAULT_MONITOR_NS) / 1e9
        while not all(t.state == "running" for t in fresh):
            failed = next((t for t in fresh if t.ended), None)
            if failed is not None:
                self._pause_update(svc, failed)
                return
            await self._wait_change(0.05)
        await asyncio.sleep(monitor)
        failed = next((t for t in fresh if t.ended), None)
        if failed is not None:
            self._pause_update(svc, failed)
            return
        assert svc.update_status is not None
        svc.update_status = dict(
            svc.update_status, State="completed", CompletedAt=rfc3339_nano(now_ns()), Message="update completed"
        )

    @staticmethod
    def _pause_update(svc: Service, task: Task) -> None:
        assert svc.update_status is not None
        svc.update_status = dict(
            svc.update_status,
            State="paused",
            Message=f"update paused due to failure or early termination of task {task.id}",
        )

    def remove(self, ref: str) -> None:
        """The service is gone at once; its tasks stay listed, desired
        ``remove``, until their containers are stopped."""
        svc = self.get(ref)
        del self.services[svc.id]
        if svc.updater is not None and not svc.updater.done():
            svc.updater.cancel()
        for nid in list(svc.vips):
            self._release_vip(svc, nid)
        for tid in svc.task_ids:
            task = self.tasks.get(tid)
            if task is not None:
                self.engine._spawn(self._remove_task(task))
        self.engine.bus.publish("service", "remove", svc.id, {"name": svc.name}, scope="swarm")
        self._poke()

    async def _remove_task(self, task: Task) -> None:
        task.set_desired("remove")
        if task.container_id and task.state in ("starting", "running"):
            self._cancel_runner(task)
            await self.engine._stop_and_remove(task.container_id, self._grace(task), False)
        else:
            self._cancel_runner(task)
        if not task.ended:
            task.set_state("shutdown")
        await asyncio.sleep(REMOVE_LINGER)
        self._forget(task)

    def _forget(self, task: Task) -> None:
        self.tasks.pop(task.id, None)
        self._cancel_runner(task)
        if task.container_id:
            self.engine._spawn(self.engine._stop_and_remove(task.container_id, 0, True))

    def list_services(self, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
        self._require_active()
        checks: dict[str, Check] = {
            "id": lambda svc, vs: any(svc.id.startswith(v) for v in vs),
            "name": lambda svc, vs: any(svc.name.startswith(v) for v in vs),
            "label": lambda svc, vs: labels_match(svc.spec.get("Labels"), vs),
            "mode": lambda svc, vs: ("global" if "Global" in (svc.spec.get("Mode") or {}) else "replicated") in vs,
        }
        return [svc.render() for svc in _matching(self.services.values(), filters, checks)]

    def list_tasks(self, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
        self._require_active()
        service_ids = {self.get(ref).id for ref in normalize_filters(filters).get("service", [])}

        def name(task: Task) -> str:
            svc = self.services.get(task.service_id)
            return f"{svc.name if svc else ''}.{task.slot}"

        def on_node(task: Task, values: list[str]) -> bool:
            wanted = {self.manager.id if v == "self" else v for v in values}
            node = self.nodes.get(task.node_id)
            return task.node_id in wanted or (node is not None and node.hostname in wanted)

        checks: dict[str, Check] = {
            "service": lambda t, vs: t.service_id in service_ids,
            "desired-state": lambda t, vs: t.desired in vs,
            "id": lambda t, vs: any(t.id.startswith(v) for v in vs),
            "name": lambda t, vs: any(name(t).startswith(v) or f"{name(t)}.{t.id}".startswith(v) for v in vs),
            "node": on_node,
            "label": lambda t, vs: labels_match({}, vs),
        }
        return [t.render() for t in _matching(list(self.tasks.values()), filters, checks)]

    # -- the orchestrator --------------------------------------------------------------------
    def _poke(self) -> None:
        """Something changed that may let a pending task be placed."""
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def _wait_change(self, timeout: float) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _usage(self) -> dict[str, Usage]:
        usage: dict[str, Usage] = {}
        for task in self.tasks.values():
            if task.holds_node:
                u = usage.setdefault(task.node_id, Usage())
                u.nano_cpus += task.demand.nano_cpus
                u.memory_bytes += task.demand.memory_bytes
                u.host_ports |= task.demand.host_ports
                u.tasks += 1
        return usage

    def _new_task(self, svc: Service, slot: int, desired: str = "running") -> Task:
        spec = task_spec(svc.spec)
        task = Task(
            id=swarm_id(),
            service_id=svc.id,
            slot=slot,
            spec=spec,
            demand=demand_of(spec, svc.spec.get("EndpointSpec")),
            desired=desired,
        )
        self.tasks[task.id] = task
        svc.task_ids.append(task.id)
        self._trim_history(svc, slot)
        task.runner = self.engine._spawn(self._run_task(svc, task))
        return task

    def _trim_history(self, svc: Service, slot: int) -> None:
        """Swarm keeps the last ``TaskHistoryRetentionLimit`` tasks of a slot."""
        in_slot = [self.tasks[t] for t in svc.task_ids if t in self.tasks and self.tasks[t].slot == slot]
        for task in in_slot[: max(0, len(in_slot) - TASK_HISTORY)]:
            if task.ended:
                svc.task_ids.remove(task.id)
                self._forget(task)

    @staticmethod
    def _grace(task: Task) -> float:
        grace = (task.spec.get("ContainerSpec") or {}).get("StopGracePeriod")
        return 10 if grace is None else grace / 1e9

    def _cancel_runner(self, task: Task) -> None:
        if task.runner is not None and not task.runner.done() and task.runner is not asyncio.current_task():
            task.runner.cancel()

    def _shutdown(self, task: Task) -> None:
        """The orchestrator no longer wants the task (update, scale down)."""
        task.set_desired("shutdown")
        if task.container_id and task.state == "running":
            self.engine._spawn(self.engine._stop_and_remove(task.container_id, self._grace(task), False))
        else:
            self._cancel_runner(task)
            if not task.ended:
                task.set_state("shutdown")
        self._poke()

    def _end(self, task: Task, state: str, err: str = "") -> None:
        task.set_state(state, err)
        task.set_desired("shutdown")
        self._poke()

    async def _run_task(self, svc: Service, task: Task) -> None:
        failure = self._take_failure(svc.name)
        cs = task.spec.get("ContainerSpec") or {}
        await asyncio.sleep(self.step_delay)
        for state in WALK:
            if failure is not None and failure.at == state and failure.state == "rejected":
                self._end(task, "rejected", failure.err)
                return
            if state == "assigned":
                await self._place(task)
                if task.desired not in ("running", "ready"):
                    return
                await asyncio.sleep(self.step_delay)
                continue
            if state == "starting":
                while task.desired == "ready":
                    await self._wait_change(1.0)
            if task.desired not in ("running", "ready"):
                return
            if state == "preparing":
                task.set_state(state)
                await asyncio.sleep(self.step_delay)
                err = await self.engine._swarm_prepare_image(cs.get("Image", ""))
                if err:
                    self._end(task, "rejected", err)
                    return
                continue
            if state == "starting":
                task.set_state(state)
                try:
                    task.container_id = await self.engine._swarm_start_container(svc, task)
                except EngineError as e:
                    self._end(task, "rejected", e.explanation)
                    return
                self._publish_ingress(svc, task)
                await asyncio.sleep(self.step_delay)
                continue
            task.set_state(state)
            if state != "running":
                await asyncio.sleep(self.step_delay)
        container = self.engine.containers.get(task.container_id)
        if container is not None:
            task.pid = container.pid
        if failure is not None and failure.state == "failed":
            # at once, as a process that exits on start: nothing sees it running (or serving)
            await self.engine._swarm_fail_container(task.container_id)
            task.exit_code, task.pid = 1, 0
            self._end(task, "failed", failure.err)
            self._restart(svc, task, failed=True)
            return
        code = await self.engine._wait_exit(task.container_id)
        if task.stale:  # the manager hears of it only once the node is back
            while self.nodes.get(task.node_id) is not None and self.nodes[task.node_id].state != "ready":
                await self._wait_change(1.0)
            task.pid, task.exit_code = 0, code
            self._end(task, "failed", f"task: non-zero exit ({code})")
            return
        task.pid, task.exit_code = 0, code
        if task.desired not in ("running", "ready"):
            if not task.ended:
                task.set_state("shutdown")
            self._poke()
            return
        if code == 0:
            self._end(task, "complete")
        else:
            self._end(task, "failed", f"task: non-zero exit ({code})")
        self._restart(svc, task, failed=code != 0)

    @staticmethod
    def _publish_ingress(svc: Service, task: Task) -> None:
        """A task's ``PortStatus`` lists its host-mode ports only; an ingress
        port is the service's (the fake has no routing mesh: the service
        publishes its newest task's host port)."""
        host = {
            (p.get("TargetPort"), p.get("Protocol") or "tcp")
            for p in (svc.spec.get("EndpointSpec") or {}).get("Ports") or []
            if p.get("PublishMode") == "host"
        }
        for p in task.ports:
            if (p["TargetPort"], p["Protocol"]) not in host:
                svc.ingress[f"{p['TargetPort']}/{p['Protocol']}"] = p["PublishedPort"]
        task.ports = [p for p in task.ports if (p["TargetPort"], p["Protocol"]) in host]

    async def _place(self, task: Task) -> None:
        """Wait in ``pending`` until a node takes the task; the reason shows in ``Err``."""
        while True:
            node, why = schedule(list(self.nodes.values()), task.demand, self._usage())
            if node is not None:
                task.node_id = node.id
                task.set_state("assigned")
                self._poke()
                return
            if task.err != why:
                task.set_state("pending", why)
            await self._wait_change(1.0)
            if task.desired not in ("running", "ready"):
                return

    def _restart(self, svc: Service, task: Task, failed: bool) -> None:
        """The restart policy: a new task in the slot at once, desired
        ``ready`` until the restart delay has passed."""
        if svc.id not in self.services:
            return
        policy = task.spec.get("RestartPolicy")
        condition = (policy or {}).get("Condition", "any")
        if condition == "none" or (condition == "on-failure" and not failed):
            return
        attempts = (policy or {}).get("MaxAttempts") or 0
        restarts = sum(1 for t in svc.task_ids if t in self.tasks and self.tasks[t].slot == task.slot) - 1
        if attempts and restarts >= attempts:
            return
        if any(
            self.tasks[t].slot == task.slot and self.tasks[t].desired in ("running", "ready")
            for t in svc.task_ids
            if t in self.tasks and t != task.id
        ):
            return
        delay = (policy or {}).get("Delay")
        delay_s = (DEFAULT_RESTART_DELAY_NS if delay is None else delay) / 1e9
        new = self._new_task(svc, task.slot, desired="ready")
        self.engine._spawn(self._release_after(new, delay_s))

    async def _release_after(self, task: Task, delay: float) -> None:
        await asyncio.sleep(delay)
        if task.desired == "ready":
            task.set_desired("running")
            self._poke()


def state_rank(state: str) -> int:
    """The position of a task state in the engine's order (for "at least running")."""
    return ORDER.index(state)


__all__ += ["state_rank", "ENDED"]
