#!/usr/bin/env python
"""Spawn throughput with a real JupyterHub in the loop, against its floors.

For each N (``--users``), side by side in one run, alternating order, each
variant in a fresh process (``_hubround.py``) so CPU seconds are its own:

- ``raw``: the engine floor, no hub: N threads create+start the same container
  and wait until it answers HTTP.
- ``thin``: the hub floor: the same hub with ``ThinSpawner`` (create+start
  through docker-py in a thread, nothing else).
- ``ds14``: dockerspawner 14.0.0 from PyPI, in its own virtualenv
  (``--ds14-python``; ``--make-venv`` creates it), driven by the same code.
- ``ours``: this repository's DockerSpawner.

Also, with ``--hol``: head-of-line with the hub, for ``ours`` and ``ds14``:
10 users (``--hol-users``) spawn while one more user pulls a large image from the loopback
registry through a throttled TCP proxy, and while one more user's container
ignores SIGTERM for the whole 10 s stop timeout; their p95 against undisturbed.
With ``--profile-users N``: a cProfile of the hub process during N spawns, for
``thin`` and ``ours``, summarised.

    .venv/bin/python benchmarks/hub_throughput.py --users 1 10 50 --hol --profile-users 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks import pull_isolation

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS = ("raw", "thin", "ds14", "ours")
DS14_VENV = Path(os.environ.get("HB_DS14_VENV", "/tmp/hb-ds14"))
ROUND_TIMEOUT = 1800


# -- the established spawner's virtualenv ----------------------------------------------------
def ensure_ds14_venv(venv: Path) -> Path:
    """A virtualenv with dockerspawner 14.0.0 and this JupyterHub version (made once)."""
    import jupyterhub

    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "dockerspawner==14.0.0", f"jupyterhub=={jupyterhub.__version__}"],
            check=True,
        )
    return python


# -- a throttled loopback registry ----------------------------------------------------------
class ThrottledProxy:
    """A TCP proxy on 127.0.0.1 to the loopback registry that sends at most
    ``rate`` bytes/s towards the engine (all connections together). It runs
    in its own thread and event loop and stops after ``lifetime`` seconds."""

    def __init__(self, target: tuple[str, int], rate: float, lifetime: float = 1200) -> None:
        self.target, self.rate, self.lifetime = target, rate, lifetime
        self.port: int | None = None
        self.bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="hb-throttle", daemon=True)

    def __enter__(self) -> ThrottledProxy:
        self._thread.start()
        if not self._ready.wait(10) or self.port is None:
            raise RuntimeError("the throttling proxy did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        lock = asyncio.Lock()
        next_free = [0.0]

        async def throttled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while chunk := await reader.read(65536):
                async with lock:  # one budget for all connections
                    now = time.monotonic()
                    start = max(now, next_free[0])
                    next_free[0] = start + len(chunk) / self.rate
                    await asyncio.sleep(start - now)
                self.bytes += len(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            writer.close()

        async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
            try:
                ur, uw = await asyncio.open_connection(*self.target)
            except OSError:
                cw.close()
                return
            await asyncio.gather(plain(cr, uw), throttled(ur, cw), return_exceptions=True)
            cw.close()
            uw.close()

        async def serve() -> asyncio.AbstractServer:
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        server = loop.run_until_complete(serve())
        self.port = server.sockets[0].getsockname()[1]
        loop.call_later(self.lifetime, loop.stop)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()


# -- running one round ---------------------------------------------------------------------
def run_round(variant: str, users: int, run_id: str, tag: str, ds14_python: Path | None,
              extra: list[str] = ()) -> dict[str, Any]:
    """One ``_hubround.py`` process; its JSON result (errors become a result too)."""
    python = str(ds14_python) if variant == "ds14" else sys.executable
    env = dict(os.environ)
    # the ds14 process must import 14's dockerspawner: only benchmarks/ is on its path
    env["PYTHONPATH"] = str(ROOT) if variant in ("ours", "thin", "raw") else ""
    cmd = [python, str(HERE / "_hubround.py"), "--spawner", variant, "--users", str(users),
           "--run-id", run_id, "--prefix", f"bench-{run_id}-{tag}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=ROUND_TIMEOUT)
    for line in proc.stdout.splitlines():
        if line.startswith("HB-RESULT "):
            result = json.loads(line[len("HB-RESULT "):])
            result["process_s"] = round(time.perf_counter() - t0, 2)
            return result
    return {"spawner": variant, "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}


PACKAGES = ("dockerspawner", "jupyterhub", "sqlalchemy", "tornado", "asyncio", "docker", "traitlets", "jinja2")


def _package(file: str) -> str:
    if "select.epoll" in file or "selectors.py" in file:
        return "idle (epoll)"
    for name in PACKAGES:
        if f"/{name}/" in file:
            return name
    return "sqlite3" if "sqlite3" in file else "other"


def profile_summary(path: str, limit: int = 12) -> dict[str, Any]:
    """The event-loop thread's profile: busy time (not waiting in epoll), own
    time by package, the top functions by own time, and dockerspawner's own
    functions by cumulative time."""
    stats = pstats.Stats(path)
    rows, by_package = [], {}
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        pkg = _package(file if file != "~" else func)
        by_package[pkg] = by_package.get(pkg, 0.0) + tt
        rows.append({"where": f"{Path(file).name}:{line}({func})", "file": file, "calls": nc,
                     "tottime": round(tt, 4), "cumtime": round(ct, 4)})
    ours = [r for r in rows if "/dockerspawner/" in r["file"]]
    for r in rows:
        r.pop("file")
    idle = by_package.get("idle (epoll)", 0.0)
    return {
        "total_tt_s": round(stats.total_tt, 3),
        "busy_s": round(stats.total_tt - idle, 3),
        "by_package_s": {k: round(v, 3) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])},
        "dockerspawner_tottime_s": round(sum(r["tottime"] for r in ours), 3),
        "top_tottime": sorted(rows, key=lambda r: -r["tottime"])[:limit],
        "dockerspawner_top_cumtime": sorted(ours, key=lambda r: -r["cumtime"])[:limit],
    }


# -- the benchmark ---------------------------------------------------------------------------
def _run_sync(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    api = h.docker_api(pool=4)
    info = h.machine_info(api)
    ds14_python = ensure_ds14_venv(args.ds14_venv) if "ds14" in args.variants else None
    rows: list[dict[str, Any]] = []
    counter = iter(range(100_000))
    loads: list[float | None] = []

    def one(variant: str, users: int, extra: list[str] = ()) -> dict[str, Any]:
        loads.append(h.load_average())
        r = run_round(variant, users, run_id, f"{next(counter)}{variant[:2]}", ds14_python, extra)
        r["load_before"] = loads[-1]
        if "error" in r:
            h.log.warning("%s N=%d failed: %s", variant, users, r["error"])
        if not args.quiet:
            u = r.get("undisturbed") or {}
            print(f"  {variant:<5} N={users:<4} wall {u.get('wall_s')}s p50 {u.get('p50_s')} p95 {u.get('p95_s')}"
                  f" stop {u.get('stop_wall_s')}s cpu {u.get('cpu_spawn_s')} lag {(u.get('loop_lag') or {}).get('max_ms')}ms"
                  f" load {r['load_before']}{' ERROR' if 'error' in r else ''}", file=sys.stderr, flush=True)
        return r

    try:
        for n in args.users:
            runs: dict[str, list] = {v: [] for v in args.variants}
            for rep in range(args.repeats):
                order = args.variants if rep % 2 == 0 else list(reversed(args.variants))
                for v in order:
                    runs[v].append(one(v, n))
            rows.append({"users": n, "runs": runs, "summary": summarise(runs, n)})
        hol = profile = None
        if args.hol:
            hol = head_of_line(args, api, run_id, one)
        if args.profile_users:
            profile = {}
            with tempfile.TemporaryDirectory(prefix="hb-prof-") as tmp:
                for v in ("thin", "ours"):
                    path = f"{tmp}/{v}.prof"
                    r = one(v, args.profile_users, ["--profile", path])
                    profile[v] = {"round": r.get("undisturbed"),
                                  **(profile_summary(path) if os.path.exists(path) else {"error": r.get("error")})}
        leftover = h.count_run_containers(api, run_id)
    finally:
        api.close()
    return {
        "benchmark": "hub_throughput",
        "machine": info,
        "versions": versions(ds14_python),
        "users": args.users,
        "repeats": args.repeats,
        "rows": rows,
        "head_of_line": hol,
        "profile": profile,
        "load_average": {"min": min((x for x in loads if x is not None), default=None),
                         "max": max((x for x in loads if x is not None), default=None)},
        "leftover_containers": leftover,
        "run_id": run_id,
    }


def versions(ds14_python: Path | None) -> dict[str, Any]:
    import jupyterhub

    out = {"jupyterhub": jupyterhub.__version__}
    try:
        node = subprocess.run(["configurable-http-proxy", "--version"], capture_output=True, text=True, timeout=30)
        out["configurable-http-proxy"] = node.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["configurable-http-proxy"] = None
    if ds14_python:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out["ds14"] = subprocess.run([str(ds14_python), "-c", "import dockerspawner; print(dockerspawner.__version__)"],
                                     capture_output=True, text=True, timeout=60, env=env, cwd="/").stdout.strip()
    return out


def _median_of(runs: list[dict], *path: str) -> float | None:
    values = []
    for r in runs:
        v: Any = r.get("undisturbed")
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            values.append(v)
    return h.median(values)


def _thread_medians(runs: list[dict]) -> dict[str, float]:
    """The hub's CPU during the spawns by thread group (event loop, engine pool, ...), median over repeats."""
    groups: dict[str, list[float]] = {}
    for r in runs:
        for g, cpu in ((r.get("undisturbed") or {}).get("cpu_spawn_by_thread_s") or {}).items():
            groups.setdefault(g, []).append(cpu)
    return {g: h.median(v) for g, v in groups.items()}


def summarise(runs: dict[str, list], n: int) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for v, rs in runs.items():
        cpu = _median_of(rs, "cpu_spawn_s", "hub")
        s[v] = {
            "wall_s": _median_of(rs, "wall_s"),
            "p50_s": _median_of(rs, "p50_s"),
            "p95_s": _median_of(rs, "p95_s"),
            "stop_wall_s": _median_of(rs, "stop_wall_s"),
            "hub_cpu_s": cpu,
            "hub_cpu_per_spawn_ms": None if cpu is None else round(cpu / n * 1000, 2),
            "dockerd_cpu_s": _median_of(rs, "cpu_spawn_s", "dockerd"),
            "dockerd_cpu_stop_s": _median_of(rs, "cpu_stop_s", "dockerd"),
            "max_lag_ms": _median_of(rs, "loop_lag", "max_ms"),
            "failures": sum(((r.get("undisturbed") or {}).get("spawn_failures", 0) or 0) + ("error" in r) for r in rs),
            "hub_cpu_by_thread_s": _thread_medians(rs),
        }
    for a in ("ours", "ds14"):
        if a in s and "thin" in s:
            s[f"{a}_over_thin"] = {k: h.ratio(s[a][k], s["thin"][k]) for k in ("wall_s", "p50_s", "hub_cpu_s")}
    return s


def head_of_line(args: argparse.Namespace, api: Any, run_id: str, one) -> dict[str, Any]:
    big = pull_isolation.ensure_big_image(api, args.layer_mb, run_id)
    n = args.hol_users
    out: dict[str, Any] = {"layer_mb": args.layer_mb, "rate_mb_s": args.rate_mb_s, "users": n, "image": big}
    with ThrottledProxy(("127.0.0.1", 5000), args.rate_mb_s * 1e6) as proxy:
        ref = big["ref"].replace("127.0.0.1:5000", f"127.0.0.1:{proxy.port}")
        out["proxied_ref"] = ref
        for v in [v for v in ("ours", "ds14") if v in args.variants]:
            pull_isolation.remove_local(api, ref)
            r = one(v, n, ["--disturb", "stop", "--disturb", f"pull:{ref}"])
            und = (r.get("undisturbed") or {}).get("p95_s")
            out[v] = {
                "run": r,
                "p95_undisturbed_s": und,
                "p95_slow_stop_s": (r.get("slow_stop") or {}).get("p95_s"),
                "p95_pull_s": (r.get("pull") or {}).get("p95_s"),
                "slow_stop_over_undisturbed": h.ratio((r.get("slow_stop") or {}).get("p95_s"), und),
                "pull_over_undisturbed": h.ratio((r.get("pull") or {}).get("p95_s"), und),
            }
            pull_isolation.remove_local(api, ref)
        out["proxied_bytes"] = proxy.bytes
    return out


def report(result: dict[str, Any]) -> str:
    m, ver = result["machine"], result["versions"]
    lines = [
        f"hub_throughput ({m['date']}, {m['cpus']} cpus, engine {m['engine_version']}, JupyterHub {ver['jupyterhub']},"
        f" CHP {ver.get('configurable-http-proxy')}, established {ver.get('ds14')}; load {result['load_average']})",
        "| N | variant | wall s | p50 s | p95 s | stop s | hub CPU s | hub CPU/spawn ms | dockerd CPU s | max loop lag ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        for v, s in row["summary"].items():
            if v.endswith("_over_thin"):
                continue
            lines.append(
                f"| {row['users']} | {v} | {h.fmt(s['wall_s'])} | {h.fmt(s['p50_s'])} | {h.fmt(s['p95_s'])} |"
                f" {h.fmt(s['stop_wall_s'])} | {h.fmt(s['hub_cpu_s'])} | {h.fmt(s['hub_cpu_per_spawn_ms'], 1)} |"
                f" {h.fmt(s['dockerd_cpu_s'])} | {h.fmt(s['max_lag_ms'], 0)} |"
                + (f" failures {s['failures']}" if s["failures"] else "")
            )
    for row in result["rows"]:
        for a in ("ours", "ds14"):
            r = row["summary"].get(f"{a}_over_thin")
            if r:
                lines.append(f"N={row['users']} {a}/thin: wall {h.fmt(r['wall_s'])}  p50 {h.fmt(r['p50_s'])}"
                             f"  hub CPU {h.fmt(r['hub_cpu_s'])}")
    for row in result["rows"]:
        threads = {v: s.get("hub_cpu_by_thread_s") for v, s in row["summary"].items()
                   if not v.endswith("_over_thin") and v != "raw" and s.get("hub_cpu_by_thread_s")}
        if threads:
            lines.append(f"N={row['users']} hub CPU s by thread: "
                         + "; ".join(f"{v} {', '.join(f'{g} {c}' for g, c in t.items())}" for v, t in threads.items()))
    hol = result.get("head_of_line")
    if hol:
        lines.append(f"head-of-line, {hol['users']} users ({hol['layer_mb']} MB layer at {hol['rate_mb_s']} MB/s; stop timeout 10 s):")
        for v in ("ours", "ds14"):
            if v in hol:
                x = hol[v]
                lines.append(
                    f"  {v}: p95 undisturbed {h.fmt(x['p95_undisturbed_s'])} s, during slow stop {h.fmt(x['p95_slow_stop_s'])} s"
                    f" ({h.fmt(x['slow_stop_over_undisturbed'])}x), during pull {h.fmt(x['p95_pull_s'])} s"
                    f" ({h.fmt(x['pull_over_undisturbed'])}x); load {x['run'].get('load_before')}"
                )
    prof = result.get("profile")
    if prof:
        for v, p in prof.items():
            if "total_tt_s" not in p:
                lines.append(f"profile {v}: {p.get('error')}")
                continue
            lines.append(f"profile {v} (N={(p['round'] or {}).get('users')}): event-loop thread busy {p['busy_s']} s"
                         f" of {p['total_tt_s']} s; by package {p['by_package_s']}")
            for r in p["top_tottime"][:6]:
                lines.append(f"    tottime {r['tottime']:.3f}s cum {r['cumtime']:.3f}s {r['calls']:>7} calls  {r['where']}")
    lines.append(f"leftover containers: {result['leftover_containers']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[1, 10, 50], help="N values (default 1 10 50)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--hol", action="store_true", help="also measure head-of-line (pull, slow stop)")
    p.add_argument("--hol-users", type=int, default=10, help="users spawning during --hol's disturbers (default 10)")
    p.add_argument("--layer-mb", type=int, default=100, help="the big image's layer for --hol (default 100)")
    p.add_argument("--rate-mb-s", type=float, default=4.0, help="registry throttle for --hol (default 4 MB/s)")
    p.add_argument("--profile-users", type=int, default=0, help="profile thin and ours at this N (0: no)")
    p.add_argument("--ds14-venv", type=Path, default=DS14_VENV, help=f"dockerspawner 14's virtualenv (default {DS14_VENV})")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(args.variants) - set(VARIANTS) or not args.variants:
        p.error(f"choose variants from {', '.join(VARIANTS)}")
    if not all(1 <= n <= 500 for n in [*args.users, args.hol_users]):
        p.error("--users and --hol-users must be 1..500")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)

    async def run(a: argparse.Namespace, run_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(_run_sync, a, run_id)

    return h.run_benchmark(argv, args, run, report, h.cleanup_sync)


if __name__ == "__main__":
    h.run_as_script(main)
