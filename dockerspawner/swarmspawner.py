"""SwarmSpawner: one swarm service (one replica) per single-user server.

Config-compatible with dockerspawner 14's SwarmSpawner (trait names, defaults,
service names, saved state). It is DockerSpawner with the object hooks done
for services: the spec comes from the pure builder ``service_specs``; starting
means following the service's task through swarm's states, each wait under a
deadline, failing at once with the task's own message when swarm gives up, and
saying why while the task waits for a node. Servers are reached at the node's
address on the task's host-mode published port, or by service name
(``use_internal_ip``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from jupyterhub.spawner import Spawner
from jupyterhub.traitlets import Callable as CallableTrait
from traitlets import Dict, Unicode, Union, default

from . import naming
from .dockerspawner import DockerSpawner
from .engine import Conflict, EngineError, EngineUnavailable, NotFound
from .errors import SpawnError, _short
from .progress import PHASES
from .service_specs import ServicePlan, binds_to_mounts, service_spec
from .specs import render_templates
from .views import ServiceView, TaskView, newest_task

#: Where the task's way to running sits on the progress bar (between "start" and "wait").
TASK_PROGRESS = {"pending": 81, "assigned": 82, "preparing": 84, "starting": 86}
_STEP = {
    "new": "pending", "allocated": "pending", "pending": "pending",
    "assigned": "assigned", "accepted": "assigned",
    "preparing": "preparing", "ready": "preparing", "starting": "starting",
}
#: Task states that end a start at once (``shutdown``/``remove`` are the orchestrator's own doing).
ENDED = ("failed", "rejected", "complete", "orphaned")
#: Share of start_timeout a task may take to run; the rest is for the HTTP wait.
TASK_SHARE = 0.75
_ONLY_CONSTRAINTS = re.compile(r"^no suitable node \((scheduling constraints not satisfied on \d+ nodes?(; )?)+\)$")
_EXTRAS = (
    "extra_container_spec",
    "extra_resources_spec",
    "extra_placement_spec",
    "extra_task_spec",
    "extra_endpoint_spec",
    "extra_create_kwargs",
)


def _extra(what: str) -> Union:
    return Union(
        [CallableTrait(), Dict()],
        default_value={},
        config=True,
        help=f"""Keyword arguments for docker.types.{what} (docker-py's names), or a callable
        (spawner) -> dict (may be async). Strings are templated ({{username}}, ...).""",
    )


def only_constraints(err: str) -> bool:
    """Whether swarm's pending reason says only that no node matches the
    placement constraints: nothing will change that without an admin."""
    return bool(_ONLY_CONSTRAINTS.match(err))


class SwarmSpawner(DockerSpawner):
    """A spawner for JupyterHub that runs each server as a Docker swarm service."""

    object_type = "service"
    object_id_key = "ID"
    #: as in 14: a service is always removed when its server stops (not configurable)
    remove = True

    @default("pull_policy")
    def _default_pull_policy(self) -> str:
        return "skip"  # the task's node pulls; the manager may not run servers at all

    @default("network_name")
    def _default_network_name(self) -> str:
        return ""

    extra_container_spec = _extra("ContainerSpec")
    extra_resources_spec = _extra("Resources")
    extra_placement_spec = _extra("Placement")
    extra_task_spec = _extra("TaskTemplate")
    extra_endpoint_spec = _extra("EndpointSpec")
    extra_create_kwargs = Union(
        [CallableTrait(), Dict()],
        default_value={},
        config=True,
        help="""Extra keyword arguments for docker-py's create_service (name, labels, task_template, mode,
        networks, endpoint_spec, update_config, rollback_config), or a callable (spawner) -> dict,
        which may be async. Prefer the extra_*_spec settings for the parts of the service.""",
    )
    volume_driver = Unicode(
        "",
        config=True,
        help="""Volume driver for the servers' named volumes; empty: the engine's default ('local'). A
        server may run on another node at its next start, so use a driver whose volumes every node
        sees (NFS, a CSI plugin).""",
    )
    volume_driver_options = Dict(
        config=True,
        help="""Driver options for the named volumes mounted with volume_driver, e.g. {'type': 'nfs', 'o':
        'addr=10.0.0.1,rw', 'device': ':/export/home'}.""",
    )

    @property
    def service_id(self) -> str:
        return self.object_id

    @property
    def service_name(self) -> str:
        return self.object_name

    @property
    def internal_hostname(self) -> str:
        return self.service_name

    @property
    def mount_driver_config(self) -> dict | None:
        """``volume_driver`` as the engine's ``DriverConfig`` (None without one)."""
        if not self.volume_driver:
            return None
        return {"Name": self.volume_driver, "Options": dict(self.volume_driver_options)}

    @property
    def service_mounts(self) -> list[dict]:
        """``volumes``/``read_only_volumes`` and ``mounts``, in the engine's form."""
        return binds_to_mounts(self.volume_binds) + self.mount_binds

    def load_state(self, state: dict) -> None:
        # as DockerSpawner (also under the alias names service_id/service_name), without its exit watcher
        Spawner.load_state(self, state)
        self.object_id = state.get("object_id") or state.get("service_id") or state.get("container_id") or ""
        self.object_name = (
            state.get("object_name") or state.get("service_name") or state.get("container_name")
            or self._default_object_name()
        )

    # -- the spec ------------------------------------------------------------------------
    async def _service_plan(self) -> ServicePlan:
        ns = self.template_namespace()
        fields = await self._plan_fields()
        extras = {
            name: render_templates(await self._evaluate(getattr(self, name)) or {}, ns, self.log.warning)
            for name in _EXTRAS
        }
        return ServicePlan(
            **fields,
            mounts=self.service_mounts,
            mem_guarantee=self.mem_guarantee,
            cpu_guarantee=self.cpu_guarantee,
            volume_driver=self.volume_driver,
            volume_driver_options=dict(self.volume_driver_options),
            **extras,
        )

    async def get_command(self) -> list[str]:
        try:
            return await super().get_command()
        except NotFound:
            raise SpawnError(
                f"Image {self.image} does not say what to run.",
                f"cmd is not set, so the command is read from image {self.image} on the swarm manager,"
                " which does not have it: set SwarmSpawner.cmd (e.g. ['jupyterhub-singleuser'])",
            ) from None

    # -- the object hooks (services) ---------------------------------------------------------
    async def _inspect(self, ref: str) -> ServiceView | None:  # type: ignore[override]
        """The service view DockerSpawner's ``get_object`` and ``_adoptable`` read:
        so a service is found by saved id, else by name and owner labels, and
        never adopted across owners, exactly as a container is."""
        try:
            return ServiceView.of(await self.docker_engine.inspect_service(ref))
        except NotFound:
            return None
        except EngineError as e:
            if e.status == 503:
                raise self._no_swarm(e) from None
            raise

    def _no_swarm(self, error: EngineError) -> SpawnError:
        return SpawnError(
            "The hub's swarm is not available right now.",
            f"swarm call for {self._log_name} failed: {_short(error.explanation, 500)}; point SwarmSpawner at a"
            " swarm manager (DOCKER_HOST, client_kwargs) or run `docker swarm init`",
        )

    def _distinct_name(self) -> str:
        return naming.distinct_name(self._established_name(), naming.owner_key(*self._owner))

    async def create_object(self) -> dict:
        """Create this server's service; returns ``{"ID": ...}``."""
        try:
            body = service_spec(await self._service_plan())
        except ValueError as e:
            raise SpawnError(
                "Your server could not be set up: the hub's swarm settings are invalid.",
                f"service spec of {self._log_name}: {e}",
            ) from None
        self._attempt.spec = body
        sid = await self._create_service(body)
        self._progress.emit(PHASES["create"] + 5, f"Service {self.object_name} created")
        return {"ID": sid}

    async def _create_service(self, body: dict) -> str:
        for _ in range(3):
            try:
                sid = await self._create_service_once(body)
                self.object_name = body["Name"]
                return sid
            except Conflict:
                holder = await self._inspect(body["Name"])
                if holder is not None and holder.owner == self._owner:
                    await self._remove_service(holder.id)
                    continue
                distinct = self._distinct_name()
                if body["Name"] == distinct:
                    break
                self.log.warning(
                    "Service name %s is held by another owner; using %s for %s", body["Name"], distinct, self._log_name
                )
                body = {**body, "Name": distinct}
            except NotFound as e:
                network = self.network_name or "(from extra_task_spec)"
                raise SpawnError(
                    f"The network {network} does not exist.",
                    f"create of service {body['Name']} failed: {_short(e.explanation, 500)}; create an attachable"
                    " overlay network (docker network create -d overlay --attachable NAME) or fix SwarmSpawner.network_name",
                ) from None
            except EngineUnavailable:
                raise
            except EngineError as e:
                raise self._create_error(body, e) from None
        raise SpawnError(
            "The name of your server's service is taken.",
            f"cannot create a service for {self._log_name}: {body['Name']} and {self._established_name()} are"
            " held by other owners; remove them (docker service rm NAME) or change SwarmSpawner.name_template",
        )

    def _create_error(self, body: dict, error: EngineError) -> SpawnError:
        text = error.explanation
        if error.status == 503:
            return self._no_swarm(error)
        if "constraint" in text.lower():
            return SpawnError(
                "Your server could not be placed: the hub's placement constraints are invalid.",
                f"create of service {body['Name']} failed: {_short(text, 500)}; fix"
                " SwarmSpawner.extra_placement_spec constraints (e.g. 'node.labels.zone==a')",
            )
        return SpawnError(
            f"Could not create your server: {_short(text)}",
            f"create of service {body['Name']} for {self._log_name} failed: {_short(str(error), 3000)}",
        )

    async def _create_service_once(self, body: dict) -> str:
        """One create call whose result is never lost: if the start is
        cancelled (or the answer lost) meanwhile, the undo waits for the call
        and removes what it made, by id or by name and owner."""
        attempt = self._attempt
        name = body["Name"]
        create = asyncio.ensure_future(self.docker_engine.create_service(body))

        async def undo_create() -> None:
            view = await self._inspect(name)
            if view is not None and view.owner == self._owner:
                await self._remove_service(view.id)
            try:  # the call may still be under way: remove what it makes
                sid = await asyncio.wait_for(asyncio.shield(create), 30)
            except Exception:  # noqa: BLE001 - it made nothing, or its answer is lost (found by name above)
                return
            await self._remove_service(sid)

        attempt.on_undo(f"service-create:{name}", undo_create)
        try:
            sid = await asyncio.shield(create)
        except EngineUnavailable:
            raise  # no answer: the service may exist, the undo finds it
        except EngineError:
            attempt.forget(f"service-create:{name}")  # the engine said no: nothing was made
            raise
        attempt.forget(f"service-create:{name}")
        attempt.on_undo(f"id:{sid}", self._remover(sid))
        return sid

    def _remover(self, ref: str) -> Callable[[], Awaitable[None]]:
        async def remove() -> None:
            await self._remove_service(ref)

        return remove

    async def _remove_service(self, ref: str) -> None:
        """Remove a service (gone already counts); return once the engine no
        longer knows it, so its name can be used again. Its tasks' containers
        stop on their nodes afterwards (or when a node that is down comes back)."""
        engine = self.docker_engine
        try:
            await engine.remove_service(ref)
        except NotFound:
            return
        for _ in range(50):
            try:
                await engine.inspect_service(ref)
            except NotFound:
                return
            await asyncio.sleep(0.1)
        raise SpawnError(
            "Your previous server is still being removed. Please try again in a minute.",
            f"service {ref} is still present 5 s after its removal",
        )

    async def remove_object(self) -> None:
        """Remove the service; by name only after checking it is this server's."""
        ref = self.object_id
        if not ref:
            obj = await self.get_object()
            if obj is None:
                return
            ref = obj["ID"]
        await self._remove_service(ref)

    async def stop_object(self) -> None:
        """Nothing: a service has no stopped state (stop removes it)."""

    async def start(self) -> tuple[str, int]:
        self.__dict__["_task_deadline"] = asyncio.get_running_loop().time() + TASK_SHARE * self.start_timeout
        try:
            return await super().start()
        finally:
            self.__dict__.pop("_task_deadline", None)

    async def _tasks(self) -> list[TaskView]:
        tasks = await self.docker_engine.list_tasks(filters={"service": self.object_id})
        return [TaskView.of(t) for t in tasks]

    async def start_object(self) -> None:
        """Wait until the service's task runs, reporting each step.

        A task that ends (rejected, failed, ...) fails the start at once with
        swarm's message; one that stays pending says why in the progress and
        fails with that reason at the deadline, or at once when no node can
        ever match the placement constraints.
        """
        loop = asyncio.get_running_loop()
        deadline = self.__dict__.get("_task_deadline") or loop.time() + TASK_SHARE * self.start_timeout
        delay = 0.05
        task: TaskView | None = None
        while True:
            tasks = await self._tasks()
            await self._fail_if_ended(tasks)
            task = newest_task(tasks)
            if task is not None and task.serving:
                self.__dict__["_task_id"] = task.id
                self._attempt.started_info = dict(task.raw)
                self.log.info("Task %s of %s runs on node %s", task.id[:12], self.service_name, await self._node_name(task.node_id))
                return
            if task is not None:
                await self._report(task)
            if loop.time() >= deadline:
                raise await self._not_running(task)
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.01)))
            delay = min(delay * 1.5, 0.5)

    async def _report(self, task: TaskView) -> None:
        step = _STEP.get(task.state)
        if step is None:  # running but no longer wanted (its node is down): its replacement comes next
            return
        node = await self._node_name(task.node_id) if task.node_id else ""
        if step == "pending":
            if task.error and only_constraints(task.error):
                raise SpawnError(
                    f"No node of the swarm can run your server: {_short(task.error)}",
                    f"task {task.id[:12]} of service {self.service_name}: {task.error}; no node matches"
                    f" the placement constraints {self._constraints()}: fix SwarmSpawner.extra_placement_spec"
                    " or label a node (docker node update --label-add KEY=VALUE NODE)",
                )
            message = f"Waiting for a node: {task.error}" if task.error else "Waiting for the swarm to schedule the task"
        elif step == "assigned":
            message = f"Task scheduled on node {node}"
        elif step == "preparing":
            message = f"Preparing on node {node} (pulling {self.image} if needed)"
        else:
            message = f"Starting on node {node}"
        if message != self._attempt.phase:
            self.log.info("Service %s of %s: %s", self.service_name, self._log_name, message)
        self._attempt.phase = message
        self._progress.emit(TASK_PROGRESS[step], message)

    def _constraints(self) -> list[str]:
        spec = self._attempt.spec or {}
        placement = (spec.get("TaskTemplate") or {}).get("Placement") or {}
        return list(placement.get("Constraints") or [])[:10]

    async def _not_running(self, task: TaskView | None) -> SpawnError:
        if task is None:
            return SpawnError(
                "The swarm did not schedule your server in time.",
                f"service {self.service_name} of {self._log_name} has no task after {TASK_SHARE * self.start_timeout:.0f}s",
            )
        reason = task.reason()
        where = f" on node {await self._node_name(task.node_id)}" if task.node_id else ""
        return SpawnError(
            f"Your server could not start in time: {_short(reason)}",
            f"task {task.id[:12]} of service {self.service_name} is still {task.state}{where} after"
            f" {TASK_SHARE * self.start_timeout:.0f}s: {_short(reason, 1000)}; free resources on a node, lower"
            " mem_guarantee/cpu_guarantee, or raise Spawner.start_timeout",
        )

    async def _fail_if_ended(self, tasks: list[TaskView]) -> None:
        ended = sorted((t for t in tasks if t.state in ENDED), key=lambda t: t.created_at)
        if not ended:
            return
        task = ended[0]
        reason = task.reason()
        node = await self._node_name(task.node_id) if task.node_id else "no node"
        tail = ""
        if task.state == "failed" and task.container_id:
            tail = await self._log_tail(task.container_id)
        if task.state == "rejected":
            user = f"The swarm could not run your server: {_short(reason)}"
        elif task.state == "orphaned":
            user = f"Your server's node {node} stopped answering."
        elif task.state == "complete":
            user = "Your server exited while starting (exit code 0)."
        else:
            user = f"Your server exited while starting: {_short(reason)}"
        if tail:
            user = f"{user} Last log lines:\n{tail}"
        raise SpawnError(
            user,
            f"task {task.id[:12]} of service {self.service_name} ({self._log_name}) on {node} ended"
            f" {task.state}: {_short(reason, 1000)}; check the image, command and node",
        )

    async def _node(self, node_id: str) -> dict:
        try:
            return await self.docker_engine.inspect_node(node_id)
        except NotFound:
            return {}

    async def _node_name(self, node_id: str) -> str:
        names = self.__dict__.setdefault("_node_names", {})
        if node_id not in names:
            node = await self._node(node_id)
            names[node_id] = ((node.get("Description") or {}).get("Hostname")) or node_id[:12]
        return names[node_id]

    async def _node_addr(self, node_id: str) -> str:
        addrs = self.__dict__.setdefault("_node_addrs", {})
        if node_id not in addrs:
            addr = ((await self._node(node_id)).get("Status") or {}).get("Addr") or ""
            addrs[node_id] = "" if addr in ("0.0.0.0", "::") else addr
        return addrs[node_id] or self.host_ip

    async def _check_alive(self) -> None:
        """While waiting for HTTP: fail at once if the task stopped running."""
        tasks = await self._tasks()
        await self._fail_if_ended(tasks)
        mine = next((t for t in tasks if t.id == self.__dict__.get("_task_id")), None)
        if mine is None or not mine.serving:
            state = f"{mine.state} (desired {mine.desired_state})" if mine else "gone"
            raise SpawnError(
                "Your server stopped while starting.",
                f"task of service {self.service_name} is {state} while waiting for HTTP; see docker service ps",
            )

    async def post_start_exec(self) -> None:
        """``post_start_cmd`` in the task's container (it must be on this engine's node)."""
        service_id, task = self.object_id, self._attempt.started_info or {}
        container = TaskView.of(task).container_id
        try:
            self.object_id = container  # DockerSpawner's exec runs in object_id
            await super().post_start_exec()
        except NotFound:
            message = "post_start_cmd cannot run: the task's container is on another node than the hub's engine"
            if self.post_start_cmd_must_succeed:
                raise SpawnError("The post-start command could not run.", message) from None
            self.log.warning("%s (%s)", message, self.service_name)
        finally:
            self.object_id = service_id

    async def get_ip_and_port(self) -> tuple[str, int]:
        """The service name (internal addressing) or the task's node address
        and host-mode published port."""
        if self.use_internal_hostname or self.use_internal_ip:
            return self.service_name, self.port
        info = self._attempt.started_info
        self._attempt.started_info = None
        task = TaskView.of(info) if info else newest_task([t for t in await self._tasks() if t.serving])
        if task is None:
            raise SpawnError("Your server is not running.", f"service {self.service_name} has no running task")
        return await self._task_address(task)

    async def _task_address(self, task: TaskView) -> tuple[str, int]:
        if self.port in task.ports:
            return await self._node_addr(task.node_id), task.ports[self.port]
        service = ServiceView.of(await self.docker_engine.inspect_service(self.object_id))
        if self.port in service.published:  # ingress: any node's address works
            return self.host_ip, service.published[self.port]
        raise SpawnError(
            "Your server's port was not published.",
            f"service {self.service_name} publishes no port for {self.port}: set use_internal_ip = True"
            " or publish it in extra_endpoint_spec",
        )

    async def poll(self) -> int | str | None:
        """None while the task the hub talks to runs; a status once it stopped,
        its node went down, or swarm restarted it at another address."""
        if not (self.object_id or self.object_name):
            return 0
        try:
            if await self.get_object() is None:
                return 0
            tasks = await self._tasks()
            serving = newest_task([t for t in tasks if t.serving])
            if serving is not None and await self._same_address(serving):
                return None
            return await self._stopped_status(tasks, serving)
        except EngineError as e:
            if self._engine_hiccup(e):
                return None
            raise

    async def _same_address(self, task: TaskView) -> bool:
        server = self.server
        if self.use_internal_ip or self.use_internal_hostname or not server or not server.ip:
            return True
        if task.id == self.__dict__.get("_task_id"):
            return True
        try:
            return await self._task_address(task) == (server.ip, server.port)
        except SpawnError:
            return False

    async def _stopped_status(self, tasks: list[TaskView], serving: TaskView | None) -> str:
        known = next((t for t in tasks if t.id == self.__dict__.get("_task_id")), None)
        if serving is not None:
            replaced = f" (it replaced task {known.id[:12]})" if known is not None else ""
            return f"swarm restarted the server: task {serving.id[:12]} runs at another address{replaced}"
        task = known or newest_task(tasks)
        if task is None:
            return f"service {self.service_name} has no task"
        node = await self._node(task.node_id) if task.node_id else {}
        status = node.get("Status") or {}
        name = (node.get("Description") or {}).get("Hostname") or task.node_id[:12] or "no node"
        text = f"task {task.id[:12]} {task.state} (desired {task.desired_state}) on {name}: {task.reason()}"
        if status.get("State") and status["State"] != "ready":
            text = f"node {name} is {status['State']} ({status.get('Message') or 'no message'}); {text}"
        return text
