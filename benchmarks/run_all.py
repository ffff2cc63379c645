#!/usr/bin/env python
"""Run the hub benchmarks (hub_throughput, poll_cost, hub_cost), print their
tables and write ``results.json``, ``results.md`` and ``hub_poll.png`` (wall
time against N for the four variants, poll cost against U) to ``--out``.

    .venv/bin/python benchmarks/run_all.py            # the full sizes (about 20 minutes)
    .venv/bin/python benchmarks/run_all.py --quick    # tiny sizes, a few minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks import hub_cost, hub_throughput, poll_cost

FULL = {
    "hub_throughput": ["--users", "1", "10", "50", "100", "200", "--hol", "--profile-users", "50"],
    "poll_cost": ["--users", "100", "1000", "10000", "--real", "100"],
    "hub_cost": ["--spawns", "1000", "--real-users", "50"],
}
QUICK = {
    "hub_throughput": ["--users", "1", "3", "--hol", "--layer-mb", "5", "--rate-mb-s", "2", "--profile-users", "3"],
    "poll_cost": ["--users", "10", "100", "--intervals", "2"],
    "hub_cost": ["--spawns", "50", "--real-users", "3"],
}
MODULES = {"hub_throughput": hub_throughput, "poll_cost": poll_cost, "hub_cost": hub_cost}


def plot(results: dict[str, Any], path: Path) -> bool:
    """Wall time against N per variant, and poll cost against U; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        h.log.warning("matplotlib is not installed: no plot")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ht = results.get("hub_throughput")
    if ht:
        for v in hub_throughput.VARIANTS:
            pts = [(r["users"], r["summary"][v]["wall_s"]) for r in ht["rows"] if r["summary"].get(v, {}).get("wall_s")]
            if pts:
                ax1.plot(*zip(*pts), marker="o", label={"raw": "engine floor (raw)", "thin": "hub floor (thin)",
                                                       "ds14": "dockerspawner 14.0.0", "ours": "ours"}[v])
        ax1.set(xlabel="users spawned at once (N)", ylabel="wall until all reachable (s)",
                title="Spawn wall time with the hub", xscale="log", yscale="log")
        ax1.legend()
        ax1.grid(True, which="both", alpha=0.3)
    pc = results.get("poll_cost")
    if pc:
        us = [r["users"] for r in pc["rows"]]
        ax2.plot(us, [r["index"]["cpu_s"] * 1000 for r in pc["rows"]], marker="o", label="shared index: hub CPU ms")
        ax2.plot(us, [r["inspect_each"]["cpu_s"] * 1000 for r in pc["rows"]], marker="o", label="inspect each: hub CPU ms")
        ax2.plot(us, [max(r["index"]["engine_calls"] or 0, 0.5) for r in pc["rows"]], marker="s", ls="--",
                 label="shared index: engine calls")
        ax2.plot(us, [r["inspect_each"]["engine_calls"] for r in pc["rows"]], marker="s", ls="--",
                 label="inspect each: engine calls")
        ax2.set(xlabel="running servers (U)", ylabel="per poll interval", title="Poll cost (fakedocker)",
                xscale="log", yscale="log")
        ax2.legend(fontsize=8)
        ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--only", default=",".join(MODULES), help="comma list of benchmarks to run")
    p.add_argument("--users", type=int, nargs="+", help="hub_throughput's N values instead of the preset")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    if argv is None:
        h.quiet_logs(False)
    args.out.mkdir(parents=True, exist_ok=True)
    # benchmarks not run this time keep their last results (``--only`` reruns some)
    previous = args.out / "results.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    results.update({"quick": args.quick, "started": h.now_iso()})
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        extra = list(preset[name])
        if name == "hub_throughput" and args.users:
            i = extra.index("--users")
            j = next((k for k in range(i + 1, len(extra)) if extra[k].startswith("--")), len(extra))
            extra[i + 1:j] = [str(n) for n in args.users]
        t0 = time.perf_counter()
        module = MODULES[name]
        result = module.main([*extra, "--quiet"])
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
        results[name] = result
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    tables = [MODULES[n].report(results[n]) for n in MODULES if n in results]
    text = "\n\n".join(tables)
    (args.out / "results.md").write_text(text + "\n")
    results["plot"] = str(args.out / "hub_poll.png") if plot(results, args.out / "hub_poll.png") else None
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    if not args.quiet:
        print(text)
        print(f"\nwritten: {args.out}/results.json, results.md" + (", hub_poll.png" if results["plot"] else ""))
    return results


if __name__ == "__main__":
    main()
