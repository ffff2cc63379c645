"""``FakeDocker``: the in-memory engine behind the Docker client protocol.

All state lives on one event loop; every protocol call records itself,
honours ``down()`` and injected faults, then acts on plain Python objects
without awaiting in the middle of a state change, so many concurrent spawns
see the same atomicity the engine gives them.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from typing import Any

from dockerspawner.engine.protocol import (
    Conflict,
    EngineError,
    EngineUnavailable,
    NotFound,
    PullEvent,
)
from dockerspawner.engine.wire import API_VERSION

from ._util import (
    error_500,
    new_id,
    normalize_filters,
    normalize_ref,
)
from .containers import Container, empty_endpoint
from .events import EventBus
from .faults import Faults
from .filters import check as check_filters
from .fs import HostStore, norm
from .images import (
    ImageStore,
    PullJob,
    Registry,
    build_image,
    check_removable,
    run_pull,
)
from .execs import ExecAPI, ExecScript
from .lifecycle import ContainerAPI
from .networks import Networks
from .ports import PortAllocator
from .programs import (
    Programs,
)
from .recording import CallLog
from .swarm import Service, Swarm, Task
from .volumes import Volumes

__all__ = ["ExecScript", "FakeDocker"]

ENGINE_VERSION = "20.10.24"


class FakeDocker(ContainerAPI, ExecAPI):
    """An in-memory Docker engine implementing ``DockerEngine``.

    Options (all keyword-only):

    - ``swarm``: whether ``info()`` says swarm is active and services work
      (default True: a single-node swarm manager, as on the test machines).
    - ``pull_speed``: registry download speed in bytes/s (``None``: instant).
    - ``processes``: run commands found on the host as local subprocesses:
      ``True`` for any host executable that is not a simulated busybox
      applet, or a collection of program names (e.g. ``{"jupyterhub-singleuser"}``).
    - ``process_env``: extra environment for such processes (e.g. a hub API
      URL reachable from the host).
    - ``port_range``: (low, high) for published host ports (default: the
      kernel's ephemeral range, as the engine).
    - ``task_step_delay``: seconds per swarm task state (default 0.01).
    - ``default_stop_timeout``: seconds a stop waits before SIGKILL (10).
    - ``latency``: seconds every call takes (default 0: one loop turn).
    - ``version``: the engine version ``version()``/``info()`` report.
    - ``device_drivers``: device drivers of the simulated host, name ->
      capabilities (default none, as a host without the NVIDIA toolkit;
      ``fakedocker.validation.NVIDIA`` simulates one).
    - ``unknown_commands``: ``"fail"`` (default) refuses a PID 1 that is not
      simulated, not the image's own command and not in its files, as the
      runtime does; ``"run"`` runs it until stopped.

    No IO happens here; the fake binds to the event loop of its first call.
    """

    engine_kind = "fake"

    def __deepcopy__(self, memo: dict) -> FakeDocker:
        # traitlets deep-copies config values; an engine is a handle to one daemon
        # (its pool, its pulls, its state), so every copy must be the same object
        return self

    def __init__(
        self,
        *,
        swarm: bool = True,
        pull_speed: float | None = None,
        processes: bool | Iterable[str] = False,
        process_env: dict[str, str] | None = None,
        port_range: tuple[int, int] | None = None,
        task_step_delay: float = 0.01,
        default_stop_timeout: float = 10,
        latency: float = 0.0,
        version: str = ENGINE_VERSION,
        device_drivers: Mapping[str, Iterable[str]] | None = None,
        unknown_commands: str = "fail",
    ) -> None:
        if unknown_commands not in ("fail", "run"):
            raise ValueError(f"unknown_commands must be 'fail' or 'run', not {unknown_commands!r}")
        self.base_url = "fake://fakedocker"
        self.version_string = version
        self.images = ImageStore()
        self.registry = Registry(speed=pull_speed)
        self.faults = Faults()
        self.calls = CallLog()
        self.programs = Programs()
        self.bus = EventBus()
        self.networks = Networks()
        self.volumes = Volumes()
        self.containers: dict[str, Container] = {}
        self.swarm = Swarm(self, active=swarm, step_delay=task_step_delay)
        self.processes: bool | frozenset[str] = (
            processes if isinstance(processes, bool) else frozenset(processes)
        )
        self.process_env = dict(process_env or {})
        self.default_stop_timeout = default_stop_timeout
        self.latency = latency
        self.device_drivers = {k: frozenset(v) for k, v in (device_drivers or {}).items()}
        self.unknown_commands = unknown_commands
        self.exec_scripts: list[ExecScript] = []
        self._ports = PortAllocator(port_range)
        self._bind_stores: dict[str, HostStore] = {}
        self._pulls: dict[str, PullJob] = {}
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down = False
        self._closed = False
        self._pids = itertools.count(random.randint(2000, 20000))
        self._id = new_id()

    # -- public test helpers --------------------------------------------------------------
    def add_image(
        self,
        ref: str,
        *,
        config: dict[str, Any] | None = None,
        layers: list[Any] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> str:
        """Put an image in the local store and return its id.

        ``config`` is the image's ``Config`` (``Cmd``, ``Env``, ``Labels``,
        ``ExposedPorts``, ``WorkingDir``, ``User``, ``Entrypoint``...);
        ``layers`` a list of sizes in bytes; ``files`` the file tree
        programs see (default: a busybox-like tree with /etc/passwd and
        /var/www/index.html)."""
        image = build_image(config, layers, files)
        image = self.images.add(ref, image)
        return image.id

    def script_exec(
        self,
        container: str = "*",
        cmd: str | list[str] | Callable[[list[str]], bool] = "*",
        *,
        exit_code: int = 0,
        stdout: bytes | str = b"",
        stderr: bytes | str = b"",
        times: int | None = None,
    ) -> ExecScript:
        """Answer execs in containers named like ``container`` whose command
        matches ``cmd`` (a glob over the joined argv, an exact argv list, or
        a predicate) with this result instead of simulating them."""
        script = ExecScript(
            container,
            cmd,
            exit_code,
            stdout.encode() if isinstance(stdout, str) else stdout,
            stderr.encode() if isinstance(stderr, str) else stderr,
            times,
        )
        self.exec_scripts.insert(0, script)
        return script

    def down(self, *, stop_containers: bool = False) -> None:
        """Take the engine down: every call raises ``EngineUnavailable`` and
        open event streams break until :meth:`up`. With ``stop_containers``
        running containers die as in a daemon shutdown without live-restore."""
        self._down = True
        self.bus.drop_all()
        if stop_containers:
            for c in list(self.containers.values()):
                if c.running:
                    code = self._term_code(c, 15)
                    self._terminate(c, 137 if code is None else code)

    def up(self) -> None:
        self._down = False

    @property
    def is_down(self) -> bool:
        return self._down

    def exit_container(
        self,
        ref: str,
        exit_code: int = 0,
        *,
        stdout: Iterable[str] = (),
        stderr: Iterable[str] = (),
        oom: bool = False,
    ) -> None:
        """Make a running container exit now, as if its program ended (or it
        was OOM-killed: exit 137, ``State.OOMKilled``)."""
        c = self._container(ref)
        for line in stdout:
            c.log("stdout", (line if line.endswith("\n") else line + "\n").encode())
        for line in stderr:
            c.log("stderr", (line if line.endswith("\n") else line + "\n").encode())
        if c.running:
            self._terminate(c, 137 if oom else exit_code, oom=oom)

    def add_file(self, ref: str, path: str, data: bytes | str) -> None:
        """Write a file into a container (as ``put_archive`` would)."""
        c = self._container(ref)
        c.fs.write(norm(path), data.encode() if isinstance(data, str) else data)

    @property
    def live_tasks(self) -> list[asyncio.Task]:
        """Background tasks still running (none after ``close()``)."""
        return [t for t in self._tasks if not t.done()]

    # -- plumbing -----------------------------------------------------------------------
    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed() and self.live_tasks:
            raise RuntimeError("this FakeDocker is in use on another event loop")
        self._loop = loop
        for c in self.containers.values():
            c._exited = None
        self._pulls.clear()

    async def _enter(self, op: str, **args: Any) -> None:
        self._bind_loop()
        self.calls.record(op, args)
        if self._closed:
            raise EngineUnavailable(f"the fake engine at {self.base_url} is closed")
        self._check_up()
        await self.faults.apply(op, args)
        self._check_up()
        await asyncio.sleep(self.latency)

    def _check_up(self) -> None:
        if self._down:
            raise EngineUnavailable(
                f"cannot reach the engine at {self.base_url}: Cannot connect to the Docker daemon. "
                "Is the docker daemon running?"
            )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _container(self, ref: str) -> Container:
        if ref in self.containers:
            return self.containers[ref]
        name = "/" + ref.lstrip("/")
        for c in self.containers.values():
            if c.name == name:
                return c
        if ref:
            found = [c for cid, c in self.containers.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
        raise NotFound(f"No such container: {ref}")

    # -- engine ---------------------------------------------------------------------------
    async def version(self) -> dict:
        await self._enter("version")
        details = {
            "ApiVersion": API_VERSION,
            "Arch": "amd64",
            "BuildTime": "2023-01-01T00:00:00.000000000+00:00",
            "Experimental": "false",
            "GitCommit": "fakedocker",
            "GoVersion": "go1.19.8",
            "KernelVersion": os.uname().release,
            "MinAPIVersion": "1.12",
            "Os": "linux",
        }
        return {
            "Platform": {"Name": "fakedocker"},
            "Components": [{"Name": "Engine", "Version": self.version_string, "Details": details}],
            "Version": self.version_string,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "GitCommit": "fakedocker",
            "GoVersion": "go1.19.8",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": os.uname().release,
            "BuildTime": details["BuildTime"],
        }

    async def ping(self) -> bool:
        await self._enter("ping")
        return True

    async def info(self) -> dict:
        await self._enter("info")
        states = [c.status for c in self.containers.values()]
        return {
            "ID": self._id[:36],
            "Containers": len(states),
            "ContainersRunning": sum(s == "running" for s in states),
            "ContainersPaused": sum(s == "paused" for s in states),
            "ContainersStopped": sum(s not in ("running", "paused") for s in states),
            "Images": len(self.images.by_id),
            "Driver": "overlay2",
            "DockerRootDir": "/var/lib/docker",
            "Name": "fakedocker",
            "ServerVersion": self.version_string,
            "OperatingSystem": "fakedocker (in memory)",
            "OSType": "linux",
            "Architecture": "x86_64",
            "KernelVersion": os.uname().release,
            "NCPU": os.cpu_count() or 1,
            "MemTotal": 8 * 1024**3,
            "DefaultRuntime": "runc",
            "InitBinary": "docker-init",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2",
            "Labels": [],
            "Swarm": self.swarm.info(),
        }

    # -- images ---------------------------------------------------------------------------
    async def inspect_image(self, ref: str) -> dict:
        await self._enter("inspect_image", ref=ref)
        return self.images.get(ref).inspect()

    async def list_images(self, *, name: str | None = None, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_images", name=name, filters=filters)
        return self.images.listing(name, filters)

    async def tag_image(self, ref: str, repository: str, tag: str | None = None) -> None:
        await self._enter("tag_image", ref=ref, repository=repository, tag=tag)
        image = self.images.find(ref)
        if image is None:
            raise NotFound(f"No such image: {ref}")
        target = f"{repository}:{tag or 'latest'}"
        self.images.tag(image, target)
        self.bus.publish("image", "tag", image.id, {"name": target})

    async def remove_image(self, ref: str, force: bool = False) -> None:
        await self._enter("remove_image", ref=ref, force=force)
        image = self.images.find(ref)
        if image is None:
            raise NotFound(f"No such image: {ref}")
        by_tag = normalize_ref(ref) in self.images.tags and self.images.tags[normalize_ref(ref)] == image.id
        users = [(c.id, c.running) for c in self.containers.values() if c.image.id == image.id]
        check_removable(image, ref, users, force, by_id=not by_tag)
        if by_tag:
            self.images.untag(ref)
            self.bus.publish("image", "untag", image.id, {"name": normalize_ref(ref)})
            if image.tags or users:
                return
        self.images.delete(image)
        self.bus.publish("image", "delete", image.id, {"name": image.id})

    def pull_image(self, ref: str) -> AsyncIterator[PullEvent]:
        return self._pull(ref)

    async def _pull(self, ref: str) -> AsyncIterator[PullEvent]:
        await self._enter("pull_image", ref=ref)
        key = normalize_ref(ref)
        job = self._pulls.get(key)
        if job is None:
            entry = self.registry.lookup(ref)
            job = PullJob()
            self._pulls[key] = job
            job.task = self._spawn(self._run_pull(key, ref, entry, job))
        async for event in job.follow():
            yield event

    async def _run_pull(self, key: str, ref: str, entry: Any, job: PullJob) -> None:
        try:
            image = await run_pull(
                ref if "@" in ref else key,
                entry,
                self.images,
                self.registry.speed,
                job.add,
                self.registry.take_failure(key),
                lambda: self._down,
            )
        except asyncio.CancelledError:
            job.finish(EngineUnavailable("the pull was cancelled: the fake engine closed"))
            raise
        except ConnectionError as e:
            job.finish(EngineUnavailable(f"cannot reach the engine at {self.base_url}: {e}"))
        except EngineError as e:
            job.finish(e)
        except Exception as e:  # noqa: BLE001 - an injected failure of any kind
            job.finish(EngineError(str(e), 500))
        else:
            self.bus.publish("image", "pull", key, {"name": key.rsplit(":", 1)[0]})
            job.add(PullEvent(status="complete", image_id=image.id, raw={}))
            job.finish(None)
        finally:
            if self._pulls.get(key) is job:
                del self._pulls[key]

    # -- volumes ---------------------------------------------------------------------------------
    def _volume_users(self, name: str) -> list[str]:
        return [c.id for c in self.containers.values() if any(m.get("Name") == name for m in c.mounts)]

    async def create_volume(
        self,
        name: str,
        *,
        driver: str | None = None,
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        await self._enter("create_volume", name=name, driver=driver, driver_opts=driver_opts, labels=labels)
        vol, created = self.volumes.create(name, driver=driver, driver_opts=driver_opts, labels=labels)
        if created:
            self.bus.publish("volume", "create", vol.name, {"driver": vol.driver})
        return vol.inspect()

    async def inspect_volume(self, name: str) -> dict:
        await self._enter("inspect_volume", name=name)
        return self.volumes.get(name).inspect()

    async def list_volumes(self, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_volumes", filters=copy.deepcopy(filters))
        wanted = normalize_filters(filters)
        check_filters("volumes", wanted)
        return [
            v.inspect()
            for v in self.volumes.by_name.values()
            if self.volumes.matches(v, wanted, in_use=bool(self._volume_users(v.name)))
        ]

    async def remove_volume(self, name: str, force: bool = False) -> None:
        await self._enter("remove_volume", name=name, force=force)
        vol = self.volumes.by_name.get(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        users = self._volume_users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        del self.volumes.by_name[name]
        self.bus.publish("volume", "destroy", name, {"driver": vol.driver})

    # -- networks --------------------------------------------------------------------------------
    async def create_network(
        self,
        name: str,
        *,
        driver: str | None = None,
        labels: dict[str, str] | None = None,
        internal: bool = False,
        attachable: bool = False,
    ) -> str:
        await self._enter(
            "create_network",
            name=name,
            driver=driver,
            labels=labels,
            internal=internal,
            attachable=attachable,
        )
        net = self.networks.create(
            name,
            driver=driver,
            labels=labels,
            internal=internal,
            attachable=attachable,
            swarm_active=self.swarm.active,
        )
        self.bus.publish("network", "create", net.id, {"name": net.name, "type": net.driver})
        return net.id

    def _container_names(self) -> dict[str, str]:
        return {cid: c.bare_name for cid, c in self.containers.items()}

    async def inspect_network(self, ref: str) -> dict:
        await self._enter("inspect_network", ref=ref)
        return self.networks.get(ref).inspect(self._container_names())

    async def list_networks(
        self, *, names: list[str] | None = None, filters: dict[str, Any] | None = None
    ) -> list[dict]:
        await self._enter("list_networks", names=names, filters=copy.deepcopy(filters))
        wanted = normalize_filters(filters)
        check_filters("networks", wanted)
        if names:
            wanted.setdefault("name", []).extend(names)
        names_map = self._container_names()
        return [
            n.inspect(names_map) for n in self.networks.by_id.values() if self.networks.matches(n, wanted)
        ]

    async def remove_network(self, ref: str) -> None:
        await self._enter("remove_network", ref=ref)
        net = self.networks.get(ref)
        if net.predefined:
            raise EngineError(f"{net.name} is a pre-defined network and cannot be removed", 403)
        if net.endpoints:
            raise EngineError(
                f"error while removing network: network {net.name} id {net.id} has active endpoints", 403
            )
        del self.networks.by_id[net.id]
        self.bus.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})

    async def connect_network(
        self, network: str, container: str, *, aliases: list[str] | None = None
    ) -> None:
        await self._enter("connect_network", network=network, container=container, aliases=aliases)
        c = self._container(container)
        net = self.networks.find(network)
        if net is None:
            if c.running:
                raise error_500(
                    f"Could not attach to network {network}: rpc error: code = NotFound desc = network {network} not found"
                )
            # The engine only records the endpoint of a stopped container; a
            # missing network fails its next start.
            if network in c.networks:
                raise EngineError(
                    f"endpoint with name {c.bare_name} already exists in network {network}", 403
                )
            c.networks[network] = empty_endpoint(list(aliases) if aliases else None)
            return
        mode = c.host_config.get("NetworkMode") or "default"
        if mode in ("host", "none") or net.name in ("host", "none"):
            raise EngineError(
                "container cannot be disconnected from host network or connected to host network", 400
            )
        if net.name in c.networks or net.id in c.networks:
            raise EngineError(f"endpoint with name {c.bare_name} already exists in network {net.name}", 403)
        if aliases and net.predefined:
            raise EngineError(
                "network-scoped alias is supported only for containers in user defined networks", 400
            )
        ep = empty_endpoint(list(aliases) if aliases else None)
        c.networks[net.name] = ep
        if c.running:
            self._attach(c, net.name, net)
        elif not net.predefined:
            ep["Aliases"] = list(aliases or []) + [c.short_id]

    async def disconnect_network(self, network: str, container: str, *, force: bool = False) -> None:
        await self._enter("disconnect_network", network=network, container=container, force=force)
        c = self._container(container)
        net = self.networks.find(network)
        key = net.name if net is not None and net.name in c.networks else network
        if key not in c.networks:
            if net is None:
                raise NotFound(f"network {network} not found")
            raise error_500(f"container {c.id} is not connected to network {net.name}")
        self._detach(c, key)
        del c.networks[key]

    # -- swarm -------------------------------------------------------------------------------------
    async def create_service(self, spec: dict) -> str:
        await self._enter("create_service", name=spec.get("Name"), spec=copy.deepcopy(spec))
        return self.swarm.create(copy.deepcopy(spec)).id

    async def inspect_service(self, ref: str) -> dict:
        await self._enter("inspect_service", ref=ref)
        return self.swarm.render_service(self.swarm.get(ref))

    async def update_service(self, ref: str, version: int, spec: dict) -> None:
        await self._enter("update_service", ref=ref, version=version, spec=copy.deepcopy(spec))
        self.swarm.update(ref, version, copy.deepcopy(spec))

    async def remove_service(self, ref: str) -> None:
        await self._enter("remove_service", ref=ref)
        self.swarm.remove(ref)

    async def list_services(self, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_services", filters=copy.deepcopy(filters))
        return self.swarm.list_services(filters)

    async def list_tasks(self, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_tasks", filters=copy.deepcopy(filters))
        return self.swarm.list_tasks(filters)

    async def list_nodes(self, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_nodes", filters=copy.deepcopy(filters))
        return self.swarm.list_nodes(filters)

    async def inspect_node(self, ref: str) -> dict:
        await self._enter("inspect_node", ref=ref)
        return self.swarm.inspect_node(ref)

    async def _swarm_prepare_image(self, ref: str) -> str | None:
        """None when the task image is present (pulling it from the fake
        registry if needed), else the task's ``Err``."""
        if self.images.find(ref) is not None:
            return None
        try:
            entry = self.registry.lookup(ref)
        except NotFound:
            return f"No such image: {normalize_ref(ref) if '@' not in ref else ref}"
        try:
            await run_pull(
                normalize_ref(ref) if "@" not in ref else ref,
                entry,
                self.images,
                self.registry.speed,
                lambda ev: None,
                None,
                lambda: self._down,
            )
        except (EngineError, ConnectionError) as e:
            return str(e)
        return None

    async def _swarm_start_container(self, svc: Service, task: Task) -> str:
        cs = task.spec.get("ContainerSpec") or {}
        resources = (task.spec.get("Resources") or {}).get("Limits") or {}
        labels = dict(cs.get("Labels") or {})
        task_name = f"{svc.name}.{task.slot}.{task.id}"
        labels.update(
            {
                "com.docker.swarm.node.id": task.node_id or self.swarm.node_id,
                "com.docker.swarm.service.id": svc.id,
                "com.docker.swarm.service.name": svc.name,
                "com.docker.swarm.task": "",
                "com.docker.swarm.task.id": task.id,
                "com.docker.swarm.task.name": task_name,
            }
        )
        host_config: dict[str, Any] = {
            "Init": cs.get("Init"),
            "Mounts": cs.get("Mounts"),
            "Memory": resources.get("MemoryBytes", 0),
            "NanoCpus": resources.get("NanoCPUs", 0),
            "NetworkMode": "default",
        }
        port_bindings: dict[str, list[dict[str, str]]] = {}
        exposed: dict[str, dict] = {}
        for p in ((svc.spec.get("EndpointSpec") or {}).get("Ports")) or []:
            key = f"{p.get('TargetPort')}/{p.get('Protocol', 'tcp')}"
            exposed[key] = {}
            port_bindings[key] = [{"HostIp": "", "HostPort": str(p.get("PublishedPort") or "")}]
        host_config["PortBindings"] = port_bindings
        body: dict[str, Any] = {
            "Image": cs.get("Image"),
            "Entrypoint": cs.get("Command"),
            "Cmd": cs.get("Args"),
            "Env": cs.get("Env"),
            "Labels": labels,
            "User": cs.get("User"),
            "WorkingDir": cs.get("Dir"),
            "Hostname": cs.get("Hostname"),
            "ExposedPorts": exposed or None,
            "StopSignal": cs.get("StopSignal"),
            "HostConfig": host_config,
        }
        if self.images.find(body["Image"]) is None:
            raise EngineError(f"No such image: {body['Image']}", 404)
        cid = self._create_from_body(task_name, body)
        c = self.containers[cid]
        for net in (task.spec.get("Networks") or []) + (svc.spec.get("Networks") or []):
            target = net.get("Target") if isinstance(net, dict) else net
            found = self.networks.find(target) if target else None
            if found is not None and found.name not in c.networks:
                c.networks[found.name] = empty_endpoint(net.get("Aliases") if isinstance(net, dict) else None)
        await self._start(c)
        task.ports = []
        for key, bindings in c.ports.items():
            for b in bindings or []:
                port, _, proto = key.partition("/")
                task.ports.append(
                    {
                        "Protocol": proto,
                        "TargetPort": int(port),
                        "PublishedPort": int(b["HostPort"]),
                        "PublishMode": "host",
                    }
                )
        task.attachments = []
        for net_name, ep in c.networks.items():
            net = self.networks.find(net_name)
            if net is not None and not net.predefined and ep.get("IPAddress"):
                task.attachments.append(
                    {
                        "Network": {
                            "ID": net.id,
                            "Spec": {
                                "Name": net.name,
                                "Labels": dict(net.labels),
                                "DriverConfiguration": {"Name": net.driver},
                                "Scope": net.scope,
                            },
                        },
                        "Addresses": [f"{ep['IPAddress']}/{ep['IPPrefixLen']}"],
                    }
                )
        return cid

    async def _swarm_fail_container(self, cid: str) -> None:
        c = self.containers.get(cid)
        if c is not None and c.running:
            self._terminate(c, 1)

    # -- events ------------------------------------------------------------------------------------
    def events(
        self, *, filters: dict[str, Any] | None = None, since: float | None = None
    ) -> AsyncIterator[dict]:
        return self._events(filters, since)

    async def _events(self, filters: dict[str, Any] | None, since: float | None) -> AsyncIterator[dict]:
        await self._enter("events", filters=copy.deepcopy(filters), since=since)
        async for event in self.bus.subscribe(filters, since, lambda: self._down):
            yield copy.deepcopy(event)

    # -- lifecycle -----------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop every simulated program, process, responder, pull and event
        stream. Idempotent; afterwards every call raises ``EngineUnavailable``."""
        if self._closed:
            return
        self._closed = True
        self.bus.close()
        procs = [c.process for c in self.containers.values() if c.process is not None and c.running]
        if procs:
            await asyncio.gather(*(p.terminate(2.0) for p in procs), return_exceptions=True)
        conns: list[asyncio.Task] = []
        for c in self.containers.values():
            for proxy in c.proxies:
                conns += proxy.connections
                proxy.close()
            c.proxies = []
        if conns:
            await asyncio.gather(*conns, return_exceptions=True)
        for _ in range(5):
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._ports.release_all()

    async def __aenter__(self) -> FakeDocker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
