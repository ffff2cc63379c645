"""What one poll interval costs as the number of running servers grows.

U servers run on fakedocker (containers made directly, labelled for their
owners, as a restarted hub finds them); U spawners load their saved state and
all poll at once, as JupyterHub's poll loop does, several intervals in a row.
Measured per interval, side by side: engine calls and the hub process's CPU
seconds, for the shared event-driven index (``poll_from_events=True``, the
default) and for one inspect per server (``poll_from_events=False``, 14's way).
With ``--real U``, the same on the real engine: U busybox containers labelled
as servers, polled through the docker-py backend (its worker threads' CPU is
the hub process's too).

    .venv/bin/python benchmarks/poll_cost.py --users 100 1000 10000 --real 100
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _harness as h  # noqa: E402
from benchmarks._harness import Users, fmt, median, ratio, run_benchmark  # noqa: E402

IMAGE = "bench/poll:1"


async def _servers(fake: Any, users: int) -> list[dict]:
    from dockerspawner import naming

    fake.add_image(IMAGE, config={"Cmd": ["sleep", "3600"]})
    # a network is a /24 as on the engine (the bridge holds 253): 200 servers to each
    for k in range((users + 199) // 200):
        await fake.create_network(f"poll-{k}")
    states = []
    for i in range(users):
        name = f"jupyter-u{i}"
        cid = await fake.create_container(
            {"image": IMAGE, "name": name, "command": ["sleep", "3600"], "labels": naming.owner_labels(f"u{i}", ""),
             "host_config": {"network_mode": f"poll-{i // 200}"}}
        )
        await fake.start_container(cid)
        states.append({"object_id": cid, "object_name": name})
    return states


class _Counted:
    """An engine whose protocol calls are recorded in ``calls``, as fakedocker's are."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return counted


def _real_servers(run_id: str, users: int) -> list[dict]:
    """``users`` running containers on the real engine, labelled as servers (and as this run's)."""
    from dockerspawner import naming

    api = h.docker_api(pool=8, timeout=120)
    states = []
    try:
        for i in range(users):
            name = f"bench-{run_id}-poll-u{i}"
            cid = api.create_container(
                h.IMAGE, command=["sleep", "3600"], name=name,
                labels={**naming.owner_labels(f"u{i}", ""), **h.labels(run_id)},
                host_config=api.create_host_config(auto_remove=False),
            )["Id"]
            api.start(cid)
            states.append({"object_id": cid, "object_name": name})
    finally:
        api.close()
    return states


async def _real(run_id: str, users: int, intervals: int) -> dict[str, Any]:
    from dockerspawner.engine.dockerpy import DockerPyEngine

    try:
        states = await asyncio.to_thread(_real_servers, run_id, users)
        out = {}
        for key, from_events in (("index", True), ("inspect_each", False)):
            engine = DockerPyEngine()
            try:
                out[key] = await _measure(_Counted(engine), states, from_events=from_events, intervals=intervals,
                                          image=h.IMAGE)
            finally:
                await engine.close()
    finally:
        await asyncio.to_thread(h.cleanup_sync, run_id)
    return {"users": users, **out, "calls_ratio": ratio(out["inspect_each"]["engine_calls"], out["index"]["engine_calls"] or None),
            "cpu_ratio": ratio(out["inspect_each"]["cpu_s"], out["index"]["cpu_s"])}


async def _measure(
    fake: Any, states: list[dict], *, from_events: bool, intervals: int, image: str = IMAGE
) -> dict[str, Any]:
    from dockerspawner.index import close_indexes

    users = Users()
    spawners = []
    for i, state in enumerate(states):
        sp = users.spawner(f"u{i}", engine=fake, image=image, poll_from_events=from_events)
        sp.load_state(state)
        spawners.append(sp)
    calls, cpu, wall = [], [], []
    try:
        # the first interval builds the index, whose event replay then invalidates what
        # changed just before its list (inspected once): warm up until an interval is quiet
        for _ in range(20):
            before = len(fake.calls)
            await asyncio.gather(*(sp.poll() for sp in spawners))
            await asyncio.sleep(0.05)
            if len(fake.calls) == before:
                break
        warmup_calls = len(fake.calls)
        for _ in range(intervals):
            before = len(fake.calls)
            c0, w0 = time.process_time(), time.perf_counter()
            results = await asyncio.gather(*(sp.poll() for sp in spawners))
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            calls.append(len(fake.calls) - before)
            if any(r is not None for r in results):
                raise RuntimeError("a running server was reported stopped")
            await asyncio.sleep(0.05)
    finally:
        await close_indexes()
        users.close()
    return {
        "engine_calls": median(calls),
        "warmup_calls": warmup_calls,
        "cpu_s": median(cpu),
        "wall_s": median(wall),
    }


async def _floor(users: int, intervals: int) -> dict[str, Any]:
    """What JupyterHub's poll loop costs with a poll that does nothing at all."""

    async def nothing() -> None:
        return None

    cpu = []
    for _ in range(intervals):
        c0 = time.process_time()
        await asyncio.gather(*(nothing() for _ in range(users)))
        cpu.append(time.process_time() - c0)
    return {"cpu_s": median(cpu)}


async def run(args: Any, run_id: str) -> dict[str, Any]:
    from fakedocker import FakeDocker

    rows = []
    for users in args.users:
        fake = FakeDocker()
        try:
            states = await _servers(fake, users)
            fake.calls.clear()
            index = await _measure(fake, states, from_events=True, intervals=args.intervals)
            inspect = await _measure(fake, states, from_events=False, intervals=args.intervals)
        finally:
            await fake.close()
        rows.append(
            {
                "users": users,
                "floor": await _floor(users, args.intervals),
                "index": index,
                "inspect_each": inspect,
                "calls_ratio": ratio(inspect["engine_calls"], index["engine_calls"] or None),
                "cpu_ratio": ratio(inspect["cpu_s"], index["cpu_s"]),
            }
        )
    out = {"benchmark": "poll_cost", "engine": "fakedocker", "intervals": args.intervals, "rows": rows, "run_id": run_id}
    if args.real:
        out["real"] = await _real(run_id, args.real, args.intervals)
    return out


def report(result: dict[str, Any]) -> str:
    lines = [
        "poll cost per interval (fakedocker; median over intervals after a warm-up)",
        "| servers | index: engine calls | index: hub CPU ms | inspect each: engine calls | inspect each: hub CPU ms"
        " | no-op poll floor: CPU ms | inspect/index CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        i, e = row["index"], row["inspect_each"]
        lines.append(
            f"| {row['users']} | {fmt(i['engine_calls'], 0)} | {fmt(i['cpu_s'] * 1000, 1)} |"
            f" {fmt(e['engine_calls'], 0)} | {fmt(e['cpu_s'] * 1000, 1)} | {fmt(row['floor']['cpu_s'] * 1000, 1)}"
            f" | {fmt(row['cpu_ratio'])} |"
        )
    real = result.get("real")
    if real:
        i, e = real["index"], real["inspect_each"]
        lines.append(
            f"real engine, {real['users']} servers: index {fmt(i['engine_calls'], 0)} engine calls,"
            f" {fmt(i['cpu_s'] * 1000, 1)} ms CPU per interval; inspect each {fmt(e['engine_calls'], 0)} calls,"
            f" {fmt(e['cpu_s'] * 1000, 1)} ms CPU ({fmt(real['cpu_ratio'])}x)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--intervals", type=int, default=3)
    parser.add_argument("--real", type=int, default=0, help="also this many servers on the real engine (0: none)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    return run_benchmark(argv, args, run, report, h.cleanup_sync)


if __name__ == "__main__":
    main()
