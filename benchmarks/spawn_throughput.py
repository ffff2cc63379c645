#!/usr/bin/env python
"""Spawn throughput on the real engine: N users start (and then stop) at once.

Variants, measured side by side in one process, in alternating order:

- ``raw``: the engine's own limit: N threads, docker-py directly, each
  create+start of the same image, command and port publishing; no spawner.
- ``raw_http`` (informative): ``raw`` plus the readiness check a spawner does
  (poll the published port until HTTP answers), so spawner overhead and
  readiness wait can be told apart.
- ``ours``: DockerSpawner on one shared ``DockerPyEngine`` (default pool).
- ``serialized``: the same spawner, but every protocol call of every user goes
  through ONE lane (``SerializedEngine``), the established spawner's model.

"Started" means ``start()`` returned (the server answered HTTP); stop is
``stop(now=True)`` (kill, then remove: busybox httpd as PID 1 ignores SIGTERM,
so a graceful stop would measure a 10 s timeout). Raw stop is stop(timeout=0)
+ remove. Reports the median over ``--repeats`` of spawns/s per variant and
the ratios ours/raw and ours/serialized.

    .venv/bin/python benchmarks/spawn_throughput.py --users 30 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

VARIANTS = ("raw", "raw_http", "ours", "serialized")


# -- raw docker-py ------------------------------------------------------------------------
def _raw_batch(api, names: list[str], run_id: str, http: bool) -> tuple[float, float, int, int]:
    """Create+start ``names`` in parallel threads, then stop+remove them.
    Returns (start wall s, stop wall s, start failures, stop failures)."""
    def spawn(name: str) -> str:
        return h.raw_spawn(api, name, run_id, http=http)

    def stop(cid: str) -> None:
        h.raw_stop(api, cid)

    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="raw") as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(spawn, n) for n in names]
        cids, start_fail = [], 0
        for f in futures:
            try:
                cids.append(f.result())
            except Exception as e:  # noqa: BLE001 - counted and reported
                start_fail += 1
                h.log.warning("raw spawn failed: %s", e)
        t1 = time.perf_counter()
        stop_fail = 0
        for f in [pool.submit(stop, c) for c in cids]:
            try:
                f.result()
            except Exception as e:  # noqa: BLE001
                stop_fail += 1
                h.log.warning("raw stop failed: %s", e)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, start_fail, stop_fail


# -- spawners -------------------------------------------------------------------------------
async def _spawner_batch(users: h.Users, engine: Any, n: int, run_id: str, prefix: str) -> tuple[float, float, int, int]:
    spawners = [
        users.spawner(f"u{i:03d}", **h.spawner_traits(run_id, prefix, engine=engine)) for i in range(n)
    ]
    t0 = time.perf_counter()
    results = await asyncio.gather(*(s.start() for s in spawners), return_exceptions=True)
    t1 = time.perf_counter()
    start_fail = 0
    for r in results:
        if isinstance(r, BaseException):
            start_fail += 1
            h.log.warning("spawn failed: %r", r)
    results = await asyncio.gather(*(s.stop(now=True) for s in spawners), return_exceptions=True)
    t2 = time.perf_counter()
    stop_fail = sum(isinstance(r, BaseException) for r in results)
    for r in results:
        if isinstance(r, BaseException):
            h.log.warning("stop failed: %r", r)
    return t1 - t0, t2 - t1, start_fail, stop_fail


async def _run(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    from dockerspawner.engine.dockerpy import DockerPyEngine

    n = args.users
    variants = [v for v in VARIANTS if v in args.variants]
    api = h.docker_api(pool=n + 8)
    engine = DockerPyEngine()
    serialized = h.SerializedEngine(engine)
    users = h.Users()
    loop = asyncio.get_running_loop()
    data: dict[str, dict[str, Any]] = {
        v: {"start_s": [], "stop_s": [], "start_failures": 0, "stop_failures": 0} for v in variants
    }
    counter = iter(range(10_000))

    async def measure(variant: str, size: int = n) -> tuple[float, float, int, int]:
        nonlocal serialized_spawns
        prefix = f"bench-{run_id}-{next(counter)}{variant[0]}"
        if variant in ("raw", "raw_http"):
            names = [f"{prefix}-u{i:03d}" for i in range(size)]
            return await loop.run_in_executor(None, _raw_batch, api, names, run_id, variant == "raw_http")
        eng = engine if variant == "ours" else serialized
        if variant == "serialized":
            serialized_spawns += size
        return await _spawner_batch(users, eng, size, run_id, prefix)

    load_before = h.load_average()
    serialized_spawns = 0
    try:
        info = h.machine_info(api)
        await engine.ping()
        await engine.inspect_image(h.IMAGE)
        if args.warmup:  # first-use costs: clients, imports, the HTTP client, the image cache
            for v in variants:
                await measure(v, min(n, 4))
        for rep in range(args.repeats):
            order = variants if rep % 2 == 0 else list(reversed(variants))
            for v in order:
                start_s, stop_s, sf, pf = await measure(v)
                d = data[v]
                d["start_s"].append(round(start_s, 4))
                d["stop_s"].append(round(stop_s, 4))
                d["start_failures"] += sf
                d["stop_failures"] += pf
                if not args.quiet:
                    print(f"  rep {rep + 1} {v:<10} start {start_s:7.3f}s  stop {stop_s:7.3f}s"
                          f"  failures {sf}/{pf}", file=sys.stderr, flush=True)
        leftover = h.count_run_containers(api, run_id)
    finally:
        users.close()
        await engine.close()
        api.close()

    for d in data.values():
        start_med, stop_med = h.median(d["start_s"]), h.median(d["stop_s"])
        d["start_median_s"] = start_med
        d["stop_median_s"] = stop_med
        d["spawns_per_s"] = h.ratio(n, start_med)
        d["stops_per_s"] = h.ratio(n, stop_med)
    sps = {v: d["spawns_per_s"] for v, d in data.items()}
    stops = {v: d["stops_per_s"] for v, d in data.items()}
    def paired(a: str, b: str) -> float | None:
        """Median over repeats of a/b within the same repeat (robust to drifting load)."""
        if a not in data or b not in data:
            return None
        return h.median([h.ratio(y, x) for x, y in zip(data[a]["start_s"], data[b]["start_s"]) if x])

    ratios = {
        "ours_over_raw_paired": paired("ours", "raw"),
        "ours_over_serialized_paired": paired("ours", "serialized"),
        "ours_over_raw": h.ratio(sps.get("ours"), sps.get("raw")),
        "ours_over_raw_http": h.ratio(sps.get("ours"), sps.get("raw_http")),
        "ours_over_serialized": h.ratio(sps.get("ours"), sps.get("serialized")),
        "stop_ours_over_raw": h.ratio(stops.get("ours"), stops.get("raw")),
        "stop_ours_over_serialized": h.ratio(stops.get("ours"), stops.get("serialized")),
    }
    return {
        "benchmark": "spawn_throughput",
        "users": n,
        "repeats": args.repeats,
        "machine": info,
        "variants": data,
        "ratios": ratios,
        "serialized_lane_calls": serialized.calls,
        # protocol calls one spawner start+stop makes (counted by the serialized lane)
        "engine_calls_per_spawn": h.ratio(serialized.calls, serialized_spawns),
        "load_average": {"before": load_before, "after": h.load_average()},
        "leftover_containers": leftover,
        "run_id": run_id,
    }


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        (
            f"spawn_throughput: {result['users']} users, median of {result['repeats']} "
            f"({m['date']}, {m['cpus']} cpus, engine {m['engine_version']} API {m['engine_api']})"
        ),
        f"{'variant':<11}{'start s':>9}{'spawns/s':>10}{'stop s':>9}{'stops/s':>9}  failures  all start s",
    ]
    for v, d in result["variants"].items():
        lines.append(
            f"{v:<11}{h.fmt(d['start_median_s'], 3):>9}{h.fmt(d['spawns_per_s']):>10}"
            f"{h.fmt(d['stop_median_s'], 3):>9}{h.fmt(d['stops_per_s']):>9}"
            f"  {d['start_failures']}/{d['stop_failures']:<6}  {d['start_s']}"
        )
    r = result["ratios"]
    lines.append(
        f"ratios (spawns/s): ours/raw {h.fmt(r['ours_over_raw'])}  ours/raw_http {h.fmt(r['ours_over_raw_http'])}"
        f"  ours/serialized {h.fmt(r['ours_over_serialized'])}"
    )
    lines.append(
        f"ratios (stops/s):  ours/raw {h.fmt(r['stop_ours_over_raw'])}"
        f"  ours/serialized {h.fmt(r['stop_ours_over_serialized'])}"
    )
    lines.append(
        f"paired (median of per-repeat ratios): ours/raw {h.fmt(r['ours_over_raw_paired'])}"
        f"  ours/serialized {h.fmt(r['ours_over_serialized_paired'])}"
    )
    la = result["load_average"]
    lines.append(
        f"engine calls per spawner start+stop: {h.fmt(result['engine_calls_per_spawn'], 1)};"
        f" load average before/after: {la['before']}/{la['after']};"
        f" leftover containers: {result['leftover_containers']}"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=30, help="concurrent users (default 30)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per variant (default 3)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed first round")
    p.add_argument("--json", action="store_true", help="print the result dict as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-measurement lines")
    p.add_argument("--verbose", action="store_true", help="spawner and engine logs")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = set(args.variants) - set(VARIANTS)
    if bad or not args.variants:
        p.error(f"unknown variants {sorted(bad)}; choose from {', '.join(VARIANTS)}")
    if not (1 <= args.users <= 200) or not (1 <= args.repeats <= 20):
        p.error("--users must be 1..200 and --repeats 1..20")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return h.run_benchmark(argv, parse_args(argv), _run, report, h.cleanup_sync)


if __name__ == "__main__":
    h.run_as_script(main)
