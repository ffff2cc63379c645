"""The container half of ``FakeDocker``: create, start, stop, kill, remove,
wait, inspect, list, logs, exec and archives, and the state machine behind
them (created -> running -> exited -> removing).

It is a mixin so that the engine facade stays readable; it uses the stores
``FakeDocker.__init__`` sets up (images, networks, volumes, ports, bus,
faults, programs)."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import os
import posixpath
import random
import re
import signal as _signal
from typing import Any

from dockerspawner.engine.protocol import (
    Conflict,
    ContainerSpec,
    EngineError,
    EngineUnavailable,
    NotFound,
)
from dockerspawner.engine.wire import create_body

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
from .images import ImageStore
from .networks import Network, Networks, mac_for
from .ports import PortAllocator
from .processes import LocalProcess, host_command, host_executable, is_singleuser, rewrite_singleuser
from .programs import (
    APPLETS,
    IGNORE,
    Proc,
    Program,
    Programs,
    run_forever,
    singleuser_address,
)
from .filters import check as check_filters
from .health import health_status, healthcheck_of, new_health, run_checks
from .restart import next_delay, should_restart
from .validation import create_error, device_error, env_error, executable_error, runtime_error
from .volumes import Volume, Volumes

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ADJECTIVES = (
    "admiring brave clever dreamy eager focused gentle happy jolly keen "
    "lucid modest nifty quirky serene tender vibrant wizardly youthful zealous"
).split()
_NAMES = (
    "albattani babbage curie darwin euclid fermi galileo hopper jennings kepler "
    "lovelace mayer noether pascal ritchie shannon turing wilson yonath zhukovsky"
).split()

_SIGNALS = {
    name[3:]: int(value)
    for name, value in _signal.Signals.__members__.items()
    if name.startswith("SIG") and not name.startswith("SIG_")
}


def _signal_number(sig: str | int | None) -> int:
    if sig is None:
        return 9
    if isinstance(sig, int):
        return sig
    text = str(sig).upper()
    if text.isdigit():
        return int(text)
    text = text.removeprefix("SIG")
    if text not in _SIGNALS:
        raise EngineError(f"Invalid signal: {sig}", 400)
    return _SIGNALS[text]


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class ContainerAPI:
    """Container calls of the protocol (mixed into ``FakeDocker``)."""

    # Set up by FakeDocker.__init__.
    images: ImageStore
    networks: Networks
    volumes: Volumes
    containers: dict[str, Container]
    programs: Programs
    faults: Faults
    bus: EventBus
    processes: bool | frozenset[str]
    process_env: dict[str, str]
    default_stop_timeout: float
    device_drivers: dict[str, frozenset[str]]
    unknown_commands: str
    _ports: PortAllocator
    _bind_stores: dict[str, HostStore]
    _closed: bool

    # -- containers: create -----------------------------------------------------------------
    async def create_container(self, spec: ContainerSpec) -> str:
        await self._enter(
            "create_container", name=spec.get("name"), image=spec.get("image"), spec=copy.deepcopy(dict(spec))
        )
        name, body = create_body(spec)
        return self._create_from_body(name, body)

    def _create_from_body(self, name: str | None, body: dict[str, Any]) -> str:
        image_ref = body.get("Image") or ""
        if name is not None and not VALID_NAME.match(name):
            raise EngineError(
                f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 400
            )
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
        refused = create_error(host_config) or env_error(body.get("Env") or [])
        if refused:
            raise EngineError(refused, 400)
        fs = ContainerFS(image.files, image.dirs, image.meta, read_only=bool(host_config.get("ReadonlyRootfs")))
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

    def _initial_networks(
        self, hc: dict[str, Any], networking: dict[str, Any] | None
    ) -> dict[str, dict[str, Any]]:
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

    def _volume_for(
        self, name: str | None, created: list[Volume], anonymous: bool = False, options: dict | None = None
    ) -> Volume:
        options = options or {}
        driver = options.get("DriverConfig") or {}
        vol, made = self.volumes.create(
            name or new_id(),
            anonymous=anonymous or not name,
            labels=options.get("Labels"),
            driver=driver.get("Name"),
            driver_opts=driver.get("Options"),
        )
        if made:
            created.append(vol)
        return vol

    def _mounts(
        self, hc: dict[str, Any], config: dict[str, Any], fs: ContainerFS
    ) -> tuple[list[dict], list[Volume]]:
        mounts: list[dict[str, Any]] = []
        created: list[Volume] = []
        stores: list[tuple[str, FileStore, bool, bool]] = []  # dest, store, rw, copy image content

        def bind(src: str, dst: str, mode: str, rw: bool) -> None:
            mounts.append(_mount_record("bind", src, dst, mode, rw, "rprivate"))
            stores.append((dst, self._bind_stores.setdefault(src, HostStore(src)), rw, False))

        def volume(
            name: str | None, dst: str, mode: str, rw: bool, anonymous: bool = False, options: dict | None = None
        ) -> None:
            vol = self._volume_for(name, created, anonymous=anonymous, options=options)
            record = _mount_record("volume", f"/var/lib/docker/volumes/{vol.name}/_data", dst, mode, rw, "")
            mounts.append({**record, "Name": vol.name, "Driver": vol.driver})
            nocopy = "nocopy" in mode.split(",") or bool((options or {}).get("NoCopy"))
            stores.append((dst, vol.store, rw, not nocopy))

        for spec in hc.get("Binds") or []:
            parts = spec.split(":")
            if len(parts) < 2:
                raise EngineError(f"invalid volume specification: '{spec}'", 400)
            src, dst = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else ""
            rw = "ro" not in mode.split(",")
            if src.startswith("/"):
                bind(src, dst, mode, rw)
            else:
                volume(src, dst, mode, rw)
        for m in hc.get("Mounts") or []:
            kind = m.get("Type") or "volume"
            dst = m.get("Target") or ""
            src = m.get("Source")
            rw = not m.get("ReadOnly")
            if kind == "bind":
                if not src or not os.path.exists(src):
                    raise EngineError(
                        f'invalid mount config for type "bind": bind source path does not exist: {src}', 400
                    )
                bind(src, dst, "", rw)
            elif kind == "tmpfs":
                mounts.append(_mount_record("tmpfs", "", dst, "", rw, ""))
                stores.append((dst, FileStore(), rw, False))
            else:
                volume(src, dst, "z", rw, options=m.get("VolumeOptions"))
        covered = {m["Destination"] for m in mounts}
        for dst in config.get("Volumes") or {}:
            if dst not in covered:
                volume(None, dst, "", True, anonymous=True)
        for dst, store, rw, copy_in in stores:
            fs.mount(dst, store, read_only=not rw, copy_in=copy_in)
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
        if status == 404:
            return NotFound(message)
        return error_500(message) if status == 500 else EngineError(message, status)

    def _command_known(self, c: Container, argv: list[str]) -> bool:
        """Whether the fake may run ``argv``: a simulated program, the image's
        own command (its author put it there), or a host process."""
        if self.unknown_commands == "run" or self.programs.resolve(list(argv))[0] is not None:
            return True
        img = c.image.config
        declared = {(img.get(k) or [None])[0] for k in ("Entrypoint", "Cmd")}
        return argv[0] in declared or self._runs_as_process(argv)

    def _refuse_start(self, c: Container, argv: list[str]) -> None:
        """What the engine and the runtime refuse before PID 1 runs."""
        mode = c.host_config.get("NetworkMode") or ""
        if mode.startswith("container:"):
            target = mode.split(":", 1)[1]
            try:
                self._container(target)
            except NotFound:
                raise self._fail_start(c, f"No such container: {target}", 404) from None
        refused = device_error(c.host_config.get("DeviceRequests"), self.device_drivers) or runtime_error(c.config)
        if refused:
            raise self._fail_start(c, refused)
        if c.host_config.get("Init"):
            return  # docker-init runs; it reports a missing program itself (_run_main)
        refused = self._missing_executable(c, argv)
        if refused:
            raise self._fail_start(c, refused, 400, 127)

    def _missing_executable(self, c: Container, argv: list[str]) -> str | None:
        return executable_error(
            argv[0],
            self._runtime_env(c, "").get("PATH", DEFAULT_PATH),
            lambda path: c.fs.read(path) is not None,
            lambda _name: self._command_known(c, argv),
        )

    def _runs_as_process(self, argv: list[str]) -> bool:
        if not self.processes or not argv:
            return False
        name = posixpath.basename(argv[0])
        if isinstance(self.processes, frozenset):
            singleuser = is_singleuser(argv) and "jupyterhub-singleuser" in self.processes
            if name not in self.processes and argv[0] not in self.processes and not singleuser:
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
        as_process = self._runs_as_process(host_command(argv))
        if as_process:
            argv = host_command(argv)
        # Networks first: a missing one fails the start, as on the engine.
        attach: list[tuple[str, Network]] = []
        for net_name in c.networks:
            net = self.networks.find(net_name)
            if net is None:
                raise self._fail_start(
                    c,
                    f"Could not attach to network {net_name}: rpc error: code = NotFound desc = network {net_name} not found",
                )
            attach.append((net_name, net))
        self._refuse_start(c, argv)
        user_error = self._check_user(c)
        if user_error:
            raise self._fail_start(c, user_error)
        process_port: int | None = None
        if as_process and is_singleuser(argv):
            process_port = singleuser_address(argv, env)[1]
        try:
            proxies = self._publish(c, process_port)
        except EngineError as e:
            raise self._fail_start(c, e.explanation, e.status or 500) from None
        # Everything up to here and the state change below happen in one
        # step of the loop, so two concurrent starts cannot both run it.
        c.proxies = proxies
        c.process = None
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
                self.bus.publish(
                    "volume",
                    "mount",
                    m["Name"],
                    {
                        "container": c.id,
                        "destination": m["Destination"],
                        "driver": m.get("Driver", "local"),
                        "propagation": "",
                        "read/write": str(m["RW"]).lower(),
                    },
                )
        self.bus.publish("container", "start", c.id, c.event_attributes())
        for proxy in proxies:
            await proxy.start()
        fault = self.faults.container_fault_for(c.name)
        if as_process:
            await self._start_process(c, argv, env, process_port)
        else:
            c.task = self._spawn(self._run_main(c, argv, env))
        if fault is not None:
            self._spawn(self._apply_fault(c, fault, c.started_ns))
        check = healthcheck_of(c.config)
        if check is not None:
            c.health = new_health()
            c.health_task = self._spawn(
                run_checks(
                    check,
                    c.health,
                    lambda argv: self._exec_with_events(c, argv),
                    lambda status: self.bus.publish(
                        "container", f"health_status: {status}", c.id, c.event_attributes()
                    ),
                )
            )

    @staticmethod
    def _check_user(c: Container, spec: str | None = None) -> str:
        """The engine resolves a named user (and group) in the container's
        /etc/passwd (/etc/group) at start and exec; numeric ids need no entry."""
        user, _, group = (c.config.get("User") or "" if spec is None else spec).partition(":")
        for name, path, what in ((user, "/etc/passwd", "user"), (group, "/etc/group", "group")):
            if not name or name.isdigit():
                continue
            names = {
                line.split(":", 1)[0]
                for line in (c.fs.read(path) or b"").decode(errors="replace").splitlines()
            }
            if name not in names:
                return f"unable to find {what} {name}: no matching entries in {what if what == 'group' else 'passwd'} file"
        return ""

    def _publish(self, c: Container, process_port: int | None) -> list[PortProxy]:
        hc = c.host_config
        mode = hc.get("NetworkMode") or "default"
        c.ports = {}
        if mode in ("host", "none") or mode.startswith("container:"):
            return []
        bindings = hc.get("PortBindings") or {}
        proxies: list[PortProxy] = []
        try:
            # Only exposed ports are published; a binding is looked up under
            # the exposed key as given ("9998/udp/tcp" finds none).
            for exposed in c.config.get("ExposedPorts") or {}:
                port_s, _, rest = exposed.partition("/")
                proto = rest.split("/", 1)[0] or "tcp"
                key = f"{port_s}/{proto}"
                private = int(port_s.split("-")[0])
                wanted = bindings.get(exposed)
                if not wanted and hc.get("PublishAllPorts"):
                    wanted = [{"HostIp": "", "HostPort": ""}]
                if not wanted:
                    c.ports[key] = None
                    continue
                entries = []
                for b in wanted:
                    requested = int((b.get("HostPort") or "0").split("-")[0] or 0)
                    if (
                        process_port is not None
                        and private == process_port
                        and proto == "tcp"
                        and not requested
                    ):
                        port = self._ports.reserve_free(endpoint=c.bare_name, container_id=c.id)
                    else:
                        sock = self._ports.bind(requested or None, endpoint=c.bare_name, container_id=c.id)
                        port = sock.getsockname()[1]
                        proxies.append(PortProxy(sock, lambda p=private: c.listeners.get(p)))
                    ip = b.get("HostIp") or ""
                    if ip:
                        entries.append({"HostIp": ip, "HostPort": str(port)})
                    else:
                        entries += [
                            {"HostIp": "0.0.0.0", "HostPort": str(port)},
                            {"HostIp": "::", "HostPort": str(port)},
                        ]
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
        for port in list(c.listeners):
            net.serve(c.id, port, lambda p=port: c.listeners.get(p), self._spawn)
        self.bus.publish(
            "network", "connect", net.id, {"container": c.id, "name": net.name, "type": net.driver}
        )

    def _listen(self, c: Container, port: int, handler: Any) -> None:
        """A program listens on ``port``: through the published ports and on
        the container's address in each network it is attached to."""
        c.listeners[port] = handler
        for net_name in c.networks:
            net = self.networks.find(net_name)
            if net is not None and c.id in net.endpoints:
                net.serve(c.id, port, lambda p=port: c.listeners.get(p), self._spawn)

    def _detach(self, c: Container, net_name: str) -> None:
        ep = c.networks.get(net_name)
        net = self.networks.find(net_name)
        if ep is None:
            return
        if net is not None and c.id in net.endpoints:
            net.unserve(c.id)
            net.release_ip(ep.get("IPAddress", ""))
            del net.endpoints[c.id]
            self.bus.publish(
                "network", "disconnect", net.id, {"container": c.id, "name": net.name, "type": net.driver}
            )
        ep.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")

    async def _run_main(self, c: Container, argv: list[str], env: dict[str, str]) -> None:
        missing = self._missing_executable(c, argv)
        program, argv = self.programs.resolve(argv)
        if program is None and missing:
            c.log("stderr", f"[FATAL tini (7)] exec {argv[0]} failed: No such file or directory\n".encode())
            self._terminate(c, 127)
            return
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
            listen=lambda port, handler: self._listen(c, port, handler),
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

    async def _start_process(
        self, c: Container, argv: list[str], env: dict[str, str], process_port: int | None
    ) -> None:
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
            c.log("stderr", f"fakedocker: cannot run {argv[0]} on the host: {e}\n".encode())
            self._terminate(c, 127)
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
        if callable(policy):
            # A shell with a trap for it runs its handler and exits by itself.
            if policy(sig):
                return None
            policy = IGNORE
        if policy is not IGNORE:
            return policy if sig in (2, 15) else 128 + sig
        if c.host_config.get("Init"):
            return 128 + sig
        return None

    def _terminate(self, c: Container, code: int, *, oom: bool = False) -> None:
        """The one place where a running container stops running."""
        if not c.running or c.status == "restarting":
            return
        c.status = "exited"
        c.exit_code = code
        c.oom_killed = oom
        c.pid = 0
        c.finished_ns = now_ns()
        c.listeners.clear()
        task = c.task
        c.task = None
        if c.health_task is not None:
            c.health_task.cancel()
            c.health_task = None
        if c.process is not None:
            # The watcher task stays: it reaps the process and removes its
            # temporary directory once the kill lands.
            c.process.send(_signal.SIGKILL)
        elif task is not None and not task.done() and task is not _current_task():
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
        if not self._closed and should_restart(
            c.host_config.get("RestartPolicy"), code, c.restart_count, c.stop_requested
        ):
            self._schedule_restart(c)
            return
        if c.host_config.get("AutoRemove") and not self._closed:
            # The engine marks it at once; a remove until it is gone is a Conflict.
            c.status = "removing"
            if _current_task() is None:
                self._delete(c, volumes=True)
            else:
                self._spawn(self._auto_remove(c))

    def _schedule_restart(self, c: Container) -> None:
        """The engine counts the restart at once and shows "restarting"
        (Running) until the delay has passed and the program runs again."""
        c.restart_delay = next_delay(c.restart_delay, (c.finished_ns - c.started_ns) / 1e9)
        c.restart_count += 1
        c.status = "restarting"
        c.restart_task = self._spawn(self._restart_later(c, c.restart_delay))

    async def _restart_later(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        if c.status != "restarting" or self.containers.get(c.id) is not c:
            return
        c.restart_task = None
        c.status = "exited"
        try:
            await self._start(c)
        except EngineError:
            c.status = "exited"

    def _cancel_restart(self, c: Container) -> bool:
        """Stop a pending restart; True when there was one."""
        if c.status != "restarting":
            return False
        if c.restart_task is not None:
            c.restart_task.cancel()
            c.restart_task = None
        c.status = "exited"
        return True

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
        if self._cancel_restart(c):
            self.bus.publish("container", "stop", c.id, c.event_attributes())
            return
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
        c.stop_requested = True  # the restart manager treats a kill as the user's stop
        if self._cancel_restart(c):
            self.bus.publish("container", "kill", c.id, c.event_attributes(signal=str(sig)))
            return
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
                    f"You cannot remove a {'restarting' if c.status == 'restarting' else 'running'} container "
                    f"{c.id}. Stop the container before attempting removal or force remove"
                )
            c.stop_requested = True
            if not self._cancel_restart(c):
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
        check_filters("containers", wanted)
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
                if not any(
                    v in c.networks
                    or any(
                        ep.get("NetworkID", "").startswith(v)
                        for ep in c.networks.values()
                        if ep.get("NetworkID")
                    )
                    for v in values
                ):
                    return False
            elif key == "health":
                if health_status(c.health) not in values:
                    return False
            elif key == "is-task":
                if ("com.docker.swarm.task" in c.labels) != (values[0].lower() in ("true", "1")):
                    return False
            elif key in ("expose", "publish"):
                ports = c.config.get("ExposedPorts") if key == "expose" else c.host_config.get("PortBindings")
                have = {p.split("/")[0] for p in ports or {}} | set(ports or {})
                if not any(v in have for v in values):
                    return False
            elif key == "volume":
                if not any(m.get("Name") == v or m.get("Destination") == v for m in c.mounts for v in values):
                    return False
        return True

    async def container_logs(
        self, ref: str, *, tail: int | None = None, stdout: bool = True, stderr: bool = True
    ) -> str:
        await self._enter("container_logs", ref=ref, tail=tail, stdout=stdout, stderr=stderr)
        c = self._container(ref)
        streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        text = b"".join(line.data for line in c.logs if line.stream in streams).decode(
            "utf-8", errors="replace"
        )
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

def _mount_record(kind: str, source: str, destination: str, mode: str, rw: bool, propagation: str) -> dict[str, Any]:
    """One entry of inspect's ``Mounts``, as the engine reports it."""
    return {
        "Type": kind,
        "Source": source,
        "Destination": destination,
        "Mode": mode,
        "RW": rw,
        "Propagation": propagation,
    }
