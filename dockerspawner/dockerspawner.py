"""DockerSpawner: one container per single-user server.

Config-compatible with dockerspawner 14.x (trait names, defaults, names, saved
state). Engine access goes through the protocol only; specs come from
``dockerspawner.specs``; names from ``dockerspawner.naming``.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from jupyterhub.spawner import Spawner
from jupyterhub.traitlets import Callable as CallableTrait
from tornado import web
from traitlets import Any as AnyTrait, Bool, Dict, List, Unicode, Union, default, observe, validate

from . import coalesce, exits, naming, orphans, probe
from ._version import __version__  # noqa: F401 - dockerspawner.dockerspawner.__version__ as in 14
from .attempt import StartAttempt
from .certs import CERTS_DIR, InternalSSL
from .deprecations import Deprecations
from .engine import Conflict, DockerEngine, EngineError, EngineUnavailable, NotFound
from .engine.apiclient import APIClientCalls
from .engine.connect import engines_generation, shared_engine
from .engine.pool import oldest_first
from .errors import SpawnError, _clip, _maybe_await, _short
from .images import ImageChoice
from .index import index_for
from .limits import CallableLimits
from .progress import PHASES, ProgressLog
from .specs import (
    ContainerPlan,
    check_confined,
    container_spec,
    engine_mount,
    publishes_port,
    render_templates,
    volume_binds,
)
from .views import ContainerView

__all__ = ["CERTS_DIR", "DockerSpawner", "SpawnError"]


def _default_format_volume_name(template: str, spawner: DockerSpawner) -> str:
    return template.format(**spawner.template_namespace())


class DockerSpawner(Deprecations, ImageChoice, CallableLimits, InternalSSL, Spawner):
    """A spawner for JupyterHub that runs each server in a Docker container.

    The traits and hooks of one concern each live in a mixin (image choice,
    callable limits, internal SSL, deprecated names); this class holds the
    object hooks and the lifecycle that goes through them.
    """

    object_type = "container"

    cmd = Union(
        [Unicode(), List(Unicode())],
        default_value=None,
        allow_none=True,
        config=True,
        help="""The command to run in the container, e.g. ['jupyterhub-singleuser']. None (the default) runs
        the image's own Cmd; Spawner.args are appended either way.""",
    )

    # -- engine ---------------------------------------------------------------
    engine = Union(
        [Unicode(), AnyTrait()],
        default_value="docker",
        config=True,
        help="""The container engine: 'docker' (docker-py; Docker or Podman through its
        API, honouring client_kwargs, tls_config and DOCKER_HOST), 'fake' (fakedocker,
        in memory), an import path 'package.module:factory', or an engine object.""",
    )
    engine_options = Dict(
        config=True,
        help="""Keyword arguments for the engine, e.g. {'max_workers': 64} (the docker engine's thread pool,
        32 by default) or {'timeout': 120} (seconds per engine call); with engine 'fake',
        FakeDocker's options.""",
    )
    client_kwargs = Dict(
        config=True,
        help="""Keyword arguments for docker.APIClient, e.g. {'base_url': 'tcp://docker.example.org:2376'}
        or {'base_url': 'ssh://user@host', 'use_ssh_client': True}. They win over tls_config and the
        DOCKER_* environment.""",
    )
    tls_config = Dict(
        config=True,
        help="""Keyword arguments for docker.tls.TLSConfig, to reach the engine over TLS, e.g. {'ca_cert':
        '/etc/docker/ca.pem', 'client_cert': ('/etc/docker/cert.pem', '/etc/docker/key.pem'),
        'verify': True}.""",
    )
    use_docker_client_env = Bool(
        True,
        config=True,
        help="""Read the engine's address and TLS settings from DOCKER_HOST, DOCKER_TLS_VERIFY and
        DOCKER_CERT_PATH in the hub's environment, as the docker command does. Set False to ignore
        them (for a hub that runs next to another engine).""",
    )

    # -- names ----------------------------------------------------------------
    prefix = Unicode(
        "jupyter",
        config=True,
        help="""Prefix of container names, the {prefix} of name_template: 'jupyter' names Alice's server
        'jupyter-alice'. Give hubs that share an engine different prefixes.""",
    )
    name_template = Unicode(
        config=True,
        help="""Name of the container, a format string with {prefix}, {username}, {safe_username},
        {raw_username}, {servername}, {raw_servername} and {imagename}. The default is
        '{prefix}-{username}' ('{prefix}-{username}--{servername}' for named servers); changing it
        gives existing servers new containers.""",
    )

    @default("name_template")
    def _default_name_template(self) -> str:
        return naming.default_name_template(self.name or "")

    escape = AnyTrait(
        "escape",
        config=True,
        help="""How to escape user and server names in container and volume names: 'escape' (the default,
        the established scheme), 'legacy' (dockerspawner < 12), 'safe' (readable DNS labels, for new
        deployments) or a callable str -> str. Changing it renames existing users' containers and
        volumes.""",
    )

    @validate("escape")
    def _validate_escape(self, proposal: dict) -> Any:
        naming.resolve_escape(proposal["value"])  # a typo fails at config time, naming the choices
        return proposal["value"]

    # -- volumes and networking ----------------------------------------------
    volumes = Dict(
        config=True,
        help="""Volumes and host directories to mount in every server: a map of volume name (created on
        first use) or host path (starting with '/') to the container path, or to a dict with 'bind',
        'mode' ('rw', 'ro', 'z', 'Z') and 'propagation'. Both sides are templates, e.g.
        {'jupyterhub-user-{username}': '/home/jovyan/work'}.""",
    )
    read_only_volumes = Dict(
        config=True,
        help="""Volumes and host directories to mount read-only, in the form of volumes (a map of volume
        name or host path to container path), e.g. {'/srv/datasets': '/home/jovyan/datasets'}.""",
    )
    mounts = List(
        Dict(),
        config=True,
        help="""Extra mounts as docker-py Mount keywords (target, source, type, read_only, ...), e.g.
        [{'type': 'tmpfs', 'target': '/tmp'}]. Source and target are templated like volumes.""",
    )
    format_volume_name = AnyTrait(
        config=True,
        help="""A callable (template, spawner) -> str that fills in the templates of volumes and
        read_only_volumes. The default fills in the spawner's template keys, {username} escaped;
        dockerspawner.volumenamingstrategy has 14's choices.""",
    )

    @default("format_volume_name")
    def _default_format_volume_name(self) -> Callable:
        return _default_format_volume_name

    network_name = Unicode(
        "bridge",
        config=True,
        help="""The network the container joins: 'bridge' (the default; the server is reached through a
        published port), 'host', or a network you created (docker network create NAME), on which the
        server is reached at its IP.""",
    )
    use_internal_ip = Bool(
        config=True,
        help="""Reach the server at its container IP on network_name instead of a published host port; the
        hub must be able to reach that IP. True by default for user-defined networks, False for
        'bridge' and 'host'.""",
    )

    @default("use_internal_ip")
    def _default_use_internal_ip(self) -> bool:
        return self.network_name not in {"bridge", "host"}

    use_internal_hostname = Bool(
        False,
        config=True,
        help="""Reach the server by its container host name (its container name) instead of an address; the
        hub must be on a network whose DNS resolves it. On by default with internal SSL, whose
        certificates name the host.""",
    )
    host_ip = Unicode(
        config=True,
        help="""The host address the server's port is published on, where the hub reaches it: 127.0.0.1 by
        default, or the engine's host when DOCKER_HOST is tcp://HOST:PORT. Set it to an address of
        the engine's host that the hub can reach.""",
    )

    @default("host_ip")
    def _default_host_ip(self) -> str:
        docker_host = os.environ.get("DOCKER_HOST", "")
        if docker_host.startswith("tcp://"):
            return urlparse(docker_host).hostname or "127.0.0.1"
        return "127.0.0.1"

    links = Dict(
        config=True,
        help="""Legacy Docker links added to every server's container, {container name: alias}. Prefer a
        user-defined network (network_name), on which containers reach each other by name.""",
    )

    @default("port")
    def _default_port(self) -> int:
        return 8888

    @default("ip")
    def _default_ip(self) -> str:
        return "0.0.0.0"

    # -- limits and extras -----------------------------------------------------
    extra_create_kwargs = Union(
        [CallableTrait(), Dict()],
        default_value={},
        config=True,
        help="""Extra keyword arguments for docker-py's create_container (e.g. {'user': 'root'}),
        deep-merged into what the spawner builds, or a callable (spawner) -> dict, which may be
        async. Strings are templated ({username}, ...).""",
    )
    extra_host_config = Union(
        [CallableTrait(), Dict()],
        default_value={},
        config=True,
        help="""Extra keyword arguments for docker-py's create_host_config (e.g. {'shm_size': '1G'}, or
        device_requests for GPUs), deep-merged into what the spawner builds, or a callable (spawner)
        -> dict, which may be async. Strings are templated ({username}, ...).""",
    )
    remove = Bool(
        False,
        config=True,
        help="""Remove the container when the server stops, so that every start gets a fresh one from the
        current config. Off: a stopped container is started again while its spec is unchanged. Keep
        data that must last in volumes either way.""",
    )
    post_start_cmd = Union(
        [Unicode(), List(Unicode()), Bool()],
        default_value=False,
        allow_none=True,
        config=True,
        help="""A command run in the container (as 'docker exec') after it starts, e.g.
        ['sh', '-c', 'cp -rn /opt/skel/. ~']. Its output is logged; a non-zero exit is logged
        and the server starts anyway, unless post_start_cmd_must_succeed is set.""",
    )
    post_start_cmd_must_succeed = Bool(
        False,
        config=True,
        help="""Fail the spawn (and remove the container it made) when post_start_cmd exits
        non-zero. Off by default, as in dockerspawner 14, where such a failure was only logged.""",
    )

    replace_changed_containers = Bool(
        True,
        config=True,
        help="""Replace a stopped container whose image or spec (env, limits, volumes, ...)
        no longer matches the config, instead of starting it again. With remove = False this
        drops what users wrote outside volumes when the admin changes the config; set False
        to start existing containers as they are, as dockerspawner 14 did.""",
    )
    poll_from_events = Bool(
        True,
        config=True,
        help="""Answer poll() for running servers from one shared, event-driven view of the
        engine's containers (one list plus the event stream per engine), so polling does not
        cost one inspect per user. A server the view does not show as running is still
        checked with an inspect. Set False to inspect every server at every poll, as 14 did.""",
    )

    remove_orphans = Bool(
        False,
        config=True,
        help="""When the hub starts, remove containers this spawner made (by label and
        name prefix) that no server in the hub's database owns. Logged. Leave off if
        several hubs share an engine and a prefix.""",
    )

    _orphan_sweeps: weakref.WeakSet = weakref.WeakSet()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.remove_orphans:
            self._schedule_orphan_sweep()

    def _schedule_orphan_sweep(self) -> None:
        """Once per engine: the first spawner the hub makes sweeps for all."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        engine = self.docker_engine
        if engine in DockerSpawner._orphan_sweeps:
            return
        DockerSpawner._orphan_sweeps.add(engine)
        db = getattr(self.user, "db", None)
        if db is None:
            return
        # Created is in whole seconds: spare everything from this second on, taken
        # before the database read so that a newer user's container is never judged
        created_before = math.floor(time.time())
        owners = orphans.hub_owners(db)  # owner labels decide, not states ({} after stop)
        task = loop.create_task(
            orphans.remove_orphans(engine, owners, prefix=self.prefix, created_before=created_before, logger=self.log)
        )
        task.add_done_callback(self._orphan_sweep_done)

    def _orphan_sweep_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            self.log.warning("Removing orphaned containers failed: %s", task.exception())
        elif task.result():
            self.log.info("Removed %d orphaned container(s): %s", len(task.result()), " ".join(task.result()))

    @default("env_keep")
    def _default_env_keep(self) -> list[str]:
        return []

    # -- state -------------------------------------------------------------------
    object_id = Unicode("", allow_none=True)
    object_name = Unicode("", allow_none=True)
    #: What start/stop/poll manage, and the key of its id in create_object()'s answer.
    object_type = "container"
    object_id_key = "Id"

    @default("object_name")
    def _default_object_name(self) -> str:
        try:
            return self._established_name()
        except ValueError:
            return ""  # a bad template is reported by start(), with the fix

    @observe("image")
    def _image_changed(self, change: dict) -> None:
        # as 14: a name made from {imagename} follows the image (until the object exists)
        if "object_name" in self._trait_values and not self.object_id and "{imagename}" in self.name_template:
            self.object_name = self._default_object_name()

    @property
    def container_id(self) -> str:
        return self.object_id

    @property
    def container_name(self) -> str:
        return self.object_name

    @property
    def internal_hostname(self) -> str:
        return self.container_name

    @default("ssl_alt_names")
    def _default_ssl_alt_names(self) -> list[str]:
        return ["DNS:" + self.internal_hostname]

    @default("use_internal_hostname")
    def _default_use_internal_hostname(self) -> bool:
        return bool(getattr(self, "internal_ssl", False))

    @property
    def will_resume(self) -> bool:
        # a kept container keeps its API token, so the hub must not revoke it
        return not self.remove

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.object_id = state.get("object_id") or state.get("container_id") or ""
        self.object_name = state.get("object_name") or state.get("container_name") or self._default_object_name()
        if self.object_id and self.remove and _loop_running():
            exits.watcher(self.docker_engine).watch(self.object_id)

    def get_state(self) -> dict:
        state = super().get_state()
        if self.object_id:
            state["object_id"] = self.object_id
            state["object_name"] = self.object_name
        elif self.object_name and self.object_name != self._default_object_name():
            # a derived, collision-free name: the next start must find the same one
            state["object_name"] = self.object_name
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.object_id = ""

    # -- engine access -------------------------------------------------------------
    @property
    def docker_engine(self) -> DockerEngine:
        """The engine client, shared by all spawners with the same settings.

        Remembered per spawner (every poll asks for it, and finding the shared
        client serialises its settings): until one of them is set again, the
        loop changes, or the shared clients are forgotten."""
        engine = self.engine
        if not isinstance(engine, str):
            return engine
        loop = asyncio.get_running_loop()
        cached = self.__dict__.get("_engine_cache")
        if cached is not None and cached[0] is loop and engines_generation() == cached[1]:
            return cached[2]
        options = dict(self.engine_options)
        if engine == "docker":
            options.setdefault("client_kwargs", dict(self.client_kwargs))
            options.setdefault("tls_config", dict(self.tls_config))
            options.setdefault("use_env", self.use_docker_client_env)
        found = shared_engine(engine, **options)
        self.__dict__["_engine_cache"] = (loop, engines_generation(), found)
        return found

    @observe("engine", "engine_options", "client_kwargs", "tls_config", "use_docker_client_env")
    def _engine_settings_changed(self, change: Any) -> None:
        self.__dict__.pop("_engine_cache", None)
        self.__dict__.pop("_poll_index_cache", None)

    @observe("poll_from_events")
    def _poll_settings_changed(self, change: Any) -> None:
        self.__dict__.pop("_poll_index_cache", None)

    def docker(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Call ``docker.APIClient.<method>`` without blocking the hub (as in 14).

        On the docker-py engine this is the real client's method, run in the
        engine's thread pool, raising docker-py's errors. On fakedocker the
        methods spawners commonly use are mapped onto the engine.
        """
        engine = self.docker_engine
        calls = _api_calls.get(engine)
        if calls is None:
            calls = _api_calls[engine] = APIClientCalls(engine)
        return asyncio.ensure_future(calls(method, *args, **kwargs))

    @property
    def client(self) -> Any:
        """The ``docker.APIClient`` (docker-py engine only)."""
        api = getattr(self.docker_engine, "api_client", None)
        if api is None:
            raise AttributeError(
                f"DockerSpawner.client is a docker.APIClient and exists only with engine='docker';"
                f" this hub uses {type(self.docker_engine).__name__}: use spawner.docker(...) or spawner.docker_engine"
            )
        return api

    # -- naming ----------------------------------------------------------------------
    @property
    def _escape_fn(self) -> Callable[[str], str]:
        return naming.resolve_escape(self.escape)

    @property
    def escaped_name(self) -> str:
        return self._escape_fn(self.user.name)

    def template_namespace(self) -> dict:
        ns = super().template_namespace()
        ns.update(
            naming.template_namespace(
                username=self.user.name,
                servername=self.name or "",
                prefix=self.prefix,
                image=self.image,
                escape=self._escape_fn,
            )
        )
        return ns

    def _render_templates(self, obj: Any, ns: dict | None = None) -> Any:
        """Format every string in ``obj`` (14's helper; kept for subclasses)."""
        return render_templates(obj, ns if ns is not None else self.template_namespace(), self.log.warning)

    def _scheme(self) -> str:
        return self.escape if isinstance(self.escape, str) else "escape"

    def _established_name(self) -> str:
        return naming.object_name(self.name_template, self.template_namespace(), scheme=self._scheme())

    @property
    def _owner(self) -> tuple[str, str]:
        return (self.user.name, self.name or "")

    def _owner_labels(self) -> dict[str, str]:
        return naming.owner_labels(*self._owner)

    def _adoptable(self, view: ContainerView) -> bool:
        """Whether an existing container may be taken as this server's.

        Labelled ones must be labelled for this user and server. Unlabelled ones
        (made by 14) only under the established name, when no server differing
        in case could share that name, and, if running, only when the saved
        state names it: a running unlabelled container may be someone else's.
        """
        if view.owner is not None:
            return view.owner == self._owner
        servername = self.name or ""
        if view.name != self._established_name() or servername != servername.lower():
            return False
        return not view.running or view.id == self.object_id

    @property
    def _attempt(self) -> StartAttempt:
        """The start in progress (a fresh one outside start(), for hooks called directly)."""
        return self.__dict__.get("_current_attempt") or StartAttempt(image=self.image)

    # -- env, command, volumes ---------------------------------------------------------
    def get_env(self) -> dict:
        env = super().get_env()
        env["JUPYTER_IMAGE_SPEC"] = self.image
        env["JUPYTER_IMAGE"] = self.image
        for key, name in (("MEM_LIMIT", "mem_limit"), ("CPU_LIMIT", "cpu_limit")):
            value = getattr(self, name)
            if callable(value):
                env.pop(key, None)  # not evaluated yet: the base class would write its repr
        return env

    async def get_command(self) -> list[str]:
        """The full command: ``cmd`` (or the image's own Cmd) plus the spawner's args."""
        if self.cmd:
            cmd = [self.cmd] if isinstance(self.cmd, str) else list(self.cmd)
        else:
            info = self._attempt.image_info
            if info is None:
                info = self._attempt.image_info = await coalesce.inspect_image(self.docker_engine, self.image)
            cmd = list((info.get("Config") or {}).get("Cmd") or [])
            if not cmd:
                raise SpawnError(
                    f"Image {self.image} does not say what to run.",
                    f"image {self.image} has no Cmd: set {type(self).__name__}.cmd (e.g. ['jupyterhub-singleuser'])",
                )
        return cmd + list(self.get_args())

    def _format_volume(self, value: str) -> str:
        rendered = self.format_volume_name(value, self)
        try:
            return check_confined(value, rendered)
        except ValueError as e:
            raise web.HTTPError(
                400,
                f"Your user or server name cannot be used in a storage path on this hub: {e}",
            ) from None

    def _volumes_to_binds(self, volumes: dict, binds: dict, mode: str = "rw") -> dict:
        """Format ``volumes`` into docker-py ``binds`` (14's helper; kept for subclasses)."""
        formatted = {}
        for source, target in volumes.items():
            if isinstance(target, dict):
                target = {**target, "bind": self._format_volume(target.get("bind", ""))}
            else:
                target = self._format_volume(target)
            formatted[self._format_volume(source)] = target
        rw, ro = (formatted, {}) if mode == "rw" else ({}, formatted)
        for source, bind in volume_binds(rw, ro).items():
            if mode not in ("rw", "ro"):
                bind["mode"] = mode
            binds[source] = bind
        return binds

    @property
    def volume_binds(self) -> dict:
        """``{host path or volume: {"bind": path, "mode": "rw"|"ro"|...}}``, formatted."""
        binds = self._volumes_to_binds(self.volumes, {})
        binds = self._volumes_to_binds(self.read_only_volumes, binds, mode="ro")
        certs = self.__dict__.get("_certs_volume")
        if certs:
            binds[certs] = {"bind": CERTS_DIR, "mode": "ro"}
        return binds

    @property
    def volume_mount_points(self) -> list[str]:
        return sorted(bind["bind"] for bind in self.volume_binds.values())

    @property
    def mount_binds(self) -> list[dict]:
        """``mounts``, formatted, in the engine's form (as docker.types.Mount is)."""
        mounts = []
        for mount in self.mounts:
            mount = dict(mount)
            for key in ("source", "target"):
                if isinstance(mount.get(key), str):
                    mount[key] = self._format_volume(mount[key])
            mounts.append(engine_mount(mount))
        return mounts

    async def _plan_fields(self) -> dict[str, Any]:
        """The fields of every server plan (containers and services), resolved now."""
        attempt = self._attempt
        if "_current_attempt" not in self.__dict__:
            # a hook called outside start() (a subclass's own start): evaluate now
            attempt.mem_limit, attempt.cpu_limit = await self._evaluate_limits()
        return {
            "name": self.object_name,
            "image": self.image,
            "command": await self.get_command(),
            "env": self.get_env(),
            "labels": self._owner_labels(),
            "port": self.port,
            "network_name": self.network_name,
            "use_internal_ip": self.use_internal_ip,
            "mem_limit": attempt.mem_limit,
            "cpu_limit": attempt.cpu_limit,
        }

    async def _container_plan(self) -> ContainerPlan:
        ns = self.template_namespace()
        fields = await self._plan_fields()
        extra_create = render_templates(await self._evaluate(self.extra_create_kwargs) or {}, ns, self.log.warning)
        extra_create = {**self._default_create_kwargs(), **extra_create}
        extra_host = render_templates(await self._evaluate(self.extra_host_config) or {}, ns, self.log.warning)
        return ContainerPlan(
            **fields,
            host_ip=self.host_ip,
            use_internal_hostname=self.use_internal_hostname,
            binds=self.volume_binds,
            mounts=self.mount_binds,
            links=dict(self.links),
            extra_create_kwargs=extra_create,
            extra_host_config=extra_host,
        )

    def _default_create_kwargs(self) -> dict[str, Any]:
        """create_container keywords this class sets unless extra_create_kwargs does."""
        return {}

    async def _evaluate(self, value: Any) -> Any:
        if callable(value):
            return await _maybe_await(value(self))
        return value

    # -- the object hooks (containers) ------------------------------------------------------
    async def _inspect(self, ref: str) -> ContainerView | None:
        try:
            return ContainerView.of(await self.docker_engine.inspect_container(ref))
        except NotFound:
            return None

    async def get_object(self) -> dict | None:
        """This server's container (inspect JSON), or None; never another owner's.

        Found by saved id, else by name; when the established name is held by
        someone else, this server's container (if any) has the derived name,
        which becomes ``object_name``.
        """
        if self.object_id:
            view = await self._inspect(self.object_id)
            if view is not None:
                if view.owner is not None and view.owner != self._owner:
                    raise SpawnError(
                        f"Your server's {self.object_type} belongs to someone else.",
                        f"{self.object_type} {view.name} ({view.id[:12]}) in the saved state of {self._log_name}"
                        " is labelled for another owner; refusing to use it",
                    )
                self.object_name = view.name
                return dict(view.raw)
            self.object_id = ""
        established = self._established_name()
        for name in dict.fromkeys([self.object_name or established, established]):
            view = await self._inspect(name)
            if view is None:
                continue
            if self._adoptable(view):
                self.object_name, self.object_id = name, view.id
                return dict(view.raw)
            if name == established:
                distinct = naming.distinct_name(established, naming.owner_key(*self._owner))
                if view.owner is None and view.running:
                    self.log.warning(
                        "A running %s %s without owner labels holds the name of %s's server;"
                        " leaving it alone and using %s. Remove or rename it if it is a leftover.",
                        self.object_type, name, self._log_name, distinct,
                    )
                self.object_name = distinct
                mine = await self._inspect(distinct)
                if mine is not None and self._adoptable(mine):
                    self.object_id = mine.id
                    return dict(mine.raw)
        return None

    async def create_object(self) -> dict:
        """Create this server's container; returns the engine's answer (``{"Id": ...}``)."""
        spec = container_spec(await self._container_plan())
        self._attempt.spec = spec
        cid = await self._create(spec)
        return {"Id": cid, "Warnings": []}

    async def start_object(self) -> None:
        """Start the container and check it did not exit at once."""
        try:
            await self.docker_engine.start_container(self.object_id)
        except NotFound as e:
            # Docker checks the network at start, not at create
            raise self._create_not_found(getattr(self._attempt, "spec", None) or {}, e) from None
        await self._check_running()

    async def stop_object(self) -> None:
        """Stop the container (not remove it); gone already counts as stopped."""
        try:
            await self.docker_engine.stop_container(self.object_id or self.object_name, timeout=self._stop_timeout)
        except NotFound:
            self.log.debug("Already removed %s: %s", self.object_type, self.object_id)

    async def remove_object(self) -> None:
        """Remove the container; return only once its name can be used again."""
        await self._remove_container(self.object_id or self.object_name)

    async def post_start_exec(self) -> None:
        """Run ``post_start_cmd`` in the container; log what it printed.

        A non-zero exit is logged (as in 14) and fails the spawn only with
        ``post_start_cmd_must_succeed``.
        """
        cmd = self.post_start_cmd
        if not cmd:
            return
        result = await self.docker_engine.exec_run(self.object_id, cmd)
        out = self._redact(result.stdout.decode(errors="replace")[-2000:]).strip()
        err = self._redact(result.stderr.decode(errors="replace")[-2000:]).strip()
        if out:
            self.log.debug("post_start_cmd %r stdout in %s: %s", cmd, self.object_name, out)
        if err:
            self.log.warning("post_start_cmd %r stderr in %s: %s", cmd, self.object_name, err)
        if result.exit_code == 0:
            return
        tail = _short(err or out, 500)
        if not self.post_start_cmd_must_succeed:
            self.log.warning(
                "post_start_cmd %r in %s exited %s; the server starts anyway"
                " (set %s.post_start_cmd_must_succeed = True to fail the spawn)",
                cmd, self.object_name, result.exit_code, type(self).__name__,
            )
            return
        raise SpawnError(
            f"The post-start command failed (exit code {result.exit_code}).",
            f"post_start_cmd {cmd!r} exited {result.exit_code}: {tail}",
        )

    async def get_ip_and_port(self) -> tuple[str, int]:
        """Where the hub reaches the server. Override to route differently."""
        info = self._attempt.started_info or await self.docker_engine.inspect_container(self.object_id)
        self._attempt.started_info = None
        view = ContainerView.of(info)
        if self.use_internal_hostname:
            return self.internal_hostname, self.port
        if not publishes_port(self.network_name, self.use_internal_ip):
            if self.network_name == "host":
                return self.host_ip, self.port
            return view.network_ip(self.network_name), self.port
        binding = view.host_binding(self.port)
        if binding is None:
            await self._check_running()
            raise SpawnError(
                "Your server's port was not published.",
                f"container {self.object_name} has no host binding for port {self.port}",
            )
        ip, port = binding
        if ip in ("0.0.0.0", "::", ""):
            ip = self.host_ip
        return ip, port

    def get_network_ip(self, network_settings: dict) -> str:
        """The container's address on ``network_name`` (14's helper)."""
        networks = network_settings.get("Networks") or {}
        if self.network_name not in networks:
            raise SpawnError(
                f"Your server is not on the network {self.network_name}.",
                f"container {self.object_name} is not on network {self.network_name!r}:"
                f" create it (docker network create {self.network_name}) or fix network_name",
            )
        return networks[self.network_name]["IPAddress"]

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def _progress(self) -> ProgressLog:
        log = self.__dict__.get("_progress_log")
        if log is None or log.closed:
            log = self.__dict__["_progress_log"] = ProgressLog()
        return log

    async def progress(self):
        async for event in self._progress.follow():
            yield event

    def _enter(self, phase: str, message: str) -> None:
        self._attempt.phase = message
        self._progress.emit(PHASES[phase], message)

    #: Starts in progress in this process, per engine and owner: (result, spawner).
    _starts: dict[tuple[int, tuple[str, str]], tuple[asyncio.Future, DockerSpawner]] = {}

    async def start(self) -> tuple[str, int]:
        """Start the server, once: a second ``start()`` of the same spawner while
        the first runs joins it (the same address), and another spawner object
        for the same server is refused, so one server never gets two objects.
        """
        key = (id(self.docker_engine), self._owner)
        pending = DockerSpawner._starts.get(key)
        if pending is not None and pending[0].get_loop() is asyncio.get_running_loop():
            result, starter = pending
            if starter is not self:
                raise SpawnError(
                    "Your server is already starting. Please wait for it.",
                    f"a start of {self._log_name} is already in progress in another spawner object;"
                    " refusing a second one (it would make a second container)",
                )
            self.log.info("A start of %s is already in progress: joining it", self._log_name)
            return await asyncio.shield(result)
        result = asyncio.get_running_loop().create_future()
        DockerSpawner._starts[key] = (result, self)
        try:
            with oldest_first():
                address = await self._start_attempt()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                result.cancel()
            else:
                result.set_exception(e)
                result.exception()  # retrieved: a start nobody joined logs nothing more
            raise
        else:
            result.set_result(address)
            return address
        finally:
            DockerSpawner._starts.pop(key, None)

    async def _start_attempt(self) -> tuple[str, int]:
        """Resolve the image, pull, find or create, start, and wait until the server answers.

        Goes through the object hooks (``pull_image``, ``get_object``,
        ``create_object``, ``start_object``, ``post_start_exec``,
        ``get_ip_and_port``) so a subclass overriding one changes what happens.
        Runs under its own deadline a little shorter than the hub's
        start_timeout, so a slow start fails naming the phase it was in; any
        failure or cancellation removes what this start created.
        """
        attempt = self.__dict__["_current_attempt"] = StartAttempt()
        try:
            budget = max(self.start_timeout - 2, self.start_timeout * 0.8)
            result = await asyncio.wait_for(self._start(attempt), budget)
            attempt.succeeded()
            return result
        except asyncio.TimeoutError:
            error = SpawnError(
                f"Your server did not start within {self.start_timeout} seconds (it was {attempt.phase}).",
                f"start of {self._log_name} timed out after {self.start_timeout}s while {attempt.phase};"
                " raise Spawner.start_timeout if this is expected",
            )
        except EngineUnavailable as e:
            error = SpawnError(
                "The container engine is not reachable right now. Please try again later.",
                f"engine unreachable while {attempt.phase} for {self._log_name}: {e}",
            )
        except EngineError as e:
            error = SpawnError(
                f"Your server could not start while {attempt.phase}: {_short(e.explanation)}",
                f"engine error while {attempt.phase} for {self._log_name}: {_short(str(e), 3000)}",
            )
        except SpawnError as e:
            error = e
        finally:
            if sys.exc_info()[0] is not None or attempt.created:
                await asyncio.shield(self._undo(attempt))
            self.__dict__.pop("_current_attempt", None)
            self._progress.close()
        self.log.error("Spawn of %s failed: %s", self._log_name, error.detail)
        raise error from None

    async def _undo(self, attempt: StartAttempt) -> None:
        if attempt.created:
            await attempt.undo(self.log, self._log_name)
            self.object_id = ""

    async def _start(self, attempt: StartAttempt) -> tuple[str, int]:
        volume = self.__dict__.pop("_certs_fresh", None)
        if volume:
            attempt.on_undo(f"volume:{volume}", self._remove_certs_volume)
        image = attempt.image = await self._resolve_image()
        attempt.mem_limit, attempt.cpu_limit = await self._evaluate_limits()
        self._enter("image", f"Checking image {image}")
        await self.pull_image(image)
        obj = await self.get_object()
        if obj is not None:
            reason = await self._reuse_blocker(obj)
            if reason is not None:
                self.log.info("Replacing %s %s for %s: %s", self.object_type, self.object_name, self._log_name, reason)
                self._enter("create", f"Replacing {self.object_type} {self.object_name}")
                await self.remove_object()
                self.object_id = ""
                obj = None
        if obj is None:
            self._enter("create", f"Creating {self.object_type} {self.object_name}")
            created = await self.create_object()
            self.object_id = created[self.object_id_key]
            if f"id:{self.object_id}" not in attempt.created:
                attempt.on_undo(f"id:{self.object_id}", self._remover(self.object_id))
            self.log.info(
                "Created %s %s (id: %s) from image %s for %s",
                self.object_type, self.object_name, self.object_id[:12], image, self._log_name,
            )
        else:
            self.log.info("Reusing %s %s for %s", self.object_type, self.object_name, self._log_name)
            token = ContainerView.of(obj).api_token
            if token:
                self.api_token = token
        self._enter("start", f"Starting {self.object_type}")
        await self.start_object()
        if self.post_start_cmd:
            self._enter("post_start", "Running post-start command")
            await self.post_start_exec()
        ip, port = await self.get_ip_and_port()
        self._enter("wait", "Waiting for the server to respond")
        await self._wait_for_server(ip, port)
        if self.remove and self.object_type == "container":
            exits.watcher(self.docker_engine).watch(self.object_id)
        return ip, port

    def _remover(self, ref: str) -> Callable[[], Awaitable[None]]:
        async def remove() -> None:
            await self._remove_container(ref, wait=False)

        return remove

    async def _reuse_blocker(self, obj: dict) -> str | None:
        """Why an existing container must not be started again (None: it may be)."""
        view = ContainerView.of(obj)
        if self.remove:
            return "remove is set, so a leftover container is not reused"
        if not self.replace_changed_containers:
            return None
        info = self._attempt.image_info
        if info and view.image_id and view.image_id != info.get("Id"):
            return f"{self.image} now is {info.get('Id', '')[:19]}, the container has {view.image_id[:19]}"
        spec = container_spec(await self._container_plan())
        new = spec["labels"][naming.LABEL_SPEC_HASH]
        if view.spec_hash != new:
            return f"its spec changed (hash {view.spec_hash or 'none'} -> {new})"
        return None

    async def _create_once(self, spec: dict) -> str:
        """One create call whose result is never lost.

        If the start is cancelled meanwhile, the engine may still make the
        container (a thread cannot be interrupted): wait for its answer so the
        container can be removed. If the answer itself is lost, the name is
        remembered so the cleanup can find the container by it.
        """
        attempt = self._attempt
        by_name = f"name:{spec['name']}"
        attempt.on_undo(by_name, self._name_remover(spec["name"]))
        task = asyncio.ensure_future(self.docker_engine.create_container(spec))
        try:
            cid = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and not task.cancelled() and task.exception() is None:
                attempt.on_undo(f"id:{task.result()}", self._remover(task.result()))
            else:
                self._reap_when_created(task)
            raise
        # on any error the name entry stays: the answer may be lost, not the container
        attempt.forget(by_name)
        attempt.on_undo(f"id:{cid}", self._remover(cid))
        return cid

    def _name_remover(self, name: str) -> Callable[[], Awaitable[None]]:
        async def remove() -> None:
            view = await self._inspect(name)
            if view is not None and view.owner == self._owner:
                await self._remove_container(view.id, wait=False)

        return remove

    _reapers: set = set()

    def _reap_when_created(self, create: asyncio.Future) -> None:
        """Remove the container of a create call nobody waits for any more."""

        async def reap() -> None:
            try:
                cid = await asyncio.wait_for(create, 300)
                await self._remove_container(cid, wait=False)
                self.log.info("Removed container %s of a cancelled start of %s", cid[:12], self._log_name)
            except Exception as e:  # noqa: BLE001 - nothing was made, or it is logged
                self.log.debug("No container to remove after a cancelled start of %s: %s", self._log_name, e)

        reaper = asyncio.ensure_future(reap())
        DockerSpawner._reapers.add(reaper)
        reaper.add_done_callback(DockerSpawner._reapers.discard)

    async def _create(self, spec: dict) -> str:
        name = spec["name"]
        if not naming.valid_container_name(name):
            raise SpawnError(
                "Your server's container cannot be named on this hub.",
                f"container name {_clip(name)} from name_template {self.name_template!r} is not valid for the"
                " engine ([a-zA-Z0-9][a-zA-Z0-9_.-]+): fix DockerSpawner.name_template",
            )
        hostname = spec.get("hostname") or ""
        if len(hostname) > 63:
            raise SpawnError(
                "Your server's name is too long to be used as a host name on this hub.",
                f"hostname {_clip(hostname)} of {self._log_name} is {len(hostname)} characters; a host name has at"
                " most 63 (the engine fails at start): use escape='safe' (names that are DNS labels) or a shorter"
                " name_template, or turn off use_internal_hostname",
            )
        for _ in range(4):
            try:
                cid = await self._create_once(spec)
                self.object_name = spec["name"]
                return cid
            except Conflict:
                holder = await self._inspect(spec["name"])
                if holder is None:
                    # the name is taken by a container being created or removed
                    # right now: look again rather than take another name
                    await asyncio.sleep(0.25)
                    continue
                if self._adoptable(holder):
                    await self._remove_container(holder.id)
                    continue
                distinct = naming.distinct_name(self._established_name(), naming.owner_key(*self._owner))
                if spec["name"] == distinct:
                    break
                self.log.warning(
                    "Container name %s is held by another owner; using %s for %s",
                    spec["name"], distinct, self._log_name,
                )
                spec = {**spec, "name": distinct}
            except NotFound as e:
                raise self._create_not_found(spec, e) from None
        holders = []
        for held in dict.fromkeys([name, spec["name"]]):
            view = await self._inspect(held)
            owner = view.owner if view else None
            who = f"user {owner[0]!r}, server {owner[1]!r}" if owner else "no dockerspawner owner labels"
            holders.append(f"{held} ({who})")
        raise SpawnError(
            "The name of your server's container is taken.",
            f"cannot create a container for {self._log_name}: the names {', '.join(holders)} are taken;"
            " remove or rename those containers (docker rm NAME) or change DockerSpawner.name_template",
        )

    def _create_not_found(self, spec: dict, error: NotFound) -> SpawnError:
        network = (spec.get("host_config") or {}).get("network_mode")
        name = spec.get("name", self.object_name)
        if "network" in error.explanation.lower() and network:
            return SpawnError(
                f"The network {network} does not exist.",
                f"create of {name} failed: {error.explanation};"
                f" create the network (docker network create {network}) or fix DockerSpawner.network_name",
            )
        return SpawnError(
            f"Could not create your server: {_short(error.explanation)}",
            f"create of {name} failed: {_short(error.explanation, 3000)}",
        )

    def _redact(self, text: str) -> str:
        """Hide the server's API token in container output before it is logged or shown."""
        token = self.api_token
        return text.replace(token, "[API token]") if token and len(token) >= 8 else text

    async def _remove_container(self, ref: str, *, wait: bool = True) -> None:
        """Remove a container; gone or already being removed counts as done.

        With ``wait``, return only once the engine no longer knows it, so that its
        name can be used again at once. A remove the engine answered has removed
        it; only a removal already in progress (auto-remove, another remover) is waited for.
        """
        engine = self.docker_engine
        try:
            await engine.remove_container(ref, force=True, volumes=False)
            return
        except NotFound:
            return
        except Conflict as e:
            if "in progress" not in e.explanation:
                raise
        if not wait:
            return
        delay = 0.05
        for _ in range(100):
            try:
                await engine.inspect_container(ref)
            except NotFound:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise SpawnError(
            "Your previous server is still being removed. Please try again in a minute.",
            f"container {ref} is still present after removal",
        )

    async def _wait_for_server(self, ip: str, port: int) -> None:
        """Wait until the server answers HTTP, failing at once if its container exits.

        The hub's own check would only notice a dead container after http_timeout;
        here the user learns the exit code and the last log lines right away.
        """
        if self.internal_ssl:
            return
        base = self.server.base_url if self.server else "/"
        path = f"{base}api"
        loop = asyncio.get_running_loop()
        delay = 0.05
        deadline = loop.time() + self.http_timeout
        while not await probe.answers_http(ip, port, path):
            await self._check_alive()
            if loop.time() > deadline:
                raise SpawnError(
                    f"Your server did not respond within {self.http_timeout} seconds.",
                    f"{self._log_name} at http://{ip}:{port}{path} did not answer in {self.http_timeout}s;"
                    " raise Spawner.http_timeout or check the container's log",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _check_alive(self) -> None:
        """Fail the start at once if the server's process is gone (containers: exited).

        Asked after every failed HTTP attempt, so it is answered like ``poll()``:
        the shared index says "running" without an engine call while it has seen
        no event of the container since it last knew it running; anything else is
        inspected (a burst of 200 spawns made ~10 inspects each while waiting).
        """
        if self.object_type != "container":
            return
        index = self._poll_index()
        generation = 0
        if index is not None:
            if index.lookup(self.object_id) is True:
                return
            generation = index.generation(self.object_id)
        info = await self._check_running()
        if index is not None:
            view = ContainerView.of(info)
            index.learn(view.id, view.name, view.running, generation)

    async def _check_running(self) -> dict:
        info = await self.docker_engine.inspect_container(self.object_id)
        if not (info.get("State") or {}).get("Running"):
            await self._raise_exited(ContainerView.of(info))
        self._attempt.started_info = info
        return info

    async def _log_tail(self, container_id: str) -> str:
        """The last log lines of a container, redacted and bounded ("" when unreadable)."""
        try:
            logs = await self.docker_engine.container_logs(container_id, tail=20)
        except EngineError:
            return ""
        tail = self._redact("\n".join(logs.strip().splitlines()[-5:]))
        return "\n".join(_short(line, 300) for line in tail.splitlines())

    async def _raise_exited(self, view: ContainerView) -> None:
        tail = await self._log_tail(view.id)
        if view.oom_killed:
            user = "Your server ran out of memory while starting and was stopped."
            fix = f"raise {type(self).__name__}.mem_limit"
        else:
            user = f"Your server exited while starting (exit code {view.exit_code})."
            fix = "check the image and command"
        if tail:
            user = f"{user} Last log lines:\n{tail}"
        raise SpawnError(
            user,
            f"container {view.name} of {self._log_name} exited with {view.exit_code}"
            f" (OOMKilled={view.oom_killed}, Error={view.error!r}); {fix}; log tail:\n{tail}",
        )

    @property
    def _stop_timeout(self) -> int:
        return 0 if self.__dict__.get("_stop_now") else 10

    async def stop(self, now: bool = False) -> None:
        """Stop the server; with ``remove``, remove its container (and certs volume) too."""
        if not (self.object_id or self.object_name):
            return
        self.__dict__["_stop_now"] = now
        if self.object_id and self.remove:
            # this stop removes the container itself: the watcher reaping it on its
            # "die" would only race the remove below (one inspect and remove more)
            exits.watcher(self.docker_engine).unwatch(self.object_id)
        try:
            self.log.info("Stopping %s %s (id: %s)", self.object_type, self.object_name, (self.object_id or "")[:12])
            await self.stop_object()
            if self.remove:
                await self.remove_object()
                self.object_id = ""
                await self._remove_certs_volume()
        finally:
            self.__dict__["_stop_now"] = False
        self.clear_state()

    def _poll_from_index(self) -> bool:
        # a subclass with its own get_object decides what "its object" is
        return (
            self.poll_from_events
            and self.object_type == "container"
            and type(self).get_object is DockerSpawner.get_object
        )

    def _poll_index(self):
        """The shared index ``poll()`` reads (None when it inspects instead),
        remembered for this spawner's engine."""
        engine = self.docker_engine
        cached = self.__dict__.get("_poll_index_cache")
        if cached is None or cached[0] is not engine:
            cached = self.__dict__["_poll_index_cache"] = (engine, index_for(engine) if self._poll_from_index() else None)
        return cached[1]

    def _engine_hiccup(self, error: EngineError) -> bool:
        """Whether ``poll()`` reads ``error`` as "still running" (and logs it):
        an engine that does not answer, or answers 5xx, is not a dead server."""
        if isinstance(error, EngineUnavailable):
            self.log.warning("Engine unreachable while polling %s, assuming it still runs: %s", self._log_name, error)
            return True
        if error.status is not None and error.status >= 500:
            self.log.warning("Engine error while polling %s, assuming it still runs: %s", self._log_name, error)
            return True
        return False

    async def poll(self) -> int | str | None:
        """None while the server runs; its exit status once it stopped.

        An engine that does not answer, or answers 5xx, is not a dead server:
        poll says "running" and logs, so a hiccup does not stop anyone's server.
        """
        known_id = self.object_id
        if not known_id and not self.object_name:
            return 0
        index = self._poll_index() if known_id else None
        if index is not None:
            try:
                answer = index.lookup(known_id)
                if answer is None and not index.in_sync:
                    answer = await index.running(known_id)
                if answer:
                    return None
            except Exception as e:  # noqa: BLE001 - the inspect below decides
                self.log.debug("Container index could not answer for %s: %s", self._log_name, e)
                index = None
        generation = index.generation(known_id) if index is not None else 0
        try:
            obj = await self.get_object()
        except EngineError as e:
            if self._engine_hiccup(e):
                return None
            raise
        watcher = exits.watcher(self.docker_engine)
        if obj is None:
            return (watcher.exit_status(known_id) if known_id else None) or 0
        view = ContainerView.of(obj)
        if index is not None and view.id == known_id:
            index.learn(view.id, view.name, view.running, generation)
        if view.running:
            return None
        if self.remove and self.object_type == "container":
            # the watcher missed it (hub was down, stream broke): remove it now
            return await watcher.reap(view)
        return view.exit_status()

_api_calls: weakref.WeakKeyDictionary[DockerEngine, APIClientCalls] = weakref.WeakKeyDictionary()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

