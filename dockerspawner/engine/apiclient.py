"""``DockerSpawner.docker(method, ...)``: docker-py ``APIClient`` calls by name.

Subclasses and hooks written for dockerspawner 14 call ``self.docker("inspect_image",
name)`` and catch ``docker.errors.APIError``. On the docker-py engine the named
``APIClient`` method runs in the engine's thread pool and raises docker-py's own
errors, exactly as before. On any other engine (fakedocker) the methods that
spawners and common subclasses use are mapped onto the protocol, and protocol
errors are raised as the docker-py errors such code expects.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import requests
from docker import errors as docker_errors

from .protocol import DockerEngine, EngineError, NotFound

Mapper = Callable[..., Awaitable[Any]]


class _Execs:
    """exec_create/exec_start/exec_inspect as three calls over one ``exec_run``."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.pending: dict[str, dict] = {}
        self.done: dict[str, dict] = {}


def _api_error(error: EngineError, method: str) -> docker_errors.APIError:
    response = requests.models.Response()
    response.status_code = error.status or 500
    response.reason = error.explanation
    cls = docker_errors.NotFound if isinstance(error, NotFound) else docker_errors.APIError
    return cls(f"{method}: {error.explanation}", response=response, explanation=error.explanation)


def _ref(tag: str | None, repository: str) -> str:
    if tag:
        return f"{repository}:{tag}"
    last = repository.rsplit("/", 1)[-1]
    return repository if (":" in last or "@" in repository) else f"{repository}:latest"


def _mappers(engine: DockerEngine, execs: _Execs) -> dict[str, Mapper]:
    async def create_container(image: str, command: Any = None, **kwargs: Any) -> dict:
        spec = {"image": image, "command": command, **kwargs}
        return {"Id": await engine.create_container(spec), "Warnings": []}

    async def exec_create(container: str, cmd: Any, user: str = "", workdir: str | None = None,
                          environment: Any = None, **_: Any) -> dict:
        exec_id = f"fakeexec{next(execs._ids):056d}"
        execs.pending[exec_id] = {"ref": container, "cmd": cmd, "user": user or None,
                                  "workdir": workdir, "environment": environment}
        return {"Id": exec_id}

    async def exec_start(exec_id: Any, detach: bool = False, tty: bool = False,
                         stream: bool = False, socket: bool = False, demux: bool = False) -> Any:
        exec_id = exec_id["Id"] if isinstance(exec_id, dict) else exec_id
        job = execs.pending.pop(exec_id, None)
        if job is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        env = job["environment"]
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        result = await engine.exec_run(job["ref"], job["cmd"], user=job["user"],
                                       workdir=job["workdir"], environment=env)
        execs.done[exec_id] = {"ID": exec_id, "ExitCode": result.exit_code, "Running": False}
        if demux:
            return (result.stdout or None, result.stderr or None)
        return result.stdout + result.stderr

    async def exec_inspect(exec_id: Any) -> dict:
        exec_id = exec_id["Id"] if isinstance(exec_id, dict) else exec_id
        if exec_id in execs.pending:
            return {"ID": exec_id, "ExitCode": None, "Running": False}
        if exec_id not in execs.done:
            raise NotFound(f"No such exec instance: {exec_id}")
        return execs.done[exec_id]

    async def port(container: str, private_port: Any) -> list | None:
        return await engine.port(container, private_port) or None

    async def images(name: str | None = None, quiet: bool = False, all: bool = False,
                     filters: dict | None = None) -> list:
        found = await engine.list_images(name=name, filters=filters)
        return [i["Id"] for i in found] if quiet else found

    async def containers(quiet: bool = False, all: bool = False, filters: dict | None = None,
                         **_: Any) -> list:
        found = await engine.list_containers(all=all, filters=filters)
        return [{"Id": c["Id"]} for c in found] if quiet else found

    async def volumes(filters: dict | None = None) -> dict:
        return {"Volumes": await engine.list_volumes(filters=filters), "Warnings": None}

    async def pull(repository: str, tag: str | None = None, stream: bool = False, **_: Any) -> str:
        lines = [event.status async for event in engine.pull_image(_ref(tag, repository))]
        return "\n".join(lines)

    async def remove_container(container: str, v: bool = False, link: bool = False,
                               force: bool = False) -> None:
        await engine.remove_container(container, force=force, volumes=v)

    async def logs(container: str, stdout: bool = True, stderr: bool = True, tail: Any = "all",
                   **_: Any) -> bytes:
        text = await engine.container_logs(container, stdout=stdout, stderr=stderr,
                                           tail=None if tail == "all" else int(tail))
        return text.encode()

    async def wait(container: str, timeout: float | None = None, **_: Any) -> dict:
        return {"StatusCode": await engine.wait_container(container, timeout=timeout), "Error": None}

    async def create_volume(name: str | None = None, driver: str | None = None,
                            driver_opts: dict | None = None, labels: dict | None = None) -> dict:
        return await engine.create_volume(name, driver=driver, driver_opts=driver_opts, labels=labels)

    async def remove_volume(name: str, force: bool = False) -> None:
        await engine.remove_volume(name, force=force)

    async def put_archive(container: str, path: str, data: Any) -> bool:
        await engine.put_archive(container, path, data if isinstance(data, bytes) else data.read())
        return True

    async def kill(container: str, signal: Any = None) -> None:
        await engine.kill_container(container, signal=signal)

    async def services(filters: dict | None = None, **_: Any) -> list:
        return await engine.list_services(filters=filters)

    async def tasks(filters: dict | None = None) -> list:
        return await engine.list_tasks(filters=filters)

    return {
        "inspect_container": engine.inspect_container,
        "inspect_image": engine.inspect_image,
        "inspect_volume": engine.inspect_volume,
        "inspect_network": engine.inspect_network,
        "inspect_service": engine.inspect_service,
        "remove_service": engine.remove_service,
        "create_container": create_container,
        "start": engine.start_container,
        "stop": lambda container, timeout=None: engine.stop_container(container, timeout=timeout),
        "remove_container": remove_container,
        "kill": kill,
        "wait": wait,
        "logs": logs,
        "exec_create": exec_create,
        "exec_start": exec_start,
        "exec_inspect": exec_inspect,
        "port": port,
        "images": images,
        "containers": containers,
        "volumes": volumes,
        "create_volume": create_volume,
        "remove_volume": remove_volume,
        "put_archive": put_archive,
        "pull": pull,
        "services": services,
        "tasks": tasks,
        "version": engine.version,
        "info": engine.info,
        "ping": engine.ping,
    }


class _Nothing:
    def __getattr__(self, name: str) -> None:
        return None


#: APIClient methods ``docker()`` supports on engines other than docker-py.
MAPPED_METHODS = tuple(sorted(_mappers(_Nothing(), _Execs())))  # type: ignore[arg-type]


class APIClientCalls:
    """``docker(method, ...)`` for one engine."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self._execs = _Execs()
        self._mapped: dict[str, Mapper] | None = None

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        call_api = getattr(self.engine, "call_api", None)
        if call_api is not None:
            return await call_api(method, *args, **kwargs)
        if self._mapped is None:
            self._mapped = _mappers(self.engine, self._execs)
        mapper = self._mapped.get(method)
        if mapper is None:
            kind = type(self.engine).__name__
            raise NotImplementedError(
                f"docker({method!r}) is not available on the {kind} engine; it supports"
                f" {', '.join(MAPPED_METHODS)}. Use the engine protocol (spawner.docker_engine) instead."
            )
        try:
            return await mapper(*args, **kwargs)
        except EngineError as e:
            raise _api_error(e, method) from e
