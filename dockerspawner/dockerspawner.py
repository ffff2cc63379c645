"""DockerSpawner: one container per single-user server.

Config-compatible with dockerspawner 14.x (trait names, defaults, names, saved
state). Engine access goes through the protocol only; specs come from
``dockerspawner.specs``; names from ``dockerspawner.naming``.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import io
import math
import os
import sys
import tarfile
import time
import weakref
from typing import Any, Callable
from urllib.parse import urlparse

import jupyterhub
from jupyterhub.spawner import Spawner
from jupyterhub.traitlets import ByteSpecification, Callable as CallableTrait
from tornado import web
from traitlets import (
    Any as AnyTrait,
    Bool,
    CaselessStrEnum,
    Dict,
    Float,
    Int,
    List,
    TraitType,
    Unicode,
    Union,
    default,
    observe,
)

from . import naming, orphans
from .engine import Conflict, DockerEngine, EngineError, EngineUnavailable, NotFound
from .engine.connect import shared_engine
from .progress import PHASES, ProgressLog, PullProgress, pull_message
from .specs import ContainerPlan, check_confined, container_spec, publishes_port, render_templates, volume_binds

_hub_version = ".".join(jupyterhub.__version__.split(".")[:2])

#: Where ``move_certs`` puts a server's internal-SSL certificates in its container.
CERTS_DIR = "/etc/jupyterhub/internal-ssl"


class SpawnError(web.HTTPError):
    """A spawn failure with a short message for the user (``jupyterhub_message``,
    which JupyterHub shows on the spawn page and in API errors) and the full
    story with the fix for the admin log (``str(e)``).

    An HTTPError, so that JupyterHub logs it as one line rather than as an
    unexpected exception with a traceback.
    """

    def __init__(self, user_message: str, detail: str | None = None):
        super().__init__(500, (detail or user_message).replace("%", "%%"))
        self.jupyterhub_message = user_message
        self.detail = detail or user_message

    def __str__(self) -> str:
        return self.detail


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


#: JupyterHub >= 5.3 makes options_from_form a configurable trait; before, a method.
_OPTIONS_FROM_FORM_IS_TRAIT = isinstance(Spawner.__dict__.get("options_from_form"), TraitType)


def _image_options_from_form(formdata: dict) -> dict:
    """The form's ``image`` field -> ``{"image": ...}``; nothing else is taken."""
    image = formdata.get("image")
    if isinstance(image, list):
        image = image[0] if image else None
    return {"image": image} if image else {}


def _short(text: str, limit: int = 300) -> str:
    """One line of an engine message, for users."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _default_format_volume_name(template: str, spawner: "DockerSpawner") -> str:
    return template.format(**spawner.template_namespace())


class DockerSpawner(Spawner):
    """A spawner for JupyterHub that runs each server in a Docker container."""

    object_type = "container"

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
        help="Keyword arguments for the engine factory, e.g. {'max_workers': 64} or fakedocker options.",
    )
    client_kwargs = Dict(config=True, help="Extra keyword arguments for docker.APIClient.")
    tls_config = Dict(config=True, help="Arguments for docker.tls.TLSConfig (e.g. client_cert, ca_cert).")
    use_docker_client_env = Bool(
        True, config=True, help="Honour DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH."
    )

    # -- image ----------------------------------------------------------------
    image = Unicode(
        f"quay.io/jupyterhub/singleuser:{_hub_version}",
        config=True,
        help="The image to use for single-user servers (must run jupyterhub-singleuser).",
    )
    cmd = Union(
        [Unicode(), List(Unicode())],
        default_value=None,
        allow_none=True,
        config=True,
        help="The command to run in the container. None: the image's own Cmd.",
    )
    allowed_images = Union(
        [Unicode(), List(Unicode()), Dict(), CallableTrait()],
        default_value=[],
        config=True,
        help="""Images users may choose through user_options['image'] or the form.
        A list, a dict of display name to image, "*" for any image, or a callable
        taking the spawner and returning one of those (may be async). Empty: users
        may not choose an image.""",
    )
    pull_policy = CaselessStrEnum(
        ["always", "ifnotpresent", "never", "skip"],
        default_value="ifnotpresent",
        config=True,
        help="""When to pull the image: 'ifnotpresent' (default), 'always', 'never' (fail if
        missing) or 'skip' (do not check; the engine fails at create if missing).""",
    )

    # -- names ----------------------------------------------------------------
    prefix = Unicode("jupyter", config=True, help="Prefix of container names.")
    name_template = Unicode(
        config=True,
        help="""Name of the container, a format string with {prefix}, {username},
        {safe_username}, {raw_username}, {servername}, {raw_servername}, {imagename}.""",
    )

    @default("name_template")
    def _default_name_template(self) -> str:
        return naming.default_name_template(self.name or "")

    escape = AnyTrait(
        "escape",
        config=True,
        help="""How to escape names: 'escape' (default, the established scheme),
        'legacy' (dockerspawner < 12), 'safe' (readable DNS labels, for new deployments)
        or a callable str -> str.""",
    )

    # -- volumes and networking ----------------------------------------------
    volumes = Dict(
        config=True,
        help="""Map of host path or volume name to container path, or to a dict with
        'bind', 'mode' ('rw', 'ro', 'z', 'Z') and 'propagation'. Both may use {username}...""",
    )
    read_only_volumes = Dict(config=True, help="Like volumes, mounted read-only.")
    mounts = List(
        Dict(),
        config=True,
        help="Mounts in docker.types.Mount keywords (target, source, type, read_only, ...); templated.",
    )
    format_volume_name = AnyTrait(
        config=True, help="Callable (template, spawner) -> str used to render volume names and paths."
    )

    @default("format_volume_name")
    def _default_format_volume_name(self) -> Callable:
        return _default_format_volume_name

    network_name = Unicode("bridge", config=True, help="The network the container joins.")
    use_internal_ip = Bool(
        config=True, help="Reach the server at its container IP instead of a published host port."
    )

    @default("use_internal_ip")
    def _default_use_internal_ip(self) -> bool:
        return self.network_name not in {"bridge", "host"}

    use_internal_hostname = Bool(False, config=True, help="Reach the server by its container hostname.")
    host_ip = Unicode(config=True, help="The host address the server's port is published on.")

    @default("host_ip")
    def _default_host_ip(self) -> str:
        docker_host = os.environ.get("DOCKER_HOST", "")
        if docker_host.startswith("tcp://"):
            return urlparse(docker_host).hostname or "127.0.0.1"
        return "127.0.0.1"

    links = Dict(config=True, help="Legacy container links: {name: alias}.")

    @default("port")
    def _default_port(self) -> int:
        return 8888

    @default("ip")
    def _default_ip(self) -> str:
        return "0.0.0.0"

    # -- limits and extras -----------------------------------------------------
    mem_limit = Union(
        [CallableTrait(), ByteSpecification()],
        default_value=None,
        allow_none=True,
        config=True,
        help="Memory limit (e.g. '2G'), or a callable (spawner) -> limit evaluated at every start.",
    )
    cpu_limit = Union(
        [CallableTrait(), Float()],
        default_value=None,
        allow_none=True,
        config=True,
        help="CPU limit in cores, or a callable (spawner) -> limit evaluated at every start.",
    )
    extra_create_kwargs = Union(
        [CallableTrait(), Dict()],
        default_value={},
        config=True,
        help="Extra create_container keywords, or a callable (spawner) -> dict (may be async). Deep-merged.",
    )
    extra_host_config = Union(
        [CallableTrait(), Dict()],
        default_value={},
        config=True,
        help="Extra create_host_config keywords, or a callable (spawner) -> dict (may be async). Deep-merged.",
    )
    remove = Bool(False, config=True, help="Remove the container when the server stops.")
    post_start_cmd = Union(
        [Unicode(), List(Unicode()), Bool()],
        default_value=False,
        allow_none=True,
        config=True,
        help="A command run in the container after it starts; a non-zero exit fails the spawn.",
    )

    remove_orphans = Bool(
        False,
        config=True,
        help="""When the hub starts, remove containers this spawner made (by label and
        name prefix) that no server in the hub's database owns. Logged. Leave off if
        several hubs share an engine and a prefix.""",
    )

    _orphan_sweeps: "weakref.WeakSet" = weakref.WeakSet()

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
        from jupyterhub import orm

        owned = orphans.owned_refs(s.state for s in db.query(orm.Spawner))
        task = loop.create_task(
            # Created is in whole seconds: spare everything from this second on
            orphans.remove_orphans(engine, owned, prefix=self.prefix, created_before=math.floor(time.time()))
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

    # -- deprecated aliases ----------------------------------------------------
    container_image = Unicode(config=True, help="Deprecated: use image.")
    container_port = Int(config=True, help="Deprecated: use port.")
    container_ip = Unicode(config=True, help="Deprecated: use host_ip.")
    container_prefix = Unicode(config=True, help="Deprecated: use prefix.")
    container_name_template = Unicode(config=True, help="Deprecated: use name_template.")
    remove_containers = Bool(config=True, help="Deprecated: use remove.")
    image_whitelist = Union(
        [Unicode(), List(Unicode()), Dict(), CallableTrait()], config=True, help="Deprecated: use allowed_images."
    )

    _deprecated_aliases = {
        "container_image": "image",
        "container_port": "port",
        "container_ip": "host_ip",
        "container_prefix": "prefix",
        "container_name_template": "name_template",
        "remove_containers": "remove",
        "image_whitelist": "allowed_images",
    }

    @observe(*_deprecated_aliases)
    def _deprecated_alias_changed(self, change: dict) -> None:
        new_name = self._deprecated_aliases[change["name"]]
        self.log.warning(
            "%s.%s is deprecated, use %s.%s instead",
            self.__class__.__name__, change["name"], self.__class__.__name__, new_name,
        )
        setattr(self, new_name, change["new"])

    # -- state -------------------------------------------------------------------
    object_id = Unicode("", allow_none=True)
    object_name = Unicode("", allow_none=True)

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.object_id = state.get("object_id") or state.get("container_id") or ""
        self.object_name = state.get("object_name") or state.get("container_name") or ""

    def get_state(self) -> dict:
        state = super().get_state()
        if self.object_id:
            state["object_id"] = self.object_id
        if self.object_name:
            state["object_name"] = self.object_name
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.object_id = ""

    # -- engine access -------------------------------------------------------------
    @property
    def docker_engine(self) -> DockerEngine:
        """The engine client, shared by all spawners with the same settings."""
        if not isinstance(self.engine, str):
            return self.engine
        options = dict(self.engine_options)
        if self.engine == "docker":
            options.setdefault("client_kwargs", dict(self.client_kwargs))
            options.setdefault("tls_config", dict(self.tls_config))
            options.setdefault("use_env", self.use_docker_client_env)
        return shared_engine(self.engine, **options)

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
                image=self._current_image(),
                escape=self._escape_fn,
            )
        )
        return ns

    def _current_image(self) -> str:
        return getattr(self, "_resolved_image", None) or self.image

    def _scheme(self) -> str:
        return self.escape if isinstance(self.escape, str) else "escape"

    def _established_name(self) -> str:
        return naming.object_name(self.name_template, self.template_namespace(), scheme=self._scheme())

    @property
    def _owner(self) -> tuple[str, str]:
        return (self.user.name, self.name or "")

    def _owner_labels(self) -> dict[str, str]:
        return naming.owner_labels(*self._owner)

    def _may_adopt(self, info: dict, name: str) -> bool:
        """Whether an existing object may be taken as this server's.

        Labelled objects must be labelled for this user and server. Unlabelled
        ones (made by dockerspawner 14) only under the established name, and only
        when that name cannot also belong to a server differing in case.
        """
        labels = (info.get("Config") or {}).get("Labels") or info.get("Labels") or {}
        owner = naming.labels_owner(labels)
        if owner is not None:
            return owner == self._owner
        servername = self.name or ""
        return name == self._established_name() and servername == servername.lower()

    # -- images ------------------------------------------------------------------------
    async def _allowed_images(self) -> dict[str, str] | str:
        allowed = self.allowed_images
        if callable(allowed):
            allowed = await _maybe_await(allowed(self))
        if allowed == "*" or allowed == ["*"]:
            return "*"
        if isinstance(allowed, str):
            return {allowed: allowed} if allowed else {}
        if isinstance(allowed, dict):
            return dict(allowed)
        return {image: image for image in allowed or []}

    def _known_user_options(self) -> set[str] | None:
        """The user_options keys this hub understands, or None for "any".

        When the admin handles options themselves (their own options_from_form,
        a callable apply_user_options, or a pre_spawn_hook that may read them),
        only they know the keys, so none are refused here.
        """
        apply = getattr(self, "apply_user_options", None)
        if callable(apply) or self.pre_spawn_hook is not None:
            return None
        if not self._form_is_ours():
            return None
        known = {"image"}
        if isinstance(apply, dict):
            known.update(apply)
        return known

    def _validate_user_options(self) -> None:
        """Refuse user_options this spawner does not understand (HTTP 400), for the
        form, the REST API and admin-started servers alike."""
        options = self.user_options or {}
        if not isinstance(options, dict):
            raise web.HTTPError(400, "user_options must be a JSON object")
        known = self._known_user_options()
        if known is not None:
            unknown = sorted(set(options) - known)
            if unknown:
                raise web.HTTPError(
                    400, f"unknown user_options {', '.join(map(repr, unknown))}; accepted: {', '.join(sorted(known))}"
                )
        image = options.get("image")
        if image is not None and not isinstance(image, str):
            raise web.HTTPError(400, f"user_options 'image' must be a string, not {type(image).__name__}")

    async def _resolve_image(self) -> str:
        self._validate_user_options()
        requested = (self.user_options or {}).get("image")
        if not requested:
            return self.image
        allowed = await self._allowed_images()
        if allowed == "*":
            return requested
        if requested in allowed:
            return allowed[requested]
        if requested in allowed.values():
            return requested
        if not allowed:
            message = "choosing an image is not allowed on this hub (DockerSpawner.allowed_images is empty)"
        else:
            message = f"image {requested!r} is not allowed; choose one of: {', '.join(sorted(allowed))}"
        raise web.HTTPError(400, message)

    @default("options_form")
    def _default_options_form(self) -> Callable:
        return DockerSpawner._render_options_form

    async def _render_options_form(self) -> str:
        allowed = await self._allowed_images()
        current = (self.user_options or {}).get("image") or self.image
        if allowed == "*":
            return (
                '<label for="image">Image:</label>'
                f'<input class="form-control" name="image" id="image" value="{html.escape(current)}">'
            )
        if len(allowed) <= 1:
            return ""
        options = "".join(
            f'<option value="{html.escape(key)}"{" selected" if current in (key, image) else ""}>'
            f"{html.escape(key)}</option>"
            for key, image in allowed.items()
        )
        return (
            '<label for="image">Select an image:</label>'
            f'<select class="form-control" name="image" id="image" required autofocus>{options}</select>'
        )

    if _OPTIONS_FROM_FORM_IS_TRAIT:

        @default("options_from_form")
        def _default_options_from_form(self) -> Callable:
            return _image_options_from_form

    else:

        def options_from_form(self, formdata: dict) -> dict:
            return _image_options_from_form(formdata)

    def _form_is_ours(self) -> bool:
        handler = self.options_from_form
        return getattr(handler, "__func__", handler) in (_image_options_from_form, DockerSpawner.__dict__.get("options_from_form"))

    async def _ensure_image(self, image: str) -> dict | None:
        """Make the image present according to pull_policy; return its inspect (None if skipped)."""
        engine = self.docker_engine
        policy = self.pull_policy.lower()
        if policy == "skip":
            return None
        if policy != "always":
            try:
                return await engine.inspect_image(image)
            except NotFound:
                if policy == "never":
                    raise SpawnError(
                        f"Image {image} is not on the server and pulling is disabled.",
                        f"image {image} not present and DockerSpawner.pull_policy is 'never':"
                        " pull it on the engine or change pull_policy",
                    ) from None
        await self._pull(image)
        return await engine.inspect_image(image)

    async def _pull(self, image: str) -> None:
        self.log.info("Pulling image %s for %s", image, self._log_name)
        self._enter("pull", f"Pulling image {image}")
        tracker = PullProgress()
        shown = -1
        try:
            async for event in self.docker_engine.pull_image(image):
                if event.status == "complete":
                    self.log.info("Pulled %s (%s) for %s", image, event.image_id, self._log_name)
                    continue
                tracker.update(event)
                if tracker.percent != shown:
                    shown = tracker.percent
                    self._progress.emit(*pull_message(image, shown))
        except NotFound as e:
            raise SpawnError(
                f"Image {image} was not found.",
                f"pull of {image} for {self._log_name} failed: {e.explanation};"
                " check DockerSpawner.image / allowed_images and that the registry has this tag",
            ) from None
        except EngineUnavailable:
            raise
        except EngineError as e:
            raise SpawnError(
                f"Pulling image {image} failed: {_short(e.explanation)}",
                f"pull of {image} for {self._log_name} failed: {e}",
            ) from None

    # -- env, command, limits ---------------------------------------------------------
    def get_env(self) -> dict:
        env = super().get_env()
        image = self._current_image()
        env["JUPYTER_IMAGE_SPEC"] = image
        env["JUPYTER_IMAGE"] = image
        # callable limits: the base class would write the function's repr
        mem, cpu = getattr(self, "_start_limits", (None, None))
        for key, trait, value in (("MEM_LIMIT", self.mem_limit, mem), ("CPU_LIMIT", self.cpu_limit, cpu)):
            if callable(trait):
                env.pop(key, None)
                if value:
                    env[key] = str(value)
        return env

    async def _command(self, image_info: dict | None, image: str) -> list[str] | None:
        if self.cmd:
            cmd = [self.cmd] if isinstance(self.cmd, str) else list(self.cmd)
        else:
            if image_info is None:
                image_info = await self.docker_engine.inspect_image(image)
            cmd = list((image_info.get("Config") or {}).get("Cmd") or [])
            if not cmd:
                raise SpawnError(
                    f"Image {image} does not say what to run.",
                    f"image {image} has no Cmd: set DockerSpawner.cmd (e.g. ['jupyterhub-singleuser'])",
                )
        return cmd + list(self.get_args())

    async def _evaluate(self, value: Any) -> Any:
        if callable(value):
            return await _maybe_await(value(self))
        return value

    def _format_volume(self, value: str) -> str:
        rendered = self.format_volume_name(value, self)
        try:
            return check_confined(value, rendered)
        except ValueError as e:
            raise SpawnError(
                "Your user or server name cannot be used in a storage path on this hub.",
                f"refusing volume for {self._log_name}: {e}; use {{username}} (escaped) in volume templates",
            ) from None

    def _binds(self) -> dict:
        def fmt(volumes: dict) -> dict:
            out = {}
            for source, target in volumes.items():
                if isinstance(target, dict):
                    target = {**target, "bind": self._format_volume(target.get("bind", ""))}
                else:
                    target = self._format_volume(target)
                out[self._format_volume(source)] = target
            return out

        return volume_binds(fmt(self.volumes), fmt(self.read_only_volumes))

    def _mounts(self) -> list[dict]:
        mounts = []
        for mount in self.mounts:
            mount = dict(mount)
            for key in ("source", "target"):
                if isinstance(mount.get(key), str):
                    mount[key] = self._format_volume(mount[key])
            mounts.append(mount)
        return mounts

    async def _plan(self, name: str, image: str, image_info: dict | None) -> ContainerPlan:
        ns = self.template_namespace()
        mem_limit = await self._evaluate(self.mem_limit)
        cpu_limit = await self._evaluate(self.cpu_limit)
        extra_create = render_templates(await self._evaluate(self.extra_create_kwargs) or {}, ns, self.log.warning)
        extra_host = render_templates(await self._evaluate(self.extra_host_config) or {}, ns, self.log.warning)
        if isinstance(mem_limit, str):
            mem_limit = ByteSpecification().validate(self, mem_limit)
        self._start_limits = (mem_limit, cpu_limit)
        binds = self._binds()
        if getattr(self, "_certs_volume", None):
            binds[self._certs_volume] = {"bind": CERTS_DIR, "mode": "ro"}
        return ContainerPlan(
            name=name,
            image=image,
            command=await self._command(image_info, image),
            env=self.get_env(),
            labels=self._owner_labels(),
            port=self.port,
            host_ip=self.host_ip,
            network_name=self.network_name,
            use_internal_ip=self.use_internal_ip,
            use_internal_hostname=self.use_internal_hostname,
            binds=binds,
            mounts=self._mounts(),
            links=dict(self.links),
            mem_limit=mem_limit,
            cpu_limit=cpu_limit,
            extra_create_kwargs=extra_create,
            extra_host_config=extra_host,
        )

    # -- finding our container ---------------------------------------------------------
    async def _inspect(self, ref: str) -> dict | None:
        try:
            return await self.docker_engine.inspect_container(ref)
        except NotFound:
            return None

    async def _find_existing(self) -> dict | None:
        """This server's container, by saved id, else by name; never another owner's."""
        if self.object_id:
            info = await self._inspect(self.object_id)
            if info is not None:
                name = info["Name"].lstrip("/")
                if not self._may_adopt(info, name):
                    raise SpawnError(
                        "Your server's container belongs to someone else.",
                        f"container {name} ({info['Id'][:12]}) in the saved state of {self._log_name}"
                        " is labelled for another owner; refusing to use it",
                    )
                return info
            self.object_id = ""
        established = self._established_name()
        names = list(dict.fromkeys([self.object_name or established, established]))
        for name in names:
            info = await self._inspect(name)
            if info is None:
                continue
            if self._may_adopt(info, name):
                self.object_name = name
                return info
            if name == established:
                # held by someone else: ours, if any, has the derived name
                distinct = naming.distinct_name(established, naming.owner_key(*self._owner))
                info = await self._inspect(distinct)
                if info is not None and self._may_adopt(info, distinct):
                    self.object_name = distinct
                    return info
        return None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def _progress(self) -> ProgressLog:
        log = getattr(self, "_progress_log", None)
        if log is None or log.closed:
            log = self._progress_log = ProgressLog()
        return log

    async def progress(self):
        async for event in self._progress.follow():
            yield event

    def _enter(self, phase: str, message: str) -> None:
        self._phase = message
        self._progress.emit(PHASES[phase], message)

    async def start(self) -> tuple[str, int]:
        """Pull, create (or reuse), start, and wait until the server answers.

        Runs under its own deadline a little shorter than the hub's start_timeout, so
        a slow start fails with the phase it was in rather than a bare timeout; any
        failure or cancellation removes what this start created.
        """
        self._phase = "preparing"
        created: list[str] = []
        try:
            budget = max(self.start_timeout - 2, self.start_timeout * 0.8)
            return await asyncio.wait_for(self._start(created), budget)
        except asyncio.TimeoutError:
            raise SpawnError(
                f"Your server did not start within {self.start_timeout} seconds (it was {self._phase}).",
                f"start of {self._log_name} timed out after {self.start_timeout}s while {self._phase};"
                " raise Spawner.start_timeout if this is expected",
            ) from None
        except EngineUnavailable as e:
            raise SpawnError(
                "The container engine is not reachable right now. Please try again later.",
                f"engine unreachable while {self._phase} for {self._log_name}: {e}",
            ) from None
        except EngineError as e:
            raise SpawnError(
                f"Your server could not start while {self._phase}: {_short(e.explanation)}",
                f"engine error while {self._phase} for {self._log_name}: {e}",
            ) from None
        finally:
            if created and sys.exc_info()[0] is not None:
                await asyncio.shield(self._discard(created))
            self._progress.close()

    async def _discard(self, created: list[str]) -> None:
        """Remove what a failed start made, in reverse order; never raise."""
        for ref in reversed(created):
            try:
                if ref.startswith("volume:"):
                    await self.docker_engine.remove_volume(ref[len("volume:"):], force=True)
                elif ref.startswith("name:"):
                    info = await self._inspect(ref[len("name:"):])
                    if info is not None and naming.labels_owner(info["Config"].get("Labels") or {}) == self._owner:
                        await self._remove_container(info["Id"], wait=False)
                else:
                    await self._remove_container(ref, wait=False)
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                self.log.warning("Could not remove %s after a failed start of %s: %s", ref, self._log_name, e)
        self.object_id = ""

    async def _start(self, created: list[str]) -> tuple[str, int]:
        engine = self.docker_engine
        image = await self._resolve_image()
        self._resolved_image = image
        self._enter("image", f"Checking image {image}")
        image_info = await self._ensure_image(image)
        if getattr(self, "_certs_created", False):
            created.append(f"volume:{self._certs_volume}")
        existing = await self._find_existing()
        name = self.object_name or self._established_name()
        plan = await self._plan(name, image, image_info)
        spec = container_spec(plan)
        if existing is not None:
            reason = self._reuse_blocker(existing, spec, image_info)
            if reason is None:
                self.log.info("Reusing container %s for %s", existing["Name"].lstrip("/"), self._log_name)
                self._adopt_token(existing)
                self.object_id = existing["Id"]
                self.object_name = existing["Name"].lstrip("/")
            else:
                self.log.info(
                    "Replacing container %s for %s: %s", existing["Name"].lstrip("/"), self._log_name, reason
                )
                self._enter("create", f"Replacing container {existing['Name'].lstrip('/')}")
                await self._remove_container(existing["Id"])
                existing = None
        if existing is None:
            self._enter("create", f"Creating container {name}")
            self.object_id = await self._create(spec, created)
        self._enter("start", "Starting container")
        try:
            await engine.start_container(self.object_id)
        except NotFound as e:
            # Docker checks the network at start, not at create
            raise self._create_not_found(spec, e) from None
        await self._check_running()
        if self.post_start_cmd:
            self._enter("post_start", "Running post-start command")
            await self._post_start()
        ip, port = await self.get_ip_and_port()
        self._enter("wait", "Waiting for the server to respond")
        await self._wait_for_server(ip, port)
        return ip, port

    def _reuse_blocker(self, existing: dict, spec: dict, image_info: dict | None) -> str | None:
        """Why a stopped container must not be started again (None: it may be)."""
        if self.remove:
            return "remove is set, so a leftover container is not reused"
        if image_info and existing.get("Image") and existing["Image"] != image_info.get("Id"):
            return f"{spec['image']} now is {image_info.get('Id', '')[:19]}, the container has {existing['Image'][:19]}"
        labels = (existing.get("Config") or {}).get("Labels") or {}
        old = labels.get(naming.LABEL_SPEC_HASH)
        new = spec["labels"][naming.LABEL_SPEC_HASH]
        if old != new:
            return f"its spec changed (hash {old or 'none'} -> {new})"
        return None

    def _adopt_token(self, info: dict) -> None:
        """A reused container keeps the API token it was created with; tell the hub."""
        for line in (info.get("Config") or {}).get("Env") or []:
            key, _, value = line.partition("=")
            if key in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN") and value:
                self.api_token = value
                return

    async def _create_once(self, spec: dict, created: list[str]) -> str:
        """One create call whose result is never lost.

        If the start is cancelled meanwhile, the engine may still make the
        container (a thread cannot be interrupted): wait for its answer so the
        container can be removed. If the answer itself is lost, the name is
        remembered so the cleanup can find the container by it.
        """
        created.append(f"name:{spec['name']}")
        task = asyncio.ensure_future(self.docker_engine.create_container(spec))
        try:
            cid = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and not task.cancelled() and task.exception() is None:
                created.append(task.result())
            else:
                self._reap_when_created(task)
            raise
        created.remove(f"name:{spec['name']}")
        created.append(cid)
        return cid

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

    async def _create(self, spec: dict, created: list[str]) -> str:
        name = spec["name"]
        for _ in range(4):
            try:
                cid = await self._create_once(spec, created)
                self.object_name = spec["name"]
                self.log.info("Created container %s (%s) for %s", spec["name"], cid[:12], self._log_name)
                return cid
            except Conflict:
                created.remove(f"name:{spec['name']}")
                holder = await self._inspect(spec["name"])
                if holder is not None and self._may_adopt(holder, spec["name"]):
                    await self._remove_container(holder["Id"])
                    continue
                distinct = naming.distinct_name(name, naming.owner_key(*self._owner))
                if spec["name"] == distinct:
                    break
                self.log.warning(
                    "Container name %s is held by another owner; using %s for %s",
                    spec["name"], distinct, self._log_name,
                )
                spec = {**spec, "name": distinct}
            except NotFound as e:
                created.remove(f"name:{spec['name']}")
                raise self._create_not_found(spec, e) from None
        holders = []
        for held in dict.fromkeys([name, spec["name"]]):
            info = await self._inspect(held)
            labels = ((info or {}).get("Config") or {}).get("Labels") or {}
            owner = naming.labels_owner(labels)
            who = f"user {owner[0]!r}, server {owner[1]!r}" if owner else "no dockerspawner owner labels"
            holders.append(f"{held} ({who})")
        raise SpawnError(
            "The name of your server's container is taken.",
            f"cannot create a container for {self._log_name}: the names {', '.join(holders)} are taken;"
            " remove or rename those containers (docker rm NAME) or change DockerSpawner.name_template",
        )

    def _create_not_found(self, spec: dict, error: NotFound) -> SpawnError:
        network = (spec.get("host_config") or {}).get("network_mode")
        if "network" in error.explanation.lower() and network:
            return SpawnError(
                f"The network {network} does not exist.",
                f"create of {spec['name']} failed: {error.explanation};"
                f" create the network (docker network create {network}) or fix DockerSpawner.network_name",
            )
        return SpawnError(
            f"Could not create your server: {_short(error.explanation)}",
            f"create of {spec['name']} failed: {error.explanation}",
        )

    def _redact(self, text: str) -> str:
        """Hide the server's API token in container output before it is logged or shown."""
        token = self.api_token
        return text.replace(token, "[API token]") if token and len(token) >= 8 else text

    async def _post_start(self) -> None:
        cmd = self.post_start_cmd
        if not cmd:
            return
        result = await self.docker_engine.exec_run(self.object_id, cmd)
        self.log.info(
            "post_start_cmd %r in %s exited %s: %s%s",
            cmd, self.object_name, result.exit_code,
            self._redact(result.stdout.decode(errors="replace")[-2000:]),
            self._redact(result.stderr.decode(errors="replace")[-2000:]),
        )
        if result.exit_code != 0:
            tail = self._redact(result.stderr.decode(errors="replace").strip()[-500:])
            raise SpawnError(
                f"The post-start command failed (exit code {result.exit_code}).",
                f"post_start_cmd {cmd!r} exited {result.exit_code}: {tail}",
            )

    async def get_ip_and_port(self) -> tuple[str, int]:
        """Where the hub reaches the server. Override to route differently."""
        info = getattr(self, "_started_info", None) or await self.docker_engine.inspect_container(self.object_id)
        self._started_info = None
        if self.use_internal_hostname:
            return info["Config"]["Hostname"], self.port
        if not publishes_port(self.network_name, self.use_internal_ip):
            if self.network_name == "host":
                return self.host_ip, self.port
            networks = info["NetworkSettings"].get("Networks") or {}
            net = networks.get(self.network_name) or next(iter(networks.values()), {})
            return net.get("IPAddress") or info["NetworkSettings"].get("IPAddress"), self.port
        ports = info["NetworkSettings"].get("Ports") or {}
        bindings = ports.get(f"{self.port}/tcp") or []
        if not bindings:
            await self._check_running()
            raise SpawnError(
                "Your server's port was not published.",
                f"container {self.object_name} has no host binding for port {self.port}",
            )
        binding = bindings[0]
        ip = binding.get("HostIp") or self.host_ip
        if ip in ("0.0.0.0", "::", ""):
            ip = self.host_ip
        return ip, int(binding["HostPort"])

    async def _remove_container(self, ref: str, *, wait: bool = True) -> None:
        """Remove a container; gone or already being removed counts as done.

        With ``wait``, return only once the engine no longer knows it, so that its
        name can be used again at once.
        """
        engine = self.docker_engine
        try:
            await engine.remove_container(ref, force=True, volumes=False)
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
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
        from tornado.iostream import StreamClosedError

        if self.internal_ssl:
            return
        base = self.server.base_url if self.server else "/"
        url = f"http://{ip}:{port}{base}api"
        client = AsyncHTTPClient()
        delay = 0.05
        deadline = asyncio.get_running_loop().time() + self.http_timeout
        while True:
            try:
                await client.fetch(HTTPRequest(url, connect_timeout=2, request_timeout=5), raise_error=False)
            except (OSError, StreamClosedError, HTTPClientError):
                pass
            else:
                return
            await self._check_running()
            if asyncio.get_running_loop().time() > deadline:
                raise SpawnError(
                    f"Your server did not respond within {self.http_timeout} seconds.",
                    f"{self._log_name} at {url} did not answer in {self.http_timeout}s;"
                    " raise Spawner.http_timeout or check the container's log",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _check_running(self) -> dict:
        info = await self.docker_engine.inspect_container(self.object_id)
        if not (info.get("State") or {}).get("Running"):
            await self._raise_exited(info)
        self._started_info = info
        return info

    async def _raise_exited(self, info: dict) -> None:
        state = info.get("State") or {}
        try:
            logs = await self.docker_engine.container_logs(self.object_id, tail=20)
        except EngineError:
            logs = ""
        tail = self._redact("\n".join(logs.strip().splitlines()[-5:]))
        if state.get("OOMKilled"):
            user = "Your server ran out of memory while starting and was stopped."
            fix = "raise DockerSpawner.mem_limit"
        else:
            user = f"Your server exited while starting (exit code {state.get('ExitCode')})."
            fix = "check the image and command"
        if tail:
            user = f"{user} Last log lines:\n{tail}"
        raise SpawnError(
            user,
            f"container {self.object_name} of {self._log_name} exited with {state.get('ExitCode')}"
            f" (OOMKilled={state.get('OOMKilled')}, Error={state.get('Error')!r}); {fix}; log tail:\n{tail}",
        )

    async def stop(self, now: bool = False) -> None:
        ref = self.object_id or self.object_name
        if not ref:
            return
        try:
            await self.docker_engine.stop_container(ref, timeout=0 if now else 10)
        except NotFound:
            self.object_id = ""
            if self.remove:
                await self._remove_certs_volume()
            return
        if self.remove:
            await self._remove_container(ref)
            await self._remove_certs_volume()
            self.object_id = ""

    async def poll(self) -> int | str | None:
        ref = self.object_id or (self.object_name if self.object_name else None)
        if not ref:
            return 0
        try:
            info = await self.docker_engine.inspect_container(ref)
        except NotFound:
            self.object_id = ""
            return 0
        except EngineUnavailable as e:
            self.log.warning("Engine unreachable while polling %s, assuming it still runs: %s", self._log_name, e)
            return None
        except EngineError as e:
            if e.status is not None and e.status >= 500:
                self.log.warning("Engine error while polling %s, assuming it still runs: %s", self._log_name, e)
                return None
            raise
        state = info.get("State") or {}
        if state.get("Running"):
            return None
        return "ExitCode={}, Error='{}', FinishedAt={}".format(
            state.get("ExitCode"), state.get("Error", ""), state.get("FinishedAt")
        )

    # -- internal SSL ------------------------------------------------------------------------
    async def move_certs(self, paths: dict) -> dict:
        """Copy this server's internal-SSL certificates into a per-server volume.

        A helper container (never started) of the server's image receives the
        files through put_archive, so no host path has to be shared.
        """
        engine = self.docker_engine
        image = await self._resolve_image()
        self._resolved_image = image
        await self._ensure_image(image)
        volume = f"{self.object_name or self._established_name()}-certs"
        await engine.create_volume(volume, labels=self._owner_labels())
        self._certs_volume = volume
        self._certs_created = True
        try:
            await self._fill_certs_volume(volume, image, paths)
        except BaseException:
            await asyncio.shield(self._remove_certs_volume())
            raise
        return {key: f"{CERTS_DIR}/{os.path.basename(path)}" for key, path in paths.items()}

    async def _fill_certs_volume(self, volume: str, image: str, paths: dict) -> None:
        engine = self.docker_engine
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for key, path in paths.items():
                info = tar.gettarinfo(path, arcname=os.path.basename(path))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
        helper = await engine.create_container(
            {
                "name": f"{volume}-helper",
                "image": image,
                "command": ["true"],
                "labels": self._owner_labels(),
                "host_config": {"binds": {volume: {"bind": CERTS_DIR, "mode": "rw"}}},
            }
        )
        try:
            await engine.put_archive(helper, CERTS_DIR, archive.getvalue())
        finally:
            await asyncio.shield(self._remove_container(helper))

    async def _remove_certs_volume(self) -> None:
        volume = getattr(self, "_certs_volume", None)
        if not volume:
            return
        try:
            await self.docker_engine.remove_volume(volume)
        except NotFound:
            pass
        self._certs_volume = None
        self._certs_created = False
