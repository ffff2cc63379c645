"""Shared pieces of the benchmarks: spawners outside a hub, the "one global
engine thread" wrapper, labels, cleanup, and small statistics helpers.

Everything a benchmark makes on the engine is named ``bench-...`` and carries
``org.jupyterhub.test=bench`` plus a per-run label, so that cleanup removes
exactly this run's objects (``cleanup_sync``), also after an error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import docker

IMAGE = "local/busybox:test"
#: busybox httpd answers the spawner's readiness check (any HTTP status counts) at once.
HTTPD_CMD = ["httpd", "-f", "-p", "8888", "-h", "/var/www"]
PORT = 8888

BENCH_LABEL = "org.jupyterhub.test"
BENCH_VALUE = "bench"
RUN_LABEL = "org.jupyterhub.test.bench-run"

log = logging.getLogger("benchmarks")


def new_run_id() -> str:
    return uuid.uuid4().hex[:6]


def labels(run_id: str) -> dict[str, str]:
    """The labels of everything one benchmark run creates."""
    return {BENCH_LABEL: BENCH_VALUE, RUN_LABEL: run_id}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load_average() -> float | None:
    """The 1-minute load average (other work on the machine skews the numbers)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(api: docker.APIClient) -> dict[str, Any]:
    version = api.version()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "engine_version": version.get("Version"),
        "engine_api": version.get("ApiVersion"),
        "date": now_iso(),
    }


def docker_api(pool: int = 16, timeout: float = 120) -> docker.APIClient:
    """A docker-py client on ``DOCKER_HOST`` (or the default socket)."""
    kwargs: dict[str, Any] = {"version": "auto", "timeout": timeout}
    kwargs.update(docker.utils.kwargs_from_env())
    kwargs["max_pool_size"] = pool
    return docker.APIClient(**kwargs)


# -- the established spawner's model ---------------------------------------------------
class SerializedEngine:
    """Every protocol call of every user through ONE lane.

    The established dockerspawner runs each engine call in a single-thread
    executor shared by all spawners, and a pull is one (blocking) call there.
    This wrapper reproduces that on top of any protocol engine: an
    ``asyncio.Lock`` is held for the whole of every call, and for a whole pull
    iteration. ``events`` is passed through unlocked (a stream that never ends
    would block the lane forever; the spawner does not use it).
    """

    _UNLOCKED = frozenset({"close", "events"})

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock: asyncio.Lock | None = None
        self.calls = 0
        self.wait_s = 0.0  # total time callers queued for the lane

    def __deepcopy__(self, memo: dict) -> SerializedEngine:
        # Without this, copy.deepcopy would find the inner engine's __deepcopy__
        # through __getattr__ and silently unwrap the lane.
        return self

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in self._UNLOCKED or name.startswith("_") or not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            async with self.lock:
                self.wait_s += time.perf_counter() - t0
                self.calls += 1
                return await attr(*args, **kwargs)

        call.__name__ = name
        return call

    async def pull_image(self, ref: str) -> AsyncIterator[Any]:
        t0 = time.perf_counter()
        async with self.lock:
            self.wait_s += time.perf_counter() - t0
            self.calls += 1
            async for event in self._inner.pull_image(ref):
                yield event


# -- spawners outside a hub --------------------------------------------------------------
class Users:
    """DockerSpawners with real JupyterHub ``User`` objects on an in-memory
    database and no hub process (the approach of fakedocker's ``make_spawner``
    fixture): enough to call ``start`` and ``stop``."""

    def __init__(self) -> None:
        from jupyterhub import orm

        self._orm = orm
        # JupyterHub's database setup logs alembic migrations at INFO
        quiet = not logging.getLogger("benchmarks").isEnabledFor(logging.INFO)
        if quiet:
            logging.disable(logging.INFO)
        try:
            self.db = orm.new_session_factory("sqlite:///:memory:")()
        finally:
            if quiet:
                logging.disable(logging.NOTSET)
        self._users: dict[str, Any] = {}

    def spawner(self, username: str, servername: str = "", **traits: Any) -> Any:
        from jupyterhub.objects import Hub
        from jupyterhub.user import User

        from dockerspawner import DockerSpawner

        orm = self._orm
        if username not in self._users:
            orm_user = orm.User(name=username)
            self.db.add(orm_user)
            self.db.commit()
            self._users[username] = User(orm_user, {"hub": Hub(), "db": self.db})
        user = self._users[username]
        if servername not in user.orm_spawners:
            self.db.add(orm.Spawner(user=user.orm_user, name=servername))
            self.db.commit()
        return user._new_spawner(servername, spawner_class=DockerSpawner, **traits)

    def close(self) -> None:
        self.db.close()


def spawner_traits(run_id: str, prefix: str, **overrides: Any) -> dict[str, Any]:
    """The traits every benchmark spawner gets (the brief's configuration)."""
    traits: dict[str, Any] = {
        "image": IMAGE,
        "cmd": list(HTTPD_CMD),
        "port": PORT,
        "remove": True,
        "prefix": prefix,
        "extra_create_kwargs": {"labels": labels(run_id)},
        "start_timeout": 300,
        "http_timeout": 60,
    }
    traits.update(overrides)
    return traits


def quiet_logs(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(level)
    for name in ("traitlets", "JupyterHub", "dockerspawner", "tornado", "urllib3", "docker", "alembic"):
        logging.getLogger(name).setLevel(level if verbose else logging.ERROR)


# -- raw docker-py: the engine's own limit -----------------------------------------------
def wait_http(port: str | int, timeout: float = 60) -> None:
    """Poll like DockerSpawner._wait_for_server: any HTTP answer counts."""
    url = f"http://127.0.0.1:{port}/api"
    delay = 0.05
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def raw_spawn(api: docker.APIClient, name: str, run_id: str, *, http: bool = False) -> str:
    """What a spawner asks of the engine, with nothing around it: create+start
    of the benchmark image and command with the port published on 127.0.0.1
    (and, with ``http``, wait until it answers). Blocking; returns the id."""
    hc = api.create_host_config(port_bindings={PORT: ("127.0.0.1",)}, network_mode="bridge")
    cid = api.create_container(
        IMAGE, list(HTTPD_CMD), name=name, ports=[PORT], labels=labels(run_id), host_config=hc
    )["Id"]
    api.start(cid)
    if http:
        wait_http(api.port(cid, PORT)[0]["HostPort"])
    return cid


def raw_stop(api: docker.APIClient, cid: str) -> None:
    api.stop(cid, timeout=0)
    api.remove_container(cid)


# -- cleanup ------------------------------------------------------------------------------
def count_run_containers(api: docker.APIClient, run_id: str) -> int:
    return len(api.containers(all=True, filters={"label": [f"{RUN_LABEL}={run_id}"]}))


def cleanup_sync(run_id: str, *, images: list[str] = (), attempts: int = 20) -> list[str]:
    """Remove this run's containers (by run label and ``bench-`` name) and the
    given ``bench`` images. Synchronous, with its own client, so it works after
    the event loop is gone (error, Ctrl-C). Returns what could not be removed."""
    try:
        api = docker_api(pool=4, timeout=60)
    except Exception as e:  # noqa: BLE001 - nothing to clean without an engine
        log.warning("cleanup: no engine: %s", e)
        return []
    left: list[str] = []
    try:
        for _ in range(attempts):
            left = []
            for c in api.containers(all=True, filters={"label": [f"{RUN_LABEL}={run_id}"]}):
                names = [n.lstrip("/") for n in c.get("Names") or []]
                if not any(n.startswith("bench-") for n in names):
                    continue  # never touch anything that is not ours
                try:
                    api.remove_container(c["Id"], force=True, v=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError:
                    left.append(names[0] if names else c["Id"][:12])
            if not left:
                break
            time.sleep(0.25)
        for ref in images:
            try:
                info = api.inspect_image(ref)
            except docker.errors.NotFound:
                continue
            if ((info.get("Config") or {}).get("Labels") or {}).get(BENCH_LABEL) != BENCH_VALUE:
                continue
            try:
                api.remove_image(ref, force=True)
            except docker.errors.APIError as e:
                left.append(f"{ref} ({e})")
    finally:
        api.close()
    if left:
        log.warning("cleanup left: %s", left)
    return left


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_benchmark(
    argv: list[str] | None,
    args: Any,
    run: Callable[[Any, str], Awaitable[dict[str, Any]]],
    report: Callable[[dict[str, Any]], str],
    cleanup: Callable[[str], None],
) -> dict[str, Any]:
    """The common main(): logging, one run id, cleanup whatever happens, output."""
    if argv is None:  # run as a script: in-process callers keep their logging
        quiet_logs(args.verbose)
    run_id = new_run_id()
    try:
        result = asyncio.run(run(args, run_id))
    finally:
        cleanup(run_id)
    if not args.quiet:
        print(report(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return result


def run_as_script(main: Callable[[], Any]) -> None:
    """A benchmark's ``__main__``: Ctrl-C ends it with one line instead of a
    traceback (``run_benchmark`` has removed the run's objects by then)."""
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; this run's bench- objects were removed")
