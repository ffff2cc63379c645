"""One measured round with a real JupyterHub in the loop, in a process of its own.

Run as a script (``python benchmarks/_hubround.py --spawner ours ...``), it
prints one JSON document. It imports only the standard library, docker-py,
JupyterHub and its sibling ``_harness`` (the script's directory is first on
``sys.path``), never the repository root: run with another virtualenv's python
(``--spawner ds14``), ``import dockerspawner`` finds that environment's
dockerspawner 14, so the established spawner is driven by this same code.

Spawners: ``raw`` (no hub: threads doing docker-py create+start+HTTP wait, the
engine floor), ``thin`` (the hub with ``ThinSpawner``: create+start in a thread,
nothing else, the hub floor), ``ours`` / ``ds14`` (``dockerspawner.DockerSpawner``
of whichever dockerspawner the interpreter imports).

A round: N users spawn at once through ``User.spawn`` (the hub's API tokens,
OAuth client, its own readiness check) and ``Proxy.add_user``; then all stop
(``User.stop``, the hub's stop) and the proxy routes go. Measured: wall until
all are reachable, each spawn's time from the common start, stop wall, CPU
seconds of this process (the hub), of dockerd and of the proxy, and the event
loop's worst lag (a task timing ``sleep(0.01)``). ``--disturb`` runs one more
user that pulls a large image (``pull:<ref>``) or is stopped while ignoring
SIGTERM (``stop``) while the N spawn.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

try:
    from benchmarks import _harness as h
except ImportError:  # run as a script without the repository on the path (the ds14 venv)
    import _harness as h

TICKS = os.sysconf("SC_CLK_TCK")
DOCKERD_PID_FILE = "/work/main/.ci/state/dockerd.pid"


# -- CPU of other processes -----------------------------------------------------------------
def proc_cpu_s(pid: int | None) -> float | None:
    """utime+stime of ``pid`` in seconds (None when it cannot be read)."""
    if not pid:
        return None
    try:
        return proc_cpu_s_path(Path(f"/proc/{pid}/stat"))
    except OSError:
        return None


def dockerd_pid() -> int | None:
    try:
        return int(Path(os.environ.get("HB_DOCKERD_PID_FILE", DOCKERD_PID_FILE)).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def thread_cpu_s() -> dict[int, float]:
    """utime+stime of each live thread of this process, by native thread id."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            out[int(task.name)] = proc_cpu_s_path(task / "stat")
        except (OSError, ValueError):
            pass
    return out


def proc_cpu_s_path(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def thread_group(name: str) -> str:
    """A thread's name without its number: ``dockerpy_3`` and ``dockerpy_17`` are one group."""
    return name.rstrip("0123456789").rstrip("_-") or name


class ThreadCpu:
    """Where the hub's CPU went over a span, by thread group: the event loop
    (``MainThread``), the engine pool's workers, stream lanes, ... Threads that
    ended inside the span are counted together as ``(ended)``."""

    def __init__(self) -> None:
        self.t0 = thread_cpu_s()
        self.p0 = time.process_time()

    def read(self) -> dict[str, float]:
        t1, p1 = thread_cpu_s(), time.process_time()
        names = {t.native_id: t.name for t in threading.enumerate()}
        groups: dict[str, float] = {}
        for tid, cpu in t1.items():
            g = thread_group(names.get(tid, "(not python)"))
            groups[g] = groups.get(g, 0.0) + cpu - self.t0.get(tid, 0.0)
        groups["(ended)"] = (p1 - self.p0) - sum(groups.values())
        return {k: round(v, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if abs(v) >= 0.005}


class CpuMeter:
    """CPU seconds of this process, dockerd and (if given) the proxy over a span."""

    def __init__(self, proxy_pid: int | None = None) -> None:
        self.pids = {"dockerd": dockerd_pid(), "proxy": proxy_pid}

    def read(self) -> dict[str, float | None]:
        out = {"hub": time.process_time()}
        out.update({k: proc_cpu_s(p) for k, p in self.pids.items()})
        return out

    @staticmethod
    def delta(a: dict, b: dict) -> dict[str, float | None]:
        return {k: (None if a[k] is None or b[k] is None else round(b[k] - a[k], 3)) for k in a}


class LagMonitor:
    """The event loop's overshoot of ``sleep(0.01)``: how long a ready callback
    waited; and the garbage collector's pauses meanwhile, which block the loop
    like a slow callback (a full collection walks every object of the process)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.gc_pauses: list[tuple[int, float]] = []
        self._gc_began = 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - t - self.interval)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_began))

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> dict[str, float | None]:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        lags = sorted(self.lags)
        full = [d for g, d in self.gc_pauses if g == 2]
        return {
            "max_ms": round(lags[-1] * 1000, 2) if lags else None,
            "p99_ms": round(lags[int(len(lags) * 0.99) - 1] * 1000, 2) if len(lags) > 1 else None,
            "samples": len(lags),
            "gc_max_ms": round(max((d for _, d in self.gc_pauses), default=0) * 1000, 2),
            "gc_full_collections": len(full),
            "gc_full_max_ms": round(max(full, default=0) * 1000, 2),
        }


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    return round(s[max(0, min(len(s) - 1, int(round(q * len(s) + 0.5)) - 1))], 4)


# -- the thinnest spawner -----------------------------------------------------------------
def _thin_spawner_class() -> type:
    from jupyterhub.spawner import Spawner
    from traitlets import Dict, Unicode

    class ThinSpawner(Spawner):
        """create+start through docker-py in a thread; the port the engine
        published; stop+remove. No checks, no progress, no state."""

        image = Unicode(h.IMAGE, config=True)
        prefix = Unicode("bench", config=True)
        extra_host_config = Dict(config=True)
        labels = Dict(config=True)
        _api = None
        _lock = threading.Lock()
        # as many engine calls in flight as ours allows (its default pool)
        _pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="thin")

        @classmethod
        def api(cls):
            with cls._lock:
                if cls._api is None:
                    cls._api = h.docker_api(pool=256)
                return cls._api

        cid: str | None = None

        def _start(self) -> tuple[str, int]:
            api = self.api()
            hc = api.create_host_config(
                port_bindings={h.PORT: ("127.0.0.1",)}, auto_remove=True, **self.extra_host_config
            )
            name = f"{self.prefix}-{self.user.name}"
            self.cid = api.create_container(
                self.image, list(h.HTTPD_CMD), name=name, ports=[h.PORT], labels=self.labels,
                host_config=hc, environment=self.get_env(),
            )["Id"]
            api.start(self.cid)
            return "127.0.0.1", int(api.port(self.cid, h.PORT)[0]["HostPort"])

        async def start(self) -> tuple[str, int]:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._start)

        def _stop(self) -> None:
            api = self.api()
            try:
                api.stop(self.cid, timeout=10)
                api.remove_container(self.cid, force=True)
            except Exception:  # noqa: BLE001 - auto_remove may have won
                pass

        async def stop(self, now: bool = False) -> None:
            if self.cid:
                await asyncio.get_running_loop().run_in_executor(self._pool, self._stop)
                self.cid = None

        async def poll(self) -> int | None:
            return None if self.cid else 0

    return ThinSpawner


# -- the hub --------------------------------------------------------------------------------
def _free_ports(n: int) -> list[int]:
    """Distinct free loopback ports (fakedocker.kit.hub.free_ports, which this venv may lack)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def hub_config(workdir: Path, spawner: str, prefix: str, run_id: str) -> Any:
    """The measured hub's config. Its loopback part repeats fakedocker.kit.hub's
    on purpose: this script runs inside dockerspawner 14's own venv (``--spawner
    ds14``), where fakedocker is not importable."""
    from traitlets.config import Config

    c = Config()
    public, hub, proxy_api = _free_ports(3)
    c.JupyterHub.ip = "127.0.0.1"
    c.JupyterHub.port = public
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub
    c.JupyterHub.db_url = f"sqlite:///{workdir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(workdir / "cookie_secret")
    c.JupyterHub.pid_file = ""
    c.JupyterHub.authenticator_class = "dummy"
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.last_activity_interval = 0
    c.JupyterHub.log_level = logging.CRITICAL
    c.Authenticator.allow_all = True
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api}"
    c.ConfigurableHTTPProxy.auth_token = secrets.token_hex(16)
    c.ConfigurableHTTPProxy.pid_file = str(workdir / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.Spawner.start_timeout = 600
    c.Spawner.http_timeout = 300
    c.Spawner.poll_interval = 3600  # the round measures spawns, not polling
    if spawner == "thin":
        c.JupyterHub.spawner_class = _thin_spawner_class()
        c.ThinSpawner.prefix = prefix
        c.ThinSpawner.labels = h.labels(run_id)
        c.ThinSpawner.extra_host_config = {"init": True}
    else:
        c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
        c.DockerSpawner.image = h.IMAGE
        c.DockerSpawner.cmd = list(h.HTTPD_CMD)
        # 14 appends the hub's args to cmd: the command is given whole instead
        c.DockerSpawner.extra_create_kwargs = {"command": list(h.HTTPD_CMD), "labels": h.labels(run_id)}
        c.DockerSpawner.extra_host_config = {"init": True}  # httpd then dies on SIGTERM
        c.DockerSpawner.port = h.PORT
        c.DockerSpawner.remove = True
        c.DockerSpawner.prefix = prefix
        c.DockerSpawner.start_timeout = 600
        c.DockerSpawner.http_timeout = 300
    return c


def _hub_class() -> type:
    from jupyterhub.app import JupyterHub

    class BenchHub(JupyterHub):
        """JupyterHub without a config file from the working directory and without signal handlers."""

        def load_config_file(self, *args: Any, **kwargs: Any) -> None:
            return None

        def init_signal(self) -> None:
            return None

    return BenchHub


async def start_hub(workdir: Path, spawner: str, prefix: str, run_id: str) -> Any:
    app = _hub_class()(config=hub_config(workdir, spawner, prefix, run_id))
    await app.initialize([])
    await app.start()
    return app


async def stop_hub(app: Any) -> None:
    if app.http_server:
        app.http_server.stop()
    for pc in app._periodic_callbacks.values():
        pc.stop()
    await app.cleanup()
    app.db.close()


def make_users(app: Any, names: list[str]) -> list[Any]:
    from jupyterhub import orm

    orm_users = [orm.User(name=n) for n in names]
    app.db.add_all(orm_users)
    app.db.commit()
    return [app.users.add(u) for u in orm_users]


async def spawn_user(app: Any, user: Any, t0: float) -> float:
    await user.spawn()
    await app.proxy.add_user(user)
    return time.perf_counter() - t0


async def stop_user(app: Any, user: Any) -> None:
    if user.spawner.active or user.running:
        await app.proxy.delete_user(user)
        await user.stop()


# -- rounds ---------------------------------------------------------------------------------
async def hub_round(app: Any, names: list[str], profile: str | None = None) -> dict[str, Any]:
    users = make_users(app, names)
    proxy_pid = getattr(getattr(app.proxy, "proxy_process", None), "pid", None)
    meter, lag = CpuMeter(proxy_pid), LagMonitor()
    lag.start()
    prof = cProfile.Profile() if profile else None
    c0 = meter.read()
    threads = ThreadCpu()
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    results = await asyncio.gather(*(spawn_user(app, u, t0) for u in users), return_exceptions=True)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    t1 = time.perf_counter()
    c1 = meter.read()
    by_thread = threads.read()
    stops = await asyncio.gather(*(stop_user(app, u) for u in users), return_exceptions=True)
    t2 = time.perf_counter()
    c2 = meter.read()
    lags = await lag.stop()
    return {**_summary(names, results, stops, t0, t1, t2, c0, c1, c2, lags), "cpu_spawn_by_thread_s": by_thread}


def _summary(names, results, stops, t0, t1, t2, c0, c1, c2, lags) -> dict[str, Any]:
    times = [r for r in results if isinstance(r, float)]
    errors = [repr(r)[:300] for r in list(results) + list(stops) if isinstance(r, BaseException)]
    return {
        "users": len(names),
        "wall_s": round(t1 - t0, 3),
        "p50_s": pct(times, 0.5),
        "p95_s": pct(times, 0.95),
        "stop_wall_s": round(t2 - t1, 3),
        "cpu_spawn_s": CpuMeter.delta(c0, c1),
        "cpu_stop_s": CpuMeter.delta(c1, c2),
        "loop_lag": lags,
        "spawn_failures": sum(not isinstance(r, float) for r in results),
        "stop_failures": sum(isinstance(r, BaseException) for r in stops),
        "errors": errors[:5],
    }


def raw_round(names: list[str], run_id: str) -> dict[str, Any]:
    """The engine floor: the same container (init, port on 127.0.0.1, auto-remove),
    created, started and waited for over HTTP from N threads; stop+remove."""
    api = h.docker_api(pool=len(names) + 8)

    def spawn(name: str) -> tuple[str, float]:
        hc = api.create_host_config(port_bindings={h.PORT: ("127.0.0.1",)}, init=True, auto_remove=True)
        cid = api.create_container(h.IMAGE, list(h.HTTPD_CMD), name=name, ports=[h.PORT],
                                   labels=h.labels(run_id), host_config=hc)["Id"]
        api.start(cid)
        h.wait_http(api.port(cid, h.PORT)[0]["HostPort"])
        return cid, time.perf_counter() - t0

    def stop(cid: str) -> None:
        api.stop(cid, timeout=10)
        try:
            api.remove_container(cid, force=True)
        except Exception:  # noqa: BLE001 - auto_remove may have won
            pass

    meter = CpuMeter()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        c0 = meter.read()
        t0 = time.perf_counter()
        futures = [pool.submit(spawn, n) for n in names]
        results = []
        for f in futures:
            try:
                results.append(f.result())
            except Exception as e:  # noqa: BLE001 - counted
                results.append(e)
        t1 = time.perf_counter()
        c1 = meter.read()
        stops = []
        for f in [pool.submit(stop, r[0]) for r in results if isinstance(r, tuple)]:
            try:
                stops.append(f.result())
            except Exception as e:  # noqa: BLE001
                stops.append(e)
        t2 = time.perf_counter()
        c2 = meter.read()
    api.close()
    times = [r[1] if isinstance(r, tuple) else r for r in results]
    return _summary(names, times, stops, t0, t1, t2, c0, c1, c2, {"max_ms": None, "p99_ms": None, "samples": 0})


async def disturbed_round(app: Any, names: list[str], disturb: str) -> dict[str, Any]:
    """N users spawn while one more user pulls a big image or is being stopped
    (its container without init: httpd as PID 1 ignores SIGTERM, so the
    stop waits the whole timeout)."""
    (x,) = make_users(app, [names[0] + "x"])
    sp = x.spawner
    if disturb.startswith("pull:"):
        sp.image = disturb[5:]
        td = time.perf_counter()
        task = asyncio.ensure_future(spawn_user(app, x, td))
        await asyncio.sleep(1.0)  # the pull has begun (inspect_image said NotFound)
    else:
        sp.extra_host_config = {}
        await spawn_user(app, x, time.perf_counter())
        td = time.perf_counter()
        task = asyncio.ensure_future(stop_user(app, x))
        await asyncio.sleep(0.5)  # the engine is waiting for the container to exit
    result = await hub_round(app, names)
    result["disturber_outlived_round"] = not task.done()
    await asyncio.wait([task], timeout=900)
    result["disturber_s"] = round(time.perf_counter() - td, 3) if task.done() else None
    result["disturber_error"] = repr(task.exception())[:300] if task.done() and task.exception() else None
    await stop_user(app, x)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [f"{args.user_prefix}{i:03d}" for i in range(args.users)]
    out: dict[str, Any] = {"spawner": args.spawner, "pid": os.getpid()}
    if args.spawner == "raw":
        out["undisturbed"] = await asyncio.to_thread(raw_round, names, args.run_id)
        return out
    import jupyterhub

    out["jupyterhub"] = jupyterhub.__version__
    if args.spawner != "thin":
        import dockerspawner

        out["dockerspawner"] = getattr(dockerspawner, "__version__", "?")
        out["dockerspawner_file"] = dockerspawner.__file__
    with tempfile.TemporaryDirectory(prefix="hb-hub-") as tmp:
        app = await start_hub(Path(tmp), args.spawner, args.prefix, args.run_id)
        try:
            await hub_round(app, [f"w{n}" for n in names[: min(3, len(names))]])  # warm-up
            out["undisturbed"] = await hub_round(app, names, profile=args.profile)
            for i, disturb in enumerate(args.disturb):
                batch = [f"d{i}{n}" for n in names]
                key = "pull" if disturb.startswith("pull:") else "slow_stop"
                out[key] = await disturbed_round(app, batch, disturb)
        finally:
            await stop_hub(app)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spawner", choices=("raw", "thin", "ours", "ds14"), required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--prefix", required=True, help="container name prefix (starts with bench-)")
    p.add_argument("--user-prefix", default="u")
    p.add_argument("--profile", help="write a cProfile of the spawn round to this file")
    p.add_argument("--disturb", action="append", default=[], help="pull:<ref> or stop (repeatable)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name in ("JupyterHub", "traitlets", "dockerspawner", "tornado", "alembic"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    result = asyncio.run(run(args))
    print("HB-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
