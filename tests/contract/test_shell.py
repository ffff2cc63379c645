"""Contract: the shell scripts single-user wrappers are made of (loops,
traps, background jobs and ``wait``), and how they stop."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.engine


async def _run(engine, make_container, script: str) -> tuple[int, str]:
    cid = await make_container(["sh", "-c", script], start=True)
    return await engine.wait_container(cid, timeout=10), await engine.container_logs(cid)


CONSTRUCTS = {
    "while": ("i=0; while [ $i -lt 3 ]; do echo n$i; i=$((i+1)); done; echo done", "n0\nn1\nn2\ndone\n"),
    "while-not": ("while ! test -f /tmp/x; do sleep 0.05; touch /tmp/x; done; echo found", "found\n"),
    "until-arith": ("n=0; until [ $n -ge 2 ]; do n=$(( n + 1 )); done; echo $n", "2\n"),
    "for-if": ("for w in a b; do echo $w; done; if [ -d /etc ]; then echo dir; else echo none; fi", "a\nb\ndir\n"),
    "function": ("greet() { echo hi $1; }; greet you; echo $#", "hi you\n0\n"),
    "background-wait": ("sleep 0.1 & echo started; wait; echo waited", "started\nwaited\n"),
    "exit-trap": ("trap 'echo bye' EXIT; echo main", "main\nbye\n"),
}


async def test_shell_constructs(engine, make_container):
    # one container per script, all at once: the engine's start/stop cost, not the scripts', dominates
    results = await asyncio.gather(*(_run(engine, make_container, s) for s, _ in CONSTRUCTS.values()))
    assert dict(zip(CONSTRUCTS, results)) == {name: (0, logs) for name, (_, logs) in CONSTRUCTS.items()}


WRAPPERS = {
    "trap-wait": ("trap 'echo bye; exit 0' TERM; echo up; sleep 300 & wait", 0, "up\nbye\n"),
    "trap-loop": ("trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done", 3, "bye\n"),
    "trap-function": ("cleanup() { echo clean; exit 0; }; trap cleanup TERM; sleep 300 & wait $!", 0, "clean\n"),
    "trap-int-term": ("trap 'exit 5' INT TERM; sleep 300 & wait", 5, ""),
}


async def _stop_wrapper(engine, make_container, script: str, init: bool) -> tuple[str, int, str, bool]:
    cid = await make_container(["sh", "-c", script], start=True, host_config={"init": init})
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    await engine.stop_container(cid, timeout=5)
    quick = time.monotonic() - t0 < 2
    state = (await engine.inspect_container(cid))["State"]
    return state["Status"], state["ExitCode"], await engine.container_logs(cid), quick


@pytest.mark.parametrize("init", [False, True], ids=["pid1", "init"])
async def test_trap_wrappers_stop_at_once(engine, make_container, init):
    results = await asyncio.gather(
        *(_stop_wrapper(engine, make_container, script, init) for script, _, _ in WRAPPERS.values())
    )
    assert dict(zip(WRAPPERS, results)) == {
        name: ("exited", code, logs, True) for name, (_, code, logs) in WRAPPERS.items()
    }


@pytest.mark.parametrize("init, code", [(False, 137), (True, 143)], ids=["pid1", "init"])
async def test_untrapped_wrapper_ignores_term_as_pid1(engine, make_container, init, code):
    cid = await make_container(["sh", "-c", "sleep 300 & wait"], start=True, host_config={"init": init})
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    await engine.stop_container(cid, timeout=1)
    took = time.monotonic() - t0
    assert (await engine.inspect_container(cid))["State"]["ExitCode"] == code
    assert (took >= 0.9) == (not init)
