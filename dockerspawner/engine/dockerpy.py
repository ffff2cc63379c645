"""The docker-py backend: a real Docker (or Podman) engine behind the protocol.

docker-py is synchronous. Every call runs off the event loop: ordinary calls in
a bounded thread pool shared by all users of one engine object, and calls that
may take minutes (pulls, waits, the event stream) each in a thread of their own
("lane"), so a large pull for one user never holds a slot that another user's
spawn needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import docker
import requests
from docker import errors as docker_errors
from docker.utils import parse_repository_tag

from . import wire
from .labels import label_items, labels_match
from .pool import OldestFirstPool
from .replay import Replay
from .protocol import (
    Conflict,
    ContainerSpec,
    EngineError,
    EngineUnavailable,
    ExecResult,
    InvalidSpec,
    NotFound,
    PullEvent,
    classify_500,
)

__all__ = ["DockerPyEngine", "map_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_DEFAULT_BASE_URL = "unix:///var/run/docker.sock"

# Podman reports a missing image inside a 200 pull stream; these fragments
# (lowercased) of its and the registry's messages mean "no such repo or tag".
_MISSING_IMAGE_FRAGMENTS = (
    "manifest unknown",
    "not found",
    "name unknown",
    "does not exist",
    "no such image",
    "repository does not exist",
)


def map_error(exc: BaseException, base_url: str = _DEFAULT_BASE_URL) -> EngineError:
    """Translate anything docker-py or requests raised into a protocol error.

    One place, so that every method agrees on what a caller may catch; a
    spawner must be able to tell "retry later" (``EngineUnavailable``) from
    "the engine said no" (``EngineError`` and its subclasses).
    """
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, docker_errors.NotFound):
        return NotFound(_explain(exc))
    if isinstance(exc, docker_errors.APIError):
        status = exc.status_code
        if status == 409:
            return Conflict(_explain(exc))
        if status == 404:
            return NotFound(_explain(exc))
        if status == 500:
            return classify_500(_explain(exc))
        return EngineError(_explain(exc), status)
    if isinstance(exc, (requests.exceptions.Timeout, socket.timeout, TimeoutError)) or (
        isinstance(exc, requests.exceptions.ConnectionError) and "timed out" in str(exc)
    ):
        return EngineUnavailable(f"no answer from the engine at {base_url} in time: {exc}")
    if isinstance(exc, (requests.exceptions.RequestException, ConnectionError, FileNotFoundError)):
        return EngineUnavailable(f"cannot reach the engine at {base_url}: {exc}")
    if isinstance(exc, docker_errors.DockerException):
        msg = str(exc)
        if "Error while fetching server API version" in msg:
            return EngineUnavailable(f"cannot reach the engine at {base_url}: {msg}")
        return InvalidSpec(msg)
    if isinstance(exc, OSError):
        return EngineUnavailable(f"cannot reach the engine at {base_url}: {exc}")
    if isinstance(exc, (TypeError, ValueError)):
        return InvalidSpec(str(exc))
    return EngineError(f"{type(exc).__name__}: {exc}")


def _explain(exc: docker_errors.APIError) -> str:
    return str(exc.explanation or exc)


def _display_url(base_url: str | None) -> str:
    if not base_url:
        return _DEFAULT_BASE_URL
    if base_url.startswith("http+unix://"):
        return "unix://" + base_url[len("http+unix://") :]
    return base_url


def _pull_key(ref: str) -> tuple[str, str]:
    repo, tag = parse_repository_tag(ref)
    return repo, tag or "latest"


def _full_ref(repo: str, tag: str) -> str:
    sep = "@" if tag.startswith("sha256:") else ":"
    return f"{repo}{sep}{tag}"


def _pull_event(raw: dict) -> PullEvent:
    detail = raw.get("progressDetail") or {}
    status = raw.get("status") or raw.get("stream") or ""
    return PullEvent(
        status=str(status).strip(),
        layer=raw.get("id"),
        current=detail.get("current"),
        total=detail.get("total"),
        raw=raw,
    )


def _pull_failure(message: str) -> EngineError:
    lowered = message.lower()
    if any(f in lowered for f in _MISSING_IMAGE_FRAGMENTS):
        return NotFound(message)
    return EngineError(message)


def _resolve(fut: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _post_to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        # The loop closed while a lane was still busy; nobody is listening.
        pass


class _PullJob(Replay[PullEvent]):
    """One engine pull that any number of callers follow; it lives on the loop
    that started it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop


class DockerPyEngine:
    """A ``DockerEngine`` on a real engine, through ``docker.APIClient``.

    Construction does no IO: ``version="auto"`` makes docker-py ask the engine
    for its API version, so the client is made on first use, in a thread.
    """

    engine_kind = "docker"

    def __deepcopy__(self, memo: dict) -> DockerPyEngine:
        # traitlets deep-copies config values; an engine is a handle to one daemon
        # (its pool, its pulls, its state), so every copy must be the same object
        return self

    def __init__(
        self,
        *,
        client_kwargs: dict | None = None,
        tls_config: dict | None = None,
        use_env: bool = True,
        max_workers: int = 32,
        timeout: float = 60,
        oldest_first: bool = True,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._client_kwargs_in = dict(client_kwargs or {})
        self._tls_config = dict(tls_config) if tls_config else None
        self._use_env = use_env
        self._max_workers = max_workers
        self._timeout = timeout
        self._pool = OldestFirstPool(max_workers, thread_name_prefix="dockerpy", by_spawn=oldest_first)
        self._api: docker.APIClient | None = None
        self._api_lock: asyncio.Lock | None = None
        self._pulls: dict[tuple[str, str], _PullJob] = {}
        self._streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self._closed = False
        env_host = os.environ.get("DOCKER_HOST") if use_env else None
        self._base_url = _display_url(self._client_kwargs_in.get("base_url") or env_host)

    # -- plumbing ---------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Where the engine is (known for sure after the first call)."""
        return self._base_url

    def client_kwargs(self) -> dict:
        """The keyword arguments ``docker.APIClient`` gets, in the established
        dockerspawner's order of precedence: defaults, ``tls_config``, the
        ``DOCKER_*`` environment, then explicit ``client_kwargs``."""
        kwargs: dict[str, Any] = {"version": "auto", "timeout": self._timeout}
        if self._tls_config:
            kwargs["tls"] = docker.tls.TLSConfig(**self._tls_config)
        if self._use_env:
            kwargs.update(docker.utils.kwargs_from_env())
        kwargs.update(self._client_kwargs_in)
        kwargs["max_pool_size"] = max(int(kwargs.get("max_pool_size") or 0), self._max_workers + 8)
        return kwargs

    def _make_client(self) -> docker.APIClient:
        kwargs = self.client_kwargs()
        self._base_url = _display_url(kwargs.get("base_url"))
        api = docker.APIClient(**kwargs)
        if api.base_url.startswith("http+docker://"):
            # unix socket, named pipe or ssh: no HTTP proxy or .netrc applies, and
            # requests looks them up in the environment on every call (a third of its CPU)
            api.trust_env = False
        return api

    async def _client(self) -> docker.APIClient:
        if self._closed:
            raise EngineUnavailable(f"the engine client for {self._base_url} is closed")
        if self._api is not None:
            return self._api
        if self._api_lock is None:
            self._api_lock = asyncio.Lock()
        async with self._api_lock:
            if self._api is None:
                loop = asyncio.get_running_loop()
                try:
                    api = await loop.run_in_executor(self._pool, self._make_client)
                except Exception as e:
                    raise map_error(e, self._base_url) from e
                if self._closed:
                    api.close()
                    raise EngineUnavailable(f"the engine client for {self._base_url} is closed")
                self._api = api
        return self._api

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``api.<method>(*args, **kwargs)`` in the pool."""
        api = await self._client()
        fn = getattr(api, method)
        return await self._run(lambda: fn(*args, **kwargs))

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run a blocking function (that may make several API calls) in the pool."""
        await self._client()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except Exception as e:
            if self._closed and isinstance(e, RuntimeError):
                raise EngineUnavailable(f"the engine client for {self._base_url} is closed") from e
            raise map_error(e, self._base_url) from e

    def _lane(self, fn: Callable[[], T], name: str) -> asyncio.Future:
        """Run ``fn`` in a thread of its own; the returned future resolves on
        the current loop. Used for calls that may block for minutes."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def run() -> None:
            try:
                result = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
                _post_to_loop(loop, _resolve, fut, None, e)
            else:
                _post_to_loop(loop, _resolve, fut, result)

        threading.Thread(target=run, name=f"dockerpy-{name}", daemon=True).start()
        return fut

    async def _in_lane(self, fn: Callable[[], T], name: str) -> T:
        await self._client()
        try:
            return await self._lane(fn, name)
        except Exception as e:
            raise map_error(e, self._base_url) from e

    async def call_api(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``APIClient.<method>`` in the pool, raising docker-py's own errors.

        For code written against dockerspawner 14's ``docker()``, which catches
        ``docker.errors.APIError``; spawner code uses the protocol methods.
        """
        api = await self._client()
        fn = getattr(api, method)
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    @property
    def api_client(self) -> docker.APIClient:
        """The ``docker.APIClient`` (made now, blocking, if no call made it yet)."""
        if self._api is None:
            self._api = self._make_client()
        return self._api

    # -- engine -------------------------------------------------------------------
    async def version(self) -> dict:
        return await self._call("version")

    async def ping(self) -> bool:
        return bool(await self._call("ping"))

    async def info(self) -> dict:
        return await self._call("info")

    # -- images ---------------------------------------------------------------------
    async def inspect_image(self, ref: str) -> dict:
        return await self._call("inspect_image", ref)

    async def list_images(self, *, name: str | None = None, filters: dict[str, Any] | None = None) -> list[dict]:
        return await self._call("images", name=name, filters=filters)

    async def tag_image(self, ref: str, repository: str, tag: str | None = None) -> None:
        await self._call("tag", ref, repository, tag)

    async def remove_image(self, ref: str, force: bool = False) -> None:
        await self._call("remove_image", ref, force=force)

    def _pull_blocking(
        self, api: docker.APIClient, repo: str, tag: str, emit: Callable[[PullEvent], None]
    ) -> str:
        """The one engine pull behind a shared job; returns the image id.

        Runs in its own lane. Raises when the engine reports failure either
        as an HTTP error or as an ``error`` event inside a 200 stream.
        """
        for raw in api.pull(repo, tag, stream=True, decode=True):
            if not isinstance(raw, dict):
                continue
            if raw.get("error") or raw.get("errorDetail"):
                detail = raw.get("errorDetail") or {}
                raise _pull_failure(str(raw.get("error") or detail.get("message") or raw))
            emit(_pull_event(raw))
        return api.inspect_image(_full_ref(repo, tag))["Id"]

    async def pull_image(self, ref: str) -> AsyncIterator[PullEvent]:
        api = await self._client()
        loop = asyncio.get_running_loop()
        key = _pull_key(ref)
        job = self._pulls.get(key)
        if job is None or job.loop is not loop:
            job = self._start_pull(api, key, loop)
        async for event in job.follow():
            yield event

    def _start_pull(
        self, api: docker.APIClient, key: tuple[str, str], loop: asyncio.AbstractEventLoop
    ) -> _PullJob:
        job = _PullJob(loop)
        self._pulls[key] = job
        repo, tag = key

        def emit(event: PullEvent) -> None:
            _post_to_loop(loop, job.add, event)

        fut = self._lane(lambda: self._pull_blocking(api, repo, tag, emit), f"pull-{repo}:{tag}")

        def finished(f: asyncio.Future) -> None:
            if self._pulls.get(key) is job:
                del self._pulls[key]
            if f.cancelled():
                job.finish(EngineError("pull cancelled"))
                return
            exc = f.exception()
            if exc is not None:
                job.finish(map_error(exc, self._base_url))
            else:
                job.add(PullEvent(status="complete", image_id=f.result()))
                job.finish(None)

        # Lane results are posted with call_soon_threadsafe after every emit, so
        # this callback runs after the last progress event was added.
        fut.add_done_callback(finished)
        return job

    # -- containers -------------------------------------------------------------------
    async def create_container(self, spec: ContainerSpec) -> str:
        api = await self._client()
        name, body = wire.create_body(spec, api.api_version)
        result = await self._call("create_container_from_config", body, name)
        return result["Id"]

    async def start_container(self, ref: str) -> None:
        await self._call("start", ref)

    async def inspect_container(self, ref: str) -> dict:
        return await self._call("inspect_container", ref)

    async def list_containers(
        self, *, all: bool = True, filters: dict[str, Any] | None = None
    ) -> list[dict]:
        return await self._call("containers", all=all, filters=filters)

    async def stop_container(self, ref: str, timeout: int | None = None) -> None:
        await self._call("stop", ref, timeout=timeout)

    async def kill_container(self, ref: str, signal: str | int | None = None) -> None:
        await self._call("kill", ref, signal=signal)

    async def remove_container(
        self, ref: str, *, force: bool = False, volumes: bool = False
    ) -> None:
        await self._call("remove_container", ref, force=force, v=volumes)

    async def wait_container(self, ref: str, timeout: float | None = None) -> int:
        api = await self._client()
        result = await self._in_lane(lambda: api.wait(ref, timeout=timeout), "wait")
        if result.get("Error"):
            err = result["Error"]
            msg = err.get("Message") if isinstance(err, dict) else str(err)
            if msg:
                log.debug("wait %s reported: %s", ref, msg)
        return int(result.get("StatusCode", -1))

    async def container_logs(
        self, ref: str, *, tail: int | None = None, stdout: bool = True, stderr: bool = True
    ) -> str:
        data = await self._call(
            "logs", ref, stdout=stdout, stderr=stderr, tail="all" if tail is None else tail
        )
        if isinstance(data, bytes):
            return data.decode("utf-8", errors="replace")
        return str(data)

    async def exec_run(
        self,
        ref: str,
        cmd: list[str] | str,
        *,
        user: str | None = None,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ExecResult:
        api = await self._client()

        def run() -> ExecResult:
            created = api.exec_create(
                ref, cmd, user=user or "", workdir=workdir, environment=environment
            )
            out, err = api.exec_start(created["Id"], demux=True)
            code = api.exec_inspect(created["Id"]).get("ExitCode")
            return ExecResult(
                exit_code=-1 if code is None else int(code), stdout=out or b"", stderr=err or b""
            )

        return await self._run(run)

    async def put_archive(self, ref: str, path: str, data: bytes) -> None:
        await self._call("put_archive", ref, path, data)

    async def port(self, ref: str, private_port: int | str, protocol: str = "tcp") -> list[dict]:
        info = await self.inspect_container(ref)
        key = str(private_port)
        if "/" not in key:
            key = f"{key}/{protocol}"
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        return list(ports.get(key) or [])

    # -- volumes ------------------------------------------------------------------------
    async def create_volume(
        self,
        name: str,
        *,
        driver: str | None = None,
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        return await self._call(
            "create_volume", name, driver=driver, driver_opts=driver_opts, labels=labels
        )

    async def inspect_volume(self, name: str) -> dict:
        return await self._call("inspect_volume", name)

    async def list_volumes(self, filters: dict[str, Any] | None = None) -> list[dict]:
        result = await self._call("volumes", filters=filters)
        volumes = list((result or {}).get("Volumes") or [])
        wanted = label_items(filters)
        return [v for v in volumes if labels_match(v.get("Labels"), wanted)] if wanted else volumes

    async def remove_volume(self, name: str, force: bool = False) -> None:
        await self._call("remove_volume", name, force=force)

    # -- networks -------------------------------------------------------------------------
    async def create_network(
        self,
        name: str,
        *,
        driver: str | None = None,
        labels: dict[str, str] | None = None,
        internal: bool = False,
        attachable: bool = False,
    ) -> str:
        result = await self._call(
            "create_network",
            name,
            driver=driver,
            labels=labels,
            internal=internal,
            attachable=attachable or None,
            check_duplicate=True,
        )
        return result["Id"]

    async def inspect_network(self, ref: str) -> dict:
        return await self._call("inspect_network", ref)

    async def list_networks(
        self, *, names: list[str] | None = None, filters: dict[str, Any] | None = None
    ) -> list[dict]:
        return await self._call("networks", names=names, filters=filters)

    async def remove_network(self, ref: str) -> None:
        await self._call("remove_network", ref)

    async def connect_network(
        self, network: str, container: str, *, aliases: list[str] | None = None
    ) -> None:
        await self._call("connect_container_to_network", container, network, aliases=aliases)

    async def disconnect_network(self, network: str, container: str, *, force: bool = False) -> None:
        await self._call("disconnect_container_from_network", container, network, force=force)

    # -- swarm ------------------------------------------------------------------------------
    @staticmethod
    def _registry_auth(api: docker.APIClient, spec: dict) -> dict:
        """The ``X-Registry-Auth`` header docker-py's own ``create_service``
        would send for the task image, so private registries keep working."""
        image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
        if not image:
            return {}
        registry, _ = docker.auth.resolve_repository_name(parse_repository_tag(image)[0])
        header = docker.auth.get_config_header(api, registry)
        return {"X-Registry-Auth": header} if header else {}

    async def create_service(self, spec: dict) -> str:
        api = await self._client()

        def run() -> str:
            res = api._post_json(
                api._url("/services/create"), data=spec, headers=self._registry_auth(api, spec)
            )
            return api._result(res, True)["ID"]

        return await self._run(run)

    async def inspect_service(self, ref: str) -> dict:
        return await self._call("inspect_service", ref)

    async def update_service(self, ref: str, version: int, spec: dict) -> None:
        api = await self._client()

        def run() -> None:
            res = api._post_json(
                api._url("/services/{0}/update", ref),
                data=spec,
                params={"version": int(version)},
                headers=self._registry_auth(api, spec),
            )
            api._raise_for_status(res)

        await self._run(run)

    async def remove_service(self, ref: str) -> None:
        await self._call("remove_service", ref)

    async def list_services(self, filters: dict[str, Any] | None = None) -> list[dict]:
        return await self._call("services", filters=filters)

    async def list_tasks(self, filters: dict[str, Any] | None = None) -> list[dict]:
        return await self._call("tasks", filters=filters)

    async def list_nodes(self, filters: dict[str, Any] | None = None) -> list[dict]:
        return await self._call("nodes", filters=filters)

    async def inspect_node(self, ref: str) -> dict:
        return await self._call("inspect_node", ref)

    # -- events -------------------------------------------------------------------------------
    async def events(
        self, *, filters: dict[str, Any] | None = None, since: float | None = None
    ) -> AsyncIterator[dict]:
        api = await self._client()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        lock = threading.Lock()
        state: dict[str, Any] = {"stream": None, "closed": False}
        since_arg = None if since is None else f"{since:.9f}"
        wanted = label_items(filters)
        # Podman 4.3 matches `event` against its own names ("died", not "die"),
        # so a `die` filter finds nothing there: filter actions here instead
        actions = _event_actions(filters)
        if actions:
            filters = {k: v for k, v in (filters or {}).items() if k != "event"}

        def read() -> None:
            try:
                stream = api.events(decode=True, filters=filters, since=since_arg)
                with lock:
                    if state["closed"]:
                        stream.close()
                        return
                    state["stream"] = stream
                with self._streams_lock:
                    engine_closed = self._closed
                    if not engine_closed:
                        self._streams.add(stream)
                if engine_closed:
                    stream.close()
                    raise EngineUnavailable(f"the engine client for {self._base_url} is closed")
                try:
                    for item in stream:
                        # filtered here: an event nobody wants does not wake the loop
                        if wanted and not _event_has_labels(item, wanted):
                            continue
                        if actions and _event_action(item) not in actions:
                            continue
                        _post_to_loop(loop, queue.put_nowait, ("event", item))
                finally:
                    with self._streams_lock:
                        self._streams.discard(stream)
                _post_to_loop(loop, queue.put_nowait, ("end", None))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                _post_to_loop(loop, queue.put_nowait, ("error", e))

        threading.Thread(target=read, name="dockerpy-events", daemon=True).start()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "event":
                    yield item
                elif kind == "error":
                    raise map_error(item, self._base_url) from item
                else:
                    raise EngineUnavailable(f"the event stream of {self._base_url} ended")
        finally:
            with lock:
                state["closed"] = True
                stream = state["stream"]
            if stream is not None:
                _close_stream(stream)

    # -- lifecycle -------------------------------------------------------------------------------
    async def close(self) -> None:
        with self._streams_lock:
            if self._closed:
                return
            self._closed = True
            streams = list(self._streams)
            self._streams.clear()
        for stream in streams:
            _close_stream(stream)
        self._pool.shutdown(wait=False)
        api, self._api = self._api, None
        if api is not None:
            await asyncio.get_running_loop().run_in_executor(None, api.close)


def _close_stream(stream: Any) -> None:
    """Shut the socket under a streaming response so its reader thread ends."""
    try:
        stream.close()
    except Exception as e:  # noqa: BLE001 - already closed or half gone
        log.debug("closing an event stream: %s", e)


def _event_has_labels(event: dict, wanted: list[str]) -> bool:
    """Container events carry the container's labels in ``Actor.Attributes``;
    other kinds do not, and are left to the engine's own filter."""
    if event.get("Type") != "container":
        return True
    return labels_match((event.get("Actor") or {}).get("Attributes"), wanted)


def _event_action(event: dict) -> str:
    """The event's action as the ``event`` filter names it: ``exec_start: sh``
    counts as ``exec_start``, as dockerd matches it."""
    return str(event.get("Action") or event.get("status") or "").split(":", 1)[0]


def _event_actions(filters: dict[str, Any] | None) -> set[str]:
    """The ``event`` filter's names."""
    value = (filters or {}).get("event")
    items = value if isinstance(value, list) else [value] if value else []
    return {str(i) for i in items}
