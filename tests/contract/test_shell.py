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


@pytest.mark.parametrize(
    "script, logs",
    [
        ("i=0; while [ $i -lt 3 ]; do echo n$i; i=$((i+1)); done; echo done", "n0\nn1\nn2\ndone\n"),
        ("while ! test -f /tmp/x; do sleep 0.05; touch /tmp/x; done; echo found", "found\n"),
        ("n=0; until [ $n -ge 2 ]; do n=$(( n + 1 )); done; echo $n", "2\n"),
        ("for w in a b; do echo $w; done; if [ -d /etc ]; then echo dir; else echo none; fi", "a\nb\ndir\n"),
        ("greet() { echo hi $1; return_code=3; }; greet you; echo $#", "hi you\n0\n"),
        ("sleep 0.1 & echo started; wait; echo waited", "started\nwaited\n"),
        ("trap 'echo bye' EXIT; echo main", "main\nbye\n"),
    ],
    ids=["while", "while-not", "until-arith", "for-if", "function", "background-wait", "exit-trap"],
)
async def test_shell_constructs(engine, make_container, script, logs):
    assert await _run(engine, make_container, script) == (0, logs)


WRAPPERS = {
    "trap-wait": ("trap 'echo bye; exit 0' TERM; echo up; sleep 300 & wait", 0, "up\nbye\n"),
    "trap-loop": ("trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done", 3, "bye\n"),
    "trap-function": ("cleanup() { echo clean; exit 0; }; trap cleanup TERM; sleep 300 & wait $!", 0, "clean\n"),
    "trap-int-term": ("trap 'exit 5' INT TERM; sleep 300 & wait", 5, ""),
}


@pytest.mark.parametrize("init", [False, True], ids=["pid1", "init"])
@pytest.mark.parametrize("name", list(WRAPPERS))
async def test_trap_wrapper_stops_at_once(engine, make_container, name, init):
    script, code, logs = WRAPPERS[name]
    cid = await make_container(["sh", "-c", script], start=True, host_config={"init": init})
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    await engine.stop_container(cid, timeout=5)
    assert time.monotonic() - t0 < 2
    state = (await engine.inspect_container(cid))["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", code)
    assert await engine.container_logs(cid) == logs


@pytest.mark.parametrize("init, code", [(False, 137), (True, 143)], ids=["pid1", "init"])
async def test_untrapped_wrapper_ignores_term_as_pid1(engine, make_container, init, code):
    cid = await make_container(["sh", "-c", "sleep 300 & wait"], start=True, host_config={"init": init})
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    await engine.stop_container(cid, timeout=1)
    took = time.monotonic() - t0
    assert (await engine.inspect_container(cid))["State"]["ExitCode"] == code
    assert (took >= 0.9) == (not init)
