#!/usr/bin/env python
"""What each spawn costs the hub's process: CPU and memory per spawn at 1,000
concurrent spawns on fakedocker, and the event loop's worst lag.

- ``fake``: ``--spawns`` (default 1000) DockerSpawners (``_harness.Users``, no
  hub) start at once on one ``FakeDocker`` (an in-process engine that answers
  at once; its simulated ``jupyterhub-singleuser`` answers the readiness
  check on the published port), then stop at once. Measured: CPU seconds of
  this process per spawn and per stop, and, in a second identical round under
  ``tracemalloc``, the memory still held per running server and the peak per
  spawn. The fake's own work runs in the same process, so the same spawns as
  bare engine calls (create+start+port, no spawner) are measured as the floor:
  ours minus floor is the spawner's own cost.
- ``real``: ``--real-users`` (default 50) spawners start at once on the real
  engine (no hub), and a task timing ``sleep(0.01)`` reports the event loop's
  worst lag: how long anything on the loop was blocked, with the garbage
  collector's pauses meanwhile; then the same round after ``gc.freeze()``, to
  tell a full collection of the process's heap from a slow callback.

    .venv/bin/python benchmarks/hub_cost.py --spawns 1000 --real-users 50
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks._hubround import LagMonitor

FAKE_IMAGE = "bench/singleuser:1"
FAKE_CMD = ["jupyterhub-singleuser"]


def _fake_traits(prefix: str) -> dict[str, Any]:
    return {"image": FAKE_IMAGE, "cmd": list(FAKE_CMD), "prefix": prefix, "remove": True,
            "start_timeout": 600, "http_timeout": 600}


async def _fake_round(n: int, *, floor: bool, trace: bool) -> dict[str, Any]:
    """One round on a fresh fake: start n at once, then stop them all."""
    from dockerspawner.index import close_indexes
    from fakedocker import FakeDocker

    fake = FakeDocker()
    fake.add_image(FAKE_IMAGE, config={"Cmd": list(FAKE_CMD)})
    # a network is a /24, as on the engine: 200 servers to each
    nets = [f"bench-cost-{k}" for k in range((n + 199) // 200)]
    for net in nets:
        await fake.create_network(net)
    users = h.Users()
    spawners = [] if floor else [
        users.spawner(f"u{i}", engine=fake, network_name=nets[i // 200], **_fake_traits("bench-cost")) for i in range(n)
    ]
    lag = LagMonitor()
    if trace:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    lag.start()
    c0, w0 = time.process_time(), time.perf_counter()
    if floor:
        async def one(i: int) -> str:
            cid = await fake.create_container({"image": FAKE_IMAGE, "name": f"bench-cost-u{i}", "command": list(FAKE_CMD),
                                               "ports": [8888], "host_config": {"port_bindings": {8888: ("127.0.0.1",)},
                                                                               "network_mode": nets[i // 200]}})
            await fake.start_container(cid)
            await fake.port(cid, 8888)
            return cid
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    else:
        results = await asyncio.gather(*(s.start() for s in spawners), return_exceptions=True)
    c1, w1 = time.process_time(), time.perf_counter()
    held = tracemalloc.get_traced_memory()[0] - base if trace else None
    if floor:
        stops = await asyncio.gather(*(fake.remove_container(c, force=True) for c in results if isinstance(c, str)),
                                     return_exceptions=True)
    else:
        stops = await asyncio.gather(*(s.stop(now=True) for s in spawners), return_exceptions=True)
    c2, w2 = time.process_time(), time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1] - base if trace else None
    if trace:
        tracemalloc.stop()
    lags = await lag.stop()
    await close_indexes()
    await fake.close()
    users.close()
    failures = [r for r in list(results) + list(stops) if isinstance(r, BaseException)]
    return {
        "spawns": n,
        "failures": len(failures),
        "first_failure": repr(failures[0])[:300] if failures else None,
        "start_wall_s": round(w1 - w0, 3),
        "stop_wall_s": round(w2 - w1, 3),
        "cpu_per_spawn_ms": round((c1 - c0) / n * 1000, 3),
        "cpu_per_stop_ms": round((c2 - c1) / n * 1000, 3),
        "held_kb_per_server": None if held is None else round(held / n / 1024, 1),
        "peak_kb_per_spawn": None if peak is None else round(peak / n / 1024, 1),
        "loop_lag": lags,
    }


async def _real_round(n: int, run_id: str, *, frozen: bool = False) -> dict[str, Any]:
    """With ``frozen``, everything alive before the spawns is moved out of the
    collector's reach (``gc.freeze()``), as a hub could do after start-up: the
    contrast says how much of the worst lag is a full collection of the
    process's heap rather than a callback."""
    from dockerspawner.engine.dockerpy import DockerPyEngine
    from dockerspawner.index import close_indexes

    engine = DockerPyEngine()
    users = h.Users()
    spawners = [users.spawner(f"u{i:03d}", **h.spawner_traits(run_id, f"bench-{run_id}-lag", engine=engine))
                for i in range(n)]
    if frozen:
        gc.collect()
        gc.freeze()
    lag = LagMonitor()
    lag.start()
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        results = await asyncio.gather(*(s.start() for s in spawners), return_exceptions=True)
    finally:
        c1, w1 = time.process_time(), time.perf_counter()
        start_lag = await lag.stop()
        if frozen:
            gc.unfreeze()
    stops = await asyncio.gather(*(s.stop(now=True) for s in spawners), return_exceptions=True)
    await close_indexes(engine)
    await engine.close()
    users.close()
    return {
        "spawns": n,
        "gc_frozen": frozen,
        "failures": sum(isinstance(r, BaseException) for r in list(results) + list(stops)),
        "start_wall_s": round(w1 - w0, 3),
        "cpu_per_spawn_ms": round((c1 - c0) / n * 1000, 3),
        "loop_lag": start_lag,
    }


_BURST = """
import sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from benchmarks import _harness as h
api = h.docker_api(pool=64)
run_id, prefix, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
with ThreadPoolExecutor(max_workers=32) as pool:
    list(pool.map(lambda i: h.raw_spawn(api, f"{prefix}-u{i:03d}", run_id, http=True), range(n)))
"""


async def _lag_floor_round(n: int, run_id: str) -> dict[str, Any]:
    """The machine's floor for the lag: this loop does nothing but measure while
    another process creates, starts and reaches the same ``n`` containers
    (raw docker-py, 32 threads), so the engine and the containers load the
    cores as during the spawns, and no spawner runs on this loop."""
    lag = LagMonitor()
    lag.start()
    w0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _BURST, str(Path(__file__).resolve().parents[1]), run_id, f"bench-{run_id}-floorlag", str(n)
    )
    try:
        code = await asyncio.wait_for(proc.wait(), 300)
    finally:
        w1 = time.perf_counter()
        floor_lag = await lag.stop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.to_thread(h.cleanup_sync, run_id)
    return {"spawns": n, "exit_code": code, "start_wall_s": round(w1 - w0, 3), "loop_lag": floor_lag}


async def run(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    load = h.load_average()
    out: dict[str, Any] = {"benchmark": "hub_cost", "spawns": args.spawns, "load_before": load}
    out["floor"] = await _fake_round(args.spawns, floor=True, trace=False)
    out["ours"] = await _fake_round(args.spawns, floor=False, trace=False)
    out["floor_mem"] = await _fake_round(args.spawns, floor=True, trace=True)
    out["ours_mem"] = await _fake_round(args.spawns, floor=False, trace=True)
    out["spawner_cpu_per_spawn_ms"] = round(out["ours"]["cpu_per_spawn_ms"] - out["floor"]["cpu_per_spawn_ms"], 3)
    out["spawner_held_kb_per_server"] = round(out["ours_mem"]["held_kb_per_server"] - out["floor_mem"]["held_kb_per_server"], 1)
    if args.real_users:
        out["real"] = await _real_round(args.real_users, run_id)
        out["real_gc_frozen"] = await _real_round(args.real_users, run_id, frozen=True)
        out["real_lag_floor"] = await _lag_floor_round(args.real_users, run_id)
        idle = LagMonitor()
        idle.start()
        await asyncio.sleep(min(out["real"]["start_wall_s"], 10))
        out["idle_loop_lag"] = await idle.stop()  # the machine's own scheduling noise
    out["load_after"] = h.load_average()
    out["run_id"] = run_id
    return out


def report(r: dict[str, Any]) -> str:
    lines = [f"hub_cost: {r['spawns']} concurrent spawns on fakedocker (load {r['load_before']}/{r['load_after']})",
             "| | start wall s | CPU/spawn ms | CPU/stop ms | held KB/server | peak KB/spawn | max loop lag ms | failures |",
             "|---|---|---|---|---|---|---|---|"]
    for key, mem in (("floor", "floor_mem"), ("ours", "ours_mem")):
        a, m = r[key], r[mem]
        lines.append(f"| {key} | {a['start_wall_s']} | {a['cpu_per_spawn_ms']} | {a['cpu_per_stop_ms']} |"
                     f" {m['held_kb_per_server']} | {m['peak_kb_per_spawn']} | {a['loop_lag']['max_ms']} | {a['failures']} |")
    lines.append(f"spawner's own: {r['spawner_cpu_per_spawn_ms']} ms CPU and {r['spawner_held_kb_per_server']} KB per server")
    for key in ("real", "real_gc_frozen"):
        x = r.get(key)
        if not x:
            continue
        lag = x["loop_lag"]
        lines.append(f"real engine, {x['spawns']} concurrent spawns (no hub{', gc.freeze() first' if x.get('gc_frozen') else ''}):"
                     f" max loop lag {lag['max_ms']} ms, p99 {lag['p99_ms']} ms; full GCs {lag.get('gc_full_collections')},"
                     f" longest GC pause {lag.get('gc_max_ms')} ms; wall {x['start_wall_s']} s,"
                     f" CPU/spawn {x['cpu_per_spawn_ms']} ms, failures {x['failures']}")
    floor = r.get("real_lag_floor")
    if floor:
        lines.append(f"the machine's floor: an idle loop while another process makes the same {floor['spawns']} containers"
                     f" (raw docker-py): max loop lag {floor['loop_lag']['max_ms']} ms, p99 {floor['loop_lag']['p99_ms']} ms,"
                     f" wall {floor['start_wall_s']} s, exit {floor['exit_code']}")
    if r.get("idle_loop_lag"):
        lines.append(f"an idle loop after: max {r['idle_loop_lag']['max_ms']} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spawns", type=int, default=1000)
    p.add_argument("--real-users", type=int, default=50, help="real-engine spawns for the lag (0: skip)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    return h.run_benchmark(argv, args, run, report, h.cleanup_sync)


if __name__ == "__main__":
    main()
