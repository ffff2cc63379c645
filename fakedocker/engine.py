"""``FakeDocker``: the in-memory engine behind the Docker client protocol.

All state lives on one event loop; every protocol call records itself,
honours ``down()`` and injected faults, then acts on plain Python objects
without awaiting in the middle of a state change, so many concurrent spawns
see the same atomicity the engine gives them.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import ipaddress
import itertools
import os
import posixpath
import random
import re
import shlex
import signal as _signal
import tarfile
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Coroutine, Iterable

from dockerspawner.engine.protocol import (
    Conflict,
    ContainerSpec,
    EngineError,
    EngineUnavailable,
    ExecResult,
    NotFound,
    PullEvent,
)
from dockerspawner.engine.wire import API_VERSION, create_body

from ._util import (
    VALID_NAME,
    env_dict,
    error_500,
    labels_match,
    new_id,
    normalize_filters,
    normalize_ref,
    now_ns,
)
from .containers import Container, empty_endpoint, fill_host_config, merge_config
from .events import EventBus
from .faults import ContainerFault, Faults
from .fs import ContainerFS, FileStore, HostStore, norm
from .http import PortProxy
from .images import Image, ImageStore, PullJob, Registry, build_image, check_removable, run_pull
from .networks import Network, Networks, mac_for
from .ports import PortAllocator
from .processes import LocalProcess, host_executable, is_singleuser, rewrite_singleuser
from .programs import APPLETS, IGNORE, Proc, Program, Programs, run_forever, singleuser_address
from .recording import CallLog
from .swarm import Service, Swarm, Task
from .volumes import Volume, Volumes

__all__ = ["FakeDocker", "ExecScript"]

ENGINE_VERSION = "20.10.24"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ADJECTIVES = ("admiring", "brave", "clever", "dreamy", "eager", "focused", "gentle", "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "tender", "vibrant", "wizardly", "youthful", "zealous")
_NAMES = ("albattani", "babbage", "curie", "darwin", "euclid", "fermi", "galileo", "hopper", "jennings", "kepler", "lovelace", "mayer", "noether", "pascal", "ritchie", "shannon", "turing", "wilson", "yonath", "zhukovsky")

_SIGNALS = {name[3:]: int(value) for name, value in _signal.Signals.__members__.items() if name.startswith("SIG") and not name.startswith("SIG_")}


def _signal_number(sig: str | int | None) -> int:
    if sig is None:
        return 9
    if isinstance(sig, int):
        return sig
    text = str(sig).upper()
    if text.isdigit():
        return int(text)
    text = text[3:] if text.startswith("SIG") else text
    if text not in _SIGNALS:
        raise EngineError(f"Invalid signal: {sig}", 400)
    return _SIGNALS[text]


@dataclass
class ExecScript:
    """A scripted exec answer (``fake.script_exec``)."""

    container: str
    cmd: str | list[str] | Callable[[list[str]], bool]
    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    remaining: int | None = None

    def matches(self, container: Container, argv: list[str]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if not (fnmatch.fnmatchcase(container.bare_name, self.container) or container.id.startswith(self.container)):
            return False
        if callable(self.cmd):
            return bool(self.cmd(argv))
        if isinstance(self.cmd, list):
            return list(self.cmd) == argv
        return fnmatch.fnmatchcase(" ".join(argv), self.cmd)


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class FakeDocker:
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

    No IO happens here; the fake binds to the event loop of its first call.
    """

    engine_kind = "fake"

    def __deepcopy__(self, memo: dict) -> "FakeDocker":
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
    ) -> None:
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
        self.processes: bool | frozenset[str] = processes if isinstance(processes, bool) else frozenset(processes)
        self.process_env = dict(process_env or {})
        self.default_stop_timeout = default_stop_timeout
        self.latency = latency
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
                    self._terminate(c, self._term_code(c, 15) if self._term_code(c, 15) is not None else 137)

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
            if c.process is not None:
                c.process.send(_signal.SIGKILL)
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

    # -- containers: create -----------------------------------------------------------------
    async def create_container(self, spec: ContainerSpec) -> str:
        await self._enter("create_container", name=spec.get("name"), image=spec.get("image"), spec=copy.deepcopy(dict(spec)))
        name, body = create_body(spec)
        return self._create_from_body(name, body)

    def _create_from_body(self, name: str | None, body: dict[str, Any]) -> str:
        image_ref = body.get("Image") or ""
        if name is not None and not VALID_NAME.match(name):
            raise EngineError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 400)
        image = self.images.find(image_ref)
        if image is None:
            raise NotFound(f"No such image: {normalize_ref(image_ref)}")
        cid = new_id()
        config = merge_config(body, image, cid)
        argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        if not argv:
            raise EngineError("No command specified", 400)
        if name:
            full = "/" + name.lstrip("/")
            holder = next((c for c in self.containers.values() if c.name == full), None)
            if holder is not None:
                raise Conflict(
                    f'Conflict. The container name "{full}" is already in use by container "{holder.id}". '
                    "You have to remove (or rename) that container to be able to reuse that name."
                )
        else:
            full = "/" + self._random_name()
        host_config = fill_host_config(body.get("HostConfig"))
        fs = ContainerFS(image.files, image.dirs)
        mounts, created_volumes = self._mounts(host_config, config, fs)
        container = Container(
            id=cid,
            name=full,
            created_ns=now_ns(),
            image=image,
            image_ref=image_ref,
            config=config,
            host_config=host_config,
            path=argv[0],
            args=argv[1:],
            fs=fs,
            mounts=mounts,
            networks=self._initial_networks(host_config, body.get("NetworkingConfig")),
        )
        if config.get("WorkingDir"):
            fs.mkdir(norm(config["WorkingDir"]))
        self.containers[cid] = container
        for vol in created_volumes:
            self.bus.publish("volume", "create", vol.name, {"driver": vol.driver})
        self.bus.publish("container", "create", cid, container.event_attributes())
        return cid

    def _random_name(self) -> str:
        taken = {c.name for c in self.containers.values()}
        for _ in range(100):
            name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
            if "/" + name not in taken:
                return name
        return f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}{random.randint(0, 9999)}"

    def _initial_networks(self, hc: dict[str, Any], networking: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        mode = hc.get("NetworkMode") or "default"
        nets: dict[str, dict[str, Any]] = {}
        if mode.startswith("container:"):
            return nets
        primary = "bridge" if mode == "default" else mode
        endpoints = dict((networking or {}).get("EndpointsConfig") or {})
        conf = endpoints.pop(primary, None) or {}
        nets[primary] = empty_endpoint(conf.get("Aliases"), conf.get("IPAMConfig"))
        for net_name, conf in endpoints.items():
            conf = conf or {}
            nets[net_name] = empty_endpoint(conf.get("Aliases"), conf.get("IPAMConfig"))
        return nets

    def _volume_for(self, name: str | None, created: list[Volume], anonymous: bool = False) -> Volume:
        vol, made = self.volumes.create(name or new_id(), anonymous=anonymous or not name)
        if made:
            created.append(vol)
        return vol

    def _mounts(self, hc: dict[str, Any], config: dict[str, Any], fs: ContainerFS) -> tuple[list[dict], list[Volume]]:
        mounts: list[dict[str, Any]] = []
        created: list[Volume] = []
        stores: list[tuple[str, FileStore]] = []
        for bind in hc.get("Binds") or []:
            parts = bind.split(":")
            if len(parts) < 2:
                raise EngineError(f"invalid volume specification: '{bind}'", 400)
            src, dst = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else ""
            rw = "ro" not in mode.split(",")
            if src.startswith("/"):
                store = self._bind_stores.setdefault(src, HostStore(src))
                mounts.append({"Type": "bind", "Source": src, "Destination": dst, "Mode": mode, "RW": rw, "Propagation": "rprivate"})
                stores.append((dst, store))
            else:
                vol = self._volume_for(src, created)
                mounts.append({"Type": "volume", "Name": vol.name, "Source": f"/var/lib/docker/volumes/{vol.name}/_data", "Destination": dst, "Driver": vol.driver, "Mode": mode, "RW": rw, "Propagation": ""})
                stores.append((dst, vol.store))
        for m in hc.get("Mounts") or []:
            kind = m.get("Type") or "volume"
            dst = m.get("Target") or ""
            src = m.get("Source")
            rw = not m.get("ReadOnly")
            if kind == "bind":
                if not src or not os.path.exists(src):
                    raise EngineError(f'invalid mount config for type "bind": bind source path does not exist: {src}', 400)
                store = self._bind_stores.setdefault(src, HostStore(src))
                mounts.append({"Type": "bind", "Source": src, "Destination": dst, "Mode": "", "RW": rw, "Propagation": "rprivate"})
                stores.append((dst, store))
            elif kind == "tmpfs":
                mounts.append({"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": "", "RW": rw, "Propagation": ""})
                stores.append((dst, FileStore()))
            else:
                vol = self._volume_for(src, created)
                mounts.append({"Type": "volume", "Name": vol.name, "Source": f"/var/lib/docker/volumes/{vol.name}/_data", "Destination": dst, "Driver": vol.driver, "Mode": "z", "RW": rw, "Propagation": ""})
                stores.append((dst, vol.store))
        covered = {m["Destination"] for m in mounts}
        for dst in config.get("Volumes") or {}:
            if dst not in covered:
                vol = self._volume_for(None, created, anonymous=True)
                mounts.append({"Type": "volume", "Name": vol.name, "Source": f"/var/lib/docker/volumes/{vol.name}/_data", "Destination": dst, "Driver": "local", "Mode": "", "RW": True, "Propagation": ""})
                stores.append((dst, vol.store))
        for dst, store in stores:
            fs.mount(dst, store)
        return mounts, created

    # -- containers: start ---------------------------------------------------------------
    async def start_container(self, ref: str) -> None:
        await self._enter("start_container", ref=ref)
        c = self._container(ref)
        if c.running:
            return
        if c.status in ("removing", "dead"):
            raise Conflict(f"container {c.id} is marked for removal and cannot be started")
        await self._start(c)

    def _fail_start(self, c: Container, message: str, status: int = 500, code: int = 128) -> Exception:
        c.error = message
        c.exit_code = code
        return error_500(message) if status == 500 else EngineError(message, status)

    def _runs_as_process(self, argv: list[str]) -> bool:
        if not self.processes or not argv:
            return False
        name = posixpath.basename(argv[0])
        if isinstance(self.processes, frozenset):
            if name not in self.processes and argv[0] not in self.processes:
                return False
        elif name in APPLETS:
            return False
        return host_executable(argv[0]) is not None

    def _runtime_env(self, c: Container, user: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment a program sees: what the engine adds at run time
        (PATH when the image sets none, HOSTNAME, HOME of the user) plus
        Config.Env."""
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": c.config.get("Hostname") or c.short_id}
        env.update(env_dict(c.config.get("Env")))
        env.update(extra or {})
        if "HOME" not in env:
            name = (user or "root").split(":", 1)[0]
            home = "/"
            for line in (c.fs.read("/etc/passwd") or b"").decode(errors="replace").splitlines():
                fields = line.split(":")
                if len(fields) >= 6 and (fields[0] == name or fields[2] == name):
                    home = fields[5] or "/"
                    break
            env["HOME"] = home
        return env

    async def _start(self, c: Container) -> None:
        argv = [c.path] + list(c.args)
        env = env_dict(c.config.get("Env"))
        as_process = self._runs_as_process(argv)
        # Networks first: a missing one fails the start, as on the engine.
        mode = c.host_config.get("NetworkMode") or "default"
        attach: list[tuple[str, Network]] = []
        for net_name in c.networks:
            net = self.networks.find(net_name)
            if net is None:
                raise self._fail_start(c, f"Could not attach to network {net_name}: rpc error: code = NotFound desc = network {net_name} not found")
            attach.append((net_name, net))
        process_port: int | None = None
        if as_process and is_singleuser(argv):
            process_port = singleuser_address(argv, env)[1]
        try:
            proxies = self._publish(c, process_port)
        except EngineError as e:
            raise self._fail_start(c, e.explanation, e.status or 500) from None
        for proxy in proxies:
            await proxy.start()
        c.proxies = proxies
        c._exited = asyncio.Event()
        c.status = "running"
        c.pid = next(self._pids)
        c.started_ns = now_ns()
        c.exit_code = 0
        c.error = ""
        c.oom_killed = False
        c.stop_requested = False
        c.sandbox_id = new_id()
        for net_name, net in attach:
            self._attach(c, net_name, net)
        for m in c.mounts:
            if m["Type"] == "volume":
                self.bus.publish("volume", "mount", m["Name"], {"container": c.id, "destination": m["Destination"], "driver": m.get("Driver", "local"), "propagation": "", "read/write": str(m["RW"]).lower()})
        self.bus.publish("container", "start", c.id, c.event_attributes())
        fault = self.faults.container_fault_for(c.name)
        if as_process:
            await self._start_process(c, argv, env, process_port)
        else:
            c.task = self._spawn(self._run_main(c, argv, env))
        if fault is not None:
            self._spawn(self._apply_fault(c, fault, c.started_ns))

    def _publish(self, c: Container, process_port: int | None) -> list[PortProxy]:
        hc = c.host_config
        mode = hc.get("NetworkMode") or "default"
        c.ports = {}
        if mode in ("host", "none") or mode.startswith("container:"):
            return []
        bindings = hc.get("PortBindings") or {}
        keys = list(dict.fromkeys(list(c.config.get("ExposedPorts") or {}) + list(bindings)))
        proxies: list[PortProxy] = []
        try:
            for key in keys:
                port_s, _, proto = key.partition("/")
                private = int(port_s.split("-")[0])
                wanted = bindings.get(key)
                if not wanted and hc.get("PublishAllPorts"):
                    wanted = [{"HostIp": "", "HostPort": ""}]
                if not wanted:
                    c.ports[key] = None
                    continue
                entries = []
                for b in wanted:
                    requested = int((b.get("HostPort") or "0").split("-")[0] or 0)
                    if process_port is not None and private == process_port and proto == "tcp" and not requested:
                        port = self._ports.reserve_free(endpoint=c.bare_name, container_id=c.id)
                    else:
                        sock = self._ports.bind(requested or None, endpoint=c.bare_name, container_id=c.id)
                        port = sock.getsockname()[1]
                        proxies.append(PortProxy(sock, lambda p=private: c.listeners.get(p)))
                    ip = b.get("HostIp") or ""
                    if ip:
                        entries.append({"HostIp": ip, "HostPort": str(port)})
                    else:
                        entries += [{"HostIp": "0.0.0.0", "HostPort": str(port)}, {"HostIp": "::", "HostPort": str(port)}]
                c.ports[key] = entries
        except EngineError:
            for proxy in proxies:
                proxy.sock.close()
            self._release_ports(c)
            raise
        return proxies

    def _release_ports(self, c: Container) -> None:
        for bindings in c.ports.values():
            for b in bindings or []:
                self._ports.release(int(b["HostPort"]))
        c.ports = {}

    def _attach(self, c: Container, net_name: str, net: Network) -> None:
        ep = c.networks[net_name]
        ep["NetworkID"] = net.id
        ep["EndpointID"] = new_id()
        if net.subnet is not None:
            wanted = (ep.get("IPAMConfig") or {}).get("IPv4Address")
            if wanted:
                net._used.add(int(ipaddress.IPv4Address(wanted)))
                ip, plen = wanted, net.subnet.prefixlen
            else:
                ip, plen = net.allocate_ip()
            ep.update(Gateway=net.gateway, IPAddress=ip, IPPrefixLen=plen, MacAddress=mac_for(ip))
        if not net.predefined:
            aliases = list(ep.get("Aliases") or [])
            if c.short_id not in aliases:
                aliases.append(c.short_id)
            ep["Aliases"] = aliases
        net.endpoints[c.id] = ep
        self.bus.publish("network", "connect", net.id, {"container": c.id, "name": net.name, "type": net.driver})

    def _detach(self, c: Container, net_name: str) -> None:
        ep = c.networks.get(net_name)
        net = self.networks.find(net_name)
        if ep is None:
            return
        if net is not None and c.id in net.endpoints:
            net.release_ip(ep.get("IPAddress", ""))
            del net.endpoints[c.id]
            self.bus.publish("network", "disconnect", net.id, {"container": c.id, "name": net.name, "type": net.driver})
        ep.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")

    async def _run_main(self, c: Container, argv: list[str], env: dict[str, str]) -> None:
        program, argv = self.programs.resolve(argv)
        if program is None:
            program = Program(run_forever, on_sigterm=143)
        c.sigterm[0] = program.on_sigterm
        proc = Proc(
            argv=argv,
            env=self._runtime_env(c, c.config.get("User") or ""),
            cwd=c.config.get("WorkingDir") or "/",
            user=c.config.get("User") or "",
            fs=c.fs,
            out=lambda data: c.log("stdout", data),
            err=lambda data: c.log("stderr", data),
            hostname=c.config.get("Hostname") or c.short_id,
            listen=lambda port, handler: c.listeners.__setitem__(port, handler),
            programs=self.programs,
            on_sigterm=c.sigterm,
        )
        started = c.started_ns
        try:
            code = await program.run(proc)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken simulated program exits like a crash
            c.log("stderr", f"fakedocker: {argv[0]} failed: {type(e).__name__}: {e}\n".encode())
            code = 1
        if c.running and c.started_ns == started:
            self._terminate(c, code & 0xFF)

    async def _start_process(self, c: Container, argv: list[str], env: dict[str, str], process_port: int | None) -> None:
        env = {**env, **self.process_env}
        if process_port is not None:
            bindings = c.ports.get(f"{process_port}/tcp") or []
            if bindings:
                host_port = int(bindings[0]["HostPort"])
            else:
                host_port = self._ports.reserve_free(endpoint=c.bare_name, container_id=c.id)
                c.ports.setdefault(f"{process_port}/tcp", None)
                c.process_port = host_port
            argv, env = rewrite_singleuser(argv, env, host_port)
        c.sigterm[0] = 0
        proc = LocalProcess(argv, env, c.log)
        try:
            await proc.start()
        except OSError as e:
            self._terminate(c, 127)
            c.error = f'exec: "{argv[0]}": {e}'
            return
        c.process = proc
        c.pid = proc.pid
        started = c.started_ns
        c.task = self._spawn(self._watch_process(c, proc, started))

    async def _watch_process(self, c: Container, proc: LocalProcess, started: int) -> None:
        code = await proc.wait()
        if c.running and c.started_ns == started:
            self._terminate(c, code)

    async def _apply_fault(self, c: Container, fault: ContainerFault, started: int) -> None:
        await asyncio.sleep(fault.after)
        if not (c.running and c.started_ns == started):
            return
        self.exit_container(c.id, fault.exit_code, stdout=fault.stdout, stderr=fault.stderr, oom=fault.oom)

    # -- containers: exit -----------------------------------------------------------------
    def _term_code(self, c: Container, sig: int) -> int | None:
        """What ``sig`` does to the container's PID 1: its exit code, or
        None when it ignores it (PID 1 without a handler; not with init)."""
        if sig == 9:
            return 137
        policy = c.sigterm[0]
        if c.process is not None:
            return 128 + sig
        if policy is not IGNORE:
            return policy if sig in (2, 15) else 128 + sig
        if c.host_config.get("Init"):
            return 128 + sig
        return None

    def _terminate(self, c: Container, code: int, *, oom: bool = False) -> None:
        """The one place where a running container stops running."""
        if not c.running:
            return
        c.status = "exited"
        c.exit_code = code
        c.oom_killed = oom
        c.pid = 0
        c.finished_ns = now_ns()
        c.listeners.clear()
        task = c.task
        c.task = None
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()
        proxies, c.proxies = c.proxies, []
        for proxy in proxies:
            proxy.close()
        self._release_ports(c)
        if c.process_port:
            self._ports.release(c.process_port)
            c.process_port = None
        for net_name in list(c.networks):
            self._detach(c, net_name)
        if oom:
            self.bus.publish("container", "oom", c.id, c.event_attributes())
        self.bus.publish("container", "die", c.id, c.event_attributes(exitCode=str(code)))
        c.exited.set()
        if c.host_config.get("AutoRemove") and not self._closed:
            if _current_task() is None:
                self._delete(c, volumes=True)
            else:
                self._spawn(self._auto_remove(c))

    async def _auto_remove(self, c: Container) -> None:
        await asyncio.sleep(0.01)
        if c.id in self.containers and not c.running:
            self._delete(c, volumes=True)

    def _delete(self, c: Container, volumes: bool) -> None:
        c.status = "removing"
        for net_name in list(c.networks):
            self._detach(c, net_name)
        del self.containers[c.id]
        if volumes:
            for m in c.mounts:
                vol = self.volumes.by_name.get(m.get("Name") or "")
                if vol is not None and vol.anonymous and not self._volume_users(vol.name):
                    del self.volumes.by_name[vol.name]
                    self.bus.publish("volume", "destroy", vol.name, {"driver": vol.driver})
        self.bus.publish("container", "destroy", c.id, c.event_attributes())

    async def _signal_and_wait(self, c: Container, sig: int, timeout: float) -> None:
        self.bus.publish("container", "kill", c.id, c.event_attributes(signal=str(sig)))
        if c.process is not None:
            c.process.send(sig)
            try:
                await asyncio.wait_for(asyncio.shield(c.exited.wait()), timeout)
            except asyncio.TimeoutError:
                pass
            if c.running:
                self.bus.publish("container", "kill", c.id, c.event_attributes(signal="9"))
                c.process.send(_signal.SIGKILL)
                await c.exited.wait()
            return
        code = self._term_code(c, sig)
        if code is not None:
            self._terminate(c, code)
            return
        try:
            await asyncio.wait_for(asyncio.shield(c.exited.wait()), timeout)
        except asyncio.TimeoutError:
            if c.running:
                self.bus.publish("container", "kill", c.id, c.event_attributes(signal="9"))
                self._terminate(c, 137)

    async def stop_container(self, ref: str, timeout: int | None = None) -> None:
        await self._enter("stop_container", ref=ref, timeout=timeout)
        c = self._container(ref)
        if not c.running:
            return
        await self._stop(c, timeout)

    async def _stop(self, c: Container, timeout: float | None) -> None:
        if timeout is None:
            timeout = c.config.get("StopTimeout")
        if timeout is None:
            timeout = self.default_stop_timeout
        c.stop_requested = True
        sig = _signal_number(c.config.get("StopSignal") or "SIGTERM")
        await self._signal_and_wait(c, sig, max(float(timeout), 0.0))
        self.bus.publish("container", "stop", c.id, c.event_attributes())

    async def kill_container(self, ref: str, signal: str | int | None = None) -> None:
        await self._enter("kill_container", ref=ref, signal=signal)
        c = self._container(ref)
        sig = _signal_number(signal)
        if not c.running:
            raise Conflict(f"Cannot kill container: {c.id}: Container {c.id} is not running")
        self.bus.publish("container", "kill", c.id, c.event_attributes(signal=str(sig)))
        if c.process is not None:
            c.process.send(sig)
            if sig == 9:
                await c.exited.wait()
            return
        code = self._term_code(c, sig)
        if code is not None:
            self._terminate(c, code)

    async def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        await self._enter("remove_container", ref=ref, force=force, volumes=volumes)
        c = self._container(ref)
        if c.status == "removing":
            raise Conflict(f"removal of container {c.id} is already in progress")
        if c.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. Stop the container before "
                    "attempting removal or force remove"
                )
            self.bus.publish("container", "kill", c.id, c.event_attributes(signal="9"))
            if c.process is not None:
                c.process.send(_signal.SIGKILL)
            self._terminate(c, 137)
        self._delete(c, volumes=volumes)

    async def wait_container(self, ref: str, timeout: float | None = None) -> int:
        await self._enter("wait_container", ref=ref, timeout=timeout)
        c = self._container(ref)
        if not c.running:
            return c.exit_code
        try:
            await asyncio.wait_for(asyncio.shield(c.exited.wait()), timeout)
        except asyncio.TimeoutError:
            raise EngineUnavailable(f"timed out after {timeout}s waiting for container {ref}") from None
        return c.exit_code

    async def _wait_exit(self, cid: str) -> int:
        c = self.containers.get(cid)
        if c is None:
            return 137
        await c.exited.wait()
        return c.exit_code

    async def _stop_and_remove(self, cid: str, timeout: float, remove: bool) -> None:
        c = self.containers.get(cid)
        if c is None:
            return
        if c.running:
            await self._stop(c, timeout)
        if remove and c.id in self.containers:
            self._delete(c, volumes=True)

    # -- containers: read ---------------------------------------------------------------------
    async def inspect_container(self, ref: str) -> dict:
        await self._enter("inspect_container", ref=ref)
        return self._container(ref).inspect()

    async def list_containers(self, *, all: bool = True, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_containers", all=all, filters=copy.deepcopy(filters))
        wanted = normalize_filters(filters)
        out = []
        for c in sorted(self.containers.values(), key=lambda c: c.created_ns, reverse=True):
            if not all and not c.running and "status" not in wanted:
                continue
            if self._container_matches(c, wanted):
                out.append(c.list_entry())
        return out

    def _container_matches(self, c: Container, wanted: dict[str, list[str]]) -> bool:
        for key, values in wanted.items():
            if key == "label":
                if not labels_match(c.labels, values):
                    return False
            elif key == "name":
                if not any(re.search(v, c.name) or re.search(v, c.bare_name) for v in values):
                    return False
            elif key == "id":
                if not any(c.id.startswith(v) for v in values):
                    return False
            elif key == "status":
                if c.status not in values:
                    return False
            elif key == "exited":
                if c.status != "exited" or str(c.exit_code) not in values:
                    return False
            elif key == "ancestor":
                if not any(self.images.find(v) is c.image or v == c.image_ref for v in values):
                    return False
            elif key == "network":
                if not any(v in c.networks or any(ep.get("NetworkID", "").startswith(v) for ep in c.networks.values() if ep.get("NetworkID")) for v in values):
                    return False
            elif key == "volume":
                if not any(m.get("Name") == v or m.get("Destination") == v for m in c.mounts for v in values):
                    return False
        return True

    async def container_logs(self, ref: str, *, tail: int | None = None, stdout: bool = True, stderr: bool = True) -> str:
        await self._enter("container_logs", ref=ref, tail=tail, stdout=stdout, stderr=stderr)
        c = self._container(ref)
        streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        text = b"".join(line.data for line in c.logs if line.stream in streams).decode("utf-8", errors="replace")
        if tail is None:
            return text
        if tail <= 0:
            return ""
        lines = text.splitlines(keepends=True)
        return "".join(lines[-tail:])

    async def port(self, ref: str, private_port: int | str, protocol: str = "tcp") -> list[dict]:
        await self._enter("port", ref=ref, private_port=private_port, protocol=protocol)
        c = self._container(ref)
        key = str(private_port)
        if "/" not in key:
            key = f"{key}/{protocol}"
        if not c.running:
            return []
        return copy.deepcopy(c.ports.get(key) or [])

    # -- exec and archives ---------------------------------------------------------------------
    async def exec_run(
        self,
        ref: str,
        cmd: list[str] | str,
        *,
        user: str | None = None,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ExecResult:
        await self._enter("exec_run", ref=ref, cmd=cmd, user=user, workdir=workdir, environment=environment)
        c = self._container(ref)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        if not argv:
            raise EngineError("No exec command specified", 400)
        exec_id = new_id()
        c.exec_ids.append(exec_id)
        shown = f"{argv[0]} {' '.join(argv[1:])}"
        self.bus.publish("container", f"exec_create: {shown}", c.id, c.event_attributes(execID=exec_id))
        self.bus.publish("container", f"exec_start: {shown}", c.id, c.event_attributes(execID=exec_id))
        try:
            code, out, err = await self._exec(c, argv, user, workdir, environment)
        finally:
            if exec_id in c.exec_ids:
                c.exec_ids.remove(exec_id)
        self.bus.publish("container", "exec_die", c.id, c.event_attributes(execID=exec_id, exitCode=str(code)))
        return ExecResult(exit_code=code, stdout=out, stderr=err)

    async def _exec(self, c: Container, argv: list[str], user: str | None, workdir: str | None, environment: dict[str, str] | None) -> tuple[int, bytes, bytes]:
        for script in self.exec_scripts:
            if script.matches(c, argv):
                if script.remaining is not None:
                    script.remaining -= 1
                return script.exit_code, script.stdout, script.stderr
        program, argv = self.programs.resolve(argv)
        if program is None:
            msg = (
                f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{argv[0]}": '
                "executable file not found in $PATH: unknown\r\n"
            )
            return 126, msg.encode(), b""
        out, err = bytearray(), bytearray()
        proc = Proc(
            argv=argv,
            env=self._runtime_env(c, user or c.config.get("User") or "", environment),
            cwd=norm(workdir or c.config.get("WorkingDir") or "/"),
            user=user or c.config.get("User") or "",
            fs=c.fs,
            out=out.extend,
            err=err.extend,
            hostname=c.config.get("Hostname") or c.short_id,
            listen=lambda port, handler: c.listeners.__setitem__(port, handler),
            programs=self.programs,
        )
        run = asyncio.ensure_future(program.run(proc))
        died = asyncio.ensure_future(c.exited.wait())
        try:
            done, _ = await asyncio.wait({run, died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            died.cancel()
        if run in done:
            try:
                code = run.result()
            except Exception as e:  # noqa: BLE001 - a broken simulated program
                err.extend(f"fakedocker: {argv[0]} failed: {e}\n".encode())
                code = 1
        else:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            code = 137
        return code & 0xFF, bytes(out), bytes(err)

    async def put_archive(self, ref: str, path: str, data: bytes) -> None:
        await self._enter("put_archive", ref=ref, path=path, size=len(data))
        c = self._container(ref)
        dest = norm(path)
        if not c.fs.is_dir(dest):
            if c.fs.read(dest) is not None:
                raise EngineError("extraction point is not a directory", 400)
            raise NotFound(f"Could not find the file {path} in container {c.id}")
        try:
            c.fs.extract(dest, data)
        except tarfile.TarError as e:
            raise EngineError(f"Error processing tar file: {e}", 500) from None
        self.bus.publish("container", "extract-to-dir", c.id, c.event_attributes())

    # -- volumes ---------------------------------------------------------------------------------
    def _volume_users(self, name: str) -> list[str]:
        return [c.id for c in self.containers.values() if any(m.get("Name") == name for m in c.mounts)]

    async def create_volume(self, name: str, *, driver: str | None = None, driver_opts: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict:
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
        return [
            v.inspect()
            for v in self.volumes.by_name.values()
            if self.volumes.matches(v, wanted, in_use=bool(self._volume_users(v.name)))
        ]

    async def remove_volume(self, name: str, force: bool = False) -> None:
        await self._enter("remove_volume", name=name, force=force)
        vol = self.volumes.by_name.get(name)
        if vol is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self._volume_users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        del self.volumes.by_name[name]
        self.bus.publish("volume", "destroy", name, {"driver": vol.driver})

    # -- networks --------------------------------------------------------------------------------
    async def create_network(self, name: str, *, driver: str | None = None, labels: dict[str, str] | None = None, internal: bool = False, attachable: bool = False) -> str:
        await self._enter("create_network", name=name, driver=driver, labels=labels, internal=internal, attachable=attachable)
        net = self.networks.create(name, driver=driver, labels=labels, internal=internal, attachable=attachable, swarm_active=self.swarm.active)
        self.bus.publish("network", "create", net.id, {"name": net.name, "type": net.driver})
        return net.id

    def _container_names(self) -> dict[str, str]:
        return {cid: c.bare_name for cid, c in self.containers.items()}

    async def inspect_network(self, ref: str) -> dict:
        await self._enter("inspect_network", ref=ref)
        return self.networks.get(ref).inspect(self._container_names())

    async def list_networks(self, *, names: list[str] | None = None, filters: dict[str, Any] | None = None) -> list[dict]:
        await self._enter("list_networks", names=names, filters=copy.deepcopy(filters))
        wanted = normalize_filters(filters)
        if names:
            wanted.setdefault("name", []).extend(names)
        names_map = self._container_names()
        return [n.inspect(names_map) for n in self.networks.by_id.values() if self.networks.matches(n, wanted)]

    async def remove_network(self, ref: str) -> None:
        await self._enter("remove_network", ref=ref)
        net = self.networks.get(ref)
        if net.predefined:
            raise EngineError(f"{net.name} is a pre-defined network and cannot be removed", 403)
        if net.endpoints:
            raise EngineError(f"error while removing network: network {net.name} id {net.id} has active endpoints", 403)
        del self.networks.by_id[net.id]
        self.bus.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})

    async def connect_network(self, network: str, container: str, *, aliases: list[str] | None = None) -> None:
        await self._enter("connect_network", network=network, container=container, aliases=aliases)
        c = self._container(container)
        net = self.networks.find(network)
        if net is None:
            if c.running:
                raise error_500(f"Could not attach to network {network}: rpc error: code = NotFound desc = network {network} not found")
            raise NotFound(f"network {network} not found")
        mode = c.host_config.get("NetworkMode") or "default"
        if mode in ("host", "none") or net.name in ("host", "none"):
            raise EngineError("container cannot be disconnected from host network or connected to host network", 400)
        if net.name in c.networks or net.id in c.networks:
            raise EngineError(f"endpoint with name {c.bare_name} already exists in network {net.name}", 403)
        if aliases and net.predefined:
            raise EngineError("network-scoped alias is supported only for containers in user defined networks", 400)
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
            await run_pull(normalize_ref(ref) if "@" not in ref else ref, entry, self.images, self.registry.speed, lambda ev: None, None, lambda: self._down)
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
                "com.docker.swarm.node.id": self.swarm.node_id,
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
            for b in (bindings or [])[:1]:
                port, _, proto = key.partition("/")
                task.ports.append({"Protocol": proto, "TargetPort": int(port), "PublishedPort": int(b["HostPort"]), "PublishMode": "host"})
        task.attachments = []
        for net_name, ep in c.networks.items():
            net = self.networks.find(net_name)
            if net is not None and not net.predefined and ep.get("IPAddress"):
                task.attachments.append(
                    {
                        "Network": {"ID": net.id, "Spec": {"Name": net.name, "Labels": dict(net.labels), "DriverConfiguration": {"Name": net.driver}, "Scope": net.scope}},
                        "Addresses": [f"{ep['IPAddress']}/{ep['IPPrefixLen']}"],
                    }
                )
        return cid

    async def _swarm_fail_container(self, cid: str) -> None:
        c = self.containers.get(cid)
        if c is not None and c.running:
            self._terminate(c, 1)

    # -- events ------------------------------------------------------------------------------------
    def events(self, *, filters: dict[str, Any] | None = None, since: float | None = None) -> AsyncIterator[dict]:
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

    async def __aenter__(self) -> "FakeDocker":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
