"""The benchmarks still run: each one's main() with tiny sizes on the real engine.

Only the shape of the report is checked, never a timing (performance claims
come from the benchmarks themselves, run side by side; see benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import pull_isolation, spawn_throughput  # noqa: E402
from benchmarks._harness import RUN_LABEL  # noqa: E402
from dockerspawner.engine import NotFound  # noqa: E402

pytestmark = [pytest.mark.real_engine, pytest.mark.docker_engine_only]


async def _leftovers(real_engine, run_id: str) -> list:
    return await real_engine.list_containers(all=True, filters={"label": [f"{RUN_LABEL}={run_id}"]})


async def test_spawn_throughput_runs(real_engine):
    # main() runs its own event loop, so it gets a thread of its own
    result = await asyncio.to_thread(
        spawn_throughput.main, ["--users", "2", "--repeats", "1", "--no-warmup", "--quiet"]
    )
    assert result["users"] == 2
    assert set(result["variants"]) == set(spawn_throughput.VARIANTS)
    for name, v in result["variants"].items():
        assert (v["start_failures"], v["stop_failures"]) == (0, 0), name
        assert len(v["start_s"]) == len(v["stop_s"]) == 1
        assert v["spawns_per_s"] > 0 and v["stops_per_s"] > 0
    assert {"ours_over_raw", "ours_over_serialized", "ours_over_raw_http"} <= set(result["ratios"])
    assert all(r is not None for r in result["ratios"].values())
    assert result["serialized_lane_calls"] > 0  # the serialized variant really went through the lane
    assert result["leftover_containers"] == 0
    assert await _leftovers(real_engine, result["run_id"]) == []
    assert "ours/raw" in spawn_throughput.report(result)


async def test_pull_isolation_runs(real_engine):
    result = await asyncio.to_thread(
        pull_isolation.main, ["--layer-mb", "3", "--repeats", "1", "--no-warmup", "--b-at", "start", "--quiet"]
    )
    assert result["image"]["ref"].startswith("127.0.0.1:5000/bench-")
    assert set(result["modes"]) == set(pull_isolation.MODES)
    for mode, d in result["modes"].items():
        assert len(d["b_alone_s"]) == 1, mode
        during = d["during"]["start"]
        assert len(during["b_s"]) == 1 and during["a_pull_s"][0] >= 0, mode
    for key in ("raw_start_over_alone", "ours_start_over_alone", "serialized_start_over_alone",
                "ours_over_raw_start", "serialized_over_ours_start"):
        assert result["ratios"][key] is not None, key
    assert result["leftover_containers"] == 0
    assert await _leftovers(real_engine, result["run_id"]) == []
    with pytest.raises(NotFound):
        await real_engine.inspect_image(result["image"]["ref"])  # removed locally again
    assert "serialized/ours" in pull_isolation.report(result)



def test_poll_cost_runs_and_the_index_makes_no_calls_per_interval():
    # fakedocker only: no engine needed; the shape, and the one structural claim
    from benchmarks import poll_cost

    result = poll_cost.main(["--users", "5", "--intervals", "2", "--quiet"])
    (row,) = result["rows"]
    assert row["users"] == 5
    assert row["index"]["engine_calls"] == 0
    assert row["inspect_each"]["engine_calls"] == 5
    assert set(row["floor"]) == {"cpu_s"}


async def test_poll_cost_on_the_real_engine_counts_its_calls(real_engine):
    from benchmarks import poll_cost

    result = await asyncio.to_thread(poll_cost.main, ["--users", "2", "--intervals", "2", "--real", "3", "--quiet"])
    real = result["real"]
    assert real["users"] == 3
    assert real["index"]["engine_calls"] == 0
    assert real["inspect_each"]["engine_calls"] == 3
    assert real["inspect_each"]["cpu_s"] > 0
    assert await _leftovers(real_engine, result["run_id"]) == []


async def test_hub_throughput_runs(real_engine):
    from benchmarks import hub_throughput

    # ds14 needs its own virtualenv (hub_throughput --ds14-venv): the same code drives it
    # head-of-line with 2 users: the same rounds and disturbers as with 10, a quarter of the spawns
    argv = ["--users", "1", "--variants", "raw,thin,ours", "--hol", "--hol-users", "2", "--layer-mb", "3", "--rate-mb-s", "4",
            "--profile-users", "1", "--quiet"]
    result = await asyncio.to_thread(hub_throughput.main, argv)
    (row,) = result["rows"]
    assert row["users"] == 1 and set(row["runs"]) == {"raw", "thin", "ours"}
    for variant, runs in row["runs"].items():
        (run,) = runs
        assert "error" not in run, (variant, run.get("error"))
        u = run["undisturbed"]
        assert (u["spawn_failures"], u["stop_failures"]) == (0, 0), variant
        assert u["wall_s"] > 0 and u["p95_s"] >= u["p50_s"] > 0 and u["cpu_spawn_s"]["hub"] > 0
    assert row["runs"]["ours"][0]["dockerspawner_file"].startswith(str(ROOT / "dockerspawner"))
    assert row["runs"]["thin"][0]["undisturbed"]["loop_lag"]["samples"] > 0
    assert row["summary"]["ours_over_thin"]["wall_s"] is not None
    assert result["head_of_line"]["users"] == 2
    hol = result["head_of_line"]["ours"]
    for key in ("slow_stop", "pull"):
        assert hol["run"][key]["disturber_error"] is None, key
        assert hol["run"][key]["spawn_failures"] == 0, key
    assert hol["slow_stop_over_undisturbed"] is not None and hol["pull_over_undisturbed"] is not None
    assert result["head_of_line"]["proxied_bytes"] > 3_000_000  # the pull really went through the throttle
    for variant in ("thin", "ours"):
        assert result["profile"][variant]["busy_s"] > 0, variant
    assert result["leftover_containers"] == 0
    assert await _leftovers(real_engine, result["run_id"]) == []
    assert "ours/thin" in hub_throughput.report(result)


async def test_hub_cost_runs(real_engine):
    from benchmarks import hub_cost

    result = await asyncio.to_thread(hub_cost.main, ["--spawns", "5", "--real-users", "2", "--quiet"])
    for key in ("floor", "ours", "floor_mem", "ours_mem"):
        assert result[key]["spawns"] == 5 and result[key]["failures"] == 0, key
        assert result[key]["cpu_per_spawn_ms"] > 0, key
    assert result["ours_mem"]["held_kb_per_server"] > 0 and result["ours_mem"]["peak_kb_per_spawn"] > 0
    assert result["real"]["failures"] == 0 and result["real"]["loop_lag"]["max_ms"] is not None
    frozen = result["real_gc_frozen"]
    assert frozen["gc_frozen"] and frozen["failures"] == 0 and frozen["loop_lag"]["gc_full_max_ms"] is not None
    floor = result["real_lag_floor"]
    assert floor["exit_code"] == 0 and floor["loop_lag"]["samples"] > 0
    assert result["idle_loop_lag"]["samples"] > 0
    assert await _leftovers(real_engine, result["run_id"]) == []
    assert "spawner's own" in hub_cost.report(result)


async def test_run_all_writes_tables_and_plot(real_engine, tmp_path, monkeypatch):
    from benchmarks import run_all

    # hub_cost itself is covered by test_hub_cost_runs at these sizes: here only its table and plot
    monkeypatch.setitem(run_all.QUICK, "hub_cost", ["--spawns", "5", "--real-users", "1"])
    result = await asyncio.to_thread(run_all.main, ["--quick", "--only", "poll_cost,hub_cost", "--out", str(tmp_path), "--quiet"])
    assert {"poll_cost", "hub_cost"} <= set(result) and result["hub_cost"]["spawns"] == 5
    assert "poll cost per interval" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "hub_poll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(json.loads((tmp_path / "results.json").read_text())) >= {"poll_cost", "hub_cost", "plot"}
