"""Contract: restart policies and health checks, as a ``poll()`` or a
readiness hook sees them through inspect, list, filters and events."""

from __future__ import annotations

import asyncio
import time

import pytest

from .helpers import eventually

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("docker_only")]

MS = 1_000_000


async def _actions(engine, cid: str, since: float, wanted: dict[str, int], timeout: float = 10) -> list[str]:
    """Actions of ``cid``'s events since ``since``, read until each action in
    ``wanted`` was seen that often."""
    seen: list[str] = []
    stream = engine.events(filters={"container": [cid]}, since=since)

    async def read() -> None:
        async for ev in stream:
            seen.append(ev["Action"])
            if all(seen.count(a) >= n for a, n in wanted.items()):
                return

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        await stream.aclose()
    return seen


async def test_on_failure_restarts_up_to_the_retry_count(engine, make_container):
    since = time.time() - 1
    cid = await make_container(
        ["sh", "-c", "echo run; exit 3"],
        host_config={"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 2}},
    )
    await engine.start_container(cid)
    first = (await engine.inspect_container(cid))["State"]["StartedAt"]

    async def settled():
        info = await engine.inspect_container(cid)
        return info if info["State"]["Status"] == "exited" else None

    info = await eventually(settled, timeout=10)
    assert info["RestartCount"] == 2
    assert info["State"]["ExitCode"] == 3
    assert info["State"]["StartedAt"] > first
    assert await engine.container_logs(cid) == "run\nrun\nrun\n"
    actions = await _actions(engine, cid, since, {"start": 3, "die": 3})
    assert actions.count("start") == 3 and actions.count("die") == 3
    await asyncio.sleep(0.5)
    assert (await engine.inspect_container(cid))["RestartCount"] == 2


async def test_on_failure_does_not_restart_a_clean_exit(engine, make_container):
    cid = await make_container(["true"], start=True, host_config={"restart_policy": {"Name": "on-failure"}})
    assert await engine.wait_container(cid, timeout=10) == 0
    await asyncio.sleep(0.3)
    info = await engine.inspect_container(cid)
    assert (info["State"]["Status"], info["RestartCount"]) == ("exited", 0)


async def test_always_restarts_until_stopped(engine, make_container):
    cid = await make_container(["true"], start=True, host_config={"restart_policy": {"Name": "always"}})

    async def restarted_twice():
        info = await engine.inspect_container(cid)
        return info if info["RestartCount"] >= 2 else None

    info = await eventually(restarted_twice, timeout=10)
    assert info["State"]["Running"] is True
    assert info["State"]["Status"] in ("running", "restarting")
    (entry,) = await engine.list_containers(filters={"id": [cid]})
    assert entry["State"] in ("running", "restarting")
    await engine.stop_container(cid, timeout=1)
    stopped = await engine.inspect_container(cid)
    assert stopped["State"]["Status"] == "exited" and stopped["State"]["Running"] is False
    count = stopped["RestartCount"]
    await asyncio.sleep(0.5)
    assert (await engine.inspect_container(cid))["RestartCount"] == count


def _healthcheck(test, interval_ms=100, retries=2):
    return {"test": test, "interval": interval_ms * MS, "timeout": 2000 * MS, "retries": retries}


async def _health(engine, cid):
    return (await engine.inspect_container(cid))["State"].get("Health")


async def test_health_starting_then_healthy(engine, make_container, label_filters):
    since = time.time() - 1
    cid = await make_container(
        ["sh", "-c", "sleep 0.4; touch /tmp/ok; sleep 300"],
        healthcheck=_healthcheck(["CMD-SHELL", "test -f /tmp/ok"], retries=10),
    )
    assert (await engine.inspect_container(cid))["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /tmp/ok"]
    assert "Health" not in (await engine.inspect_container(cid))["State"]
    await engine.start_container(cid)
    assert (await _health(engine, cid))["Status"] == "starting"
    (entry,) = await engine.list_containers(filters={"id": [cid]})
    assert entry["Status"].endswith("(health: starting)")
    health = await eventually(lambda: _healthy(engine, cid), timeout=10)
    assert health["FailingStreak"] == 0
    assert health["Log"][-1]["ExitCode"] == 0
    assert set(health["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
    (entry,) = await engine.list_containers(filters={"id": [cid]})
    assert entry["Status"].endswith("(healthy)")
    found = await engine.list_containers(filters={"label": label_filters, "health": "healthy"})
    assert [c["Id"] for c in found] == [cid]
    assert await engine.list_containers(filters={"label": label_filters, "health": "unhealthy"}) == []
    actions = await _actions(engine, cid, since, {"health_status: healthy": 1, "exec_die": 2})
    assert "exec_create: /bin/sh -c test -f /tmp/ok" in actions
    assert actions.count("health_status: healthy") == 1


async def _healthy(engine, cid):
    health = await _health(engine, cid)
    return health if health and health["Status"] == "healthy" else None


async def test_health_unhealthy_keeps_its_log(engine, make_container, label_filters):
    cid = await make_container(
        ["sleep", "300"], start=True, healthcheck=_healthcheck(["CMD", "sh", "-c", "echo bad; exit 1"])
    )

    async def unhealthy():
        health = await _health(engine, cid)
        return health if health and health["Status"] == "unhealthy" else None

    health = await eventually(unhealthy, timeout=10)
    assert health["FailingStreak"] >= 2
    assert health["Log"][-1]["ExitCode"] == 1
    assert health["Log"][-1]["Output"] == "bad\n"
    (entry,) = await engine.list_containers(filters={"id": [cid]})
    assert entry["Status"].endswith("(unhealthy)")
    found = await engine.list_containers(filters={"label": label_filters, "health": "unhealthy"})
    assert [c["Id"] for c in found] == [cid]
    await eventually(lambda: _log_full(engine, cid), timeout=10)
    assert len((await _health(engine, cid))["Log"]) == 5


async def _log_full(engine, cid):
    return len((await _health(engine, cid))["Log"]) >= 5


async def test_health_none_filter_and_disabled_check(engine, make_container, label_filters):
    plain = await make_container(start=True)
    disabled = await make_container(start=True, healthcheck={"test": ["NONE"]})
    assert "Health" not in (await engine.inspect_container(disabled))["State"]
    found = {c["Id"] for c in await engine.list_containers(filters={"label": label_filters, "health": "none"})}
    assert found == {plain, disabled}


async def test_kill_ends_a_restart_policy(engine, make_container):
    looping = await make_container(["true"], start=True, host_config={"restart_policy": {"Name": "always"}})
    running = await make_container(start=True, host_config={"restart_policy": {"Name": "always"}, "init": True})

    async def restarting():
        info = await engine.inspect_container(looping)
        return info["RestartCount"] >= 3 and info["State"]["Status"] == "restarting"

    await eventually(restarting, timeout=10, interval=0.02)
    await engine.kill_container(looping)
    await engine.kill_container(running)
    await asyncio.sleep(0.5)
    looped, killed = [await engine.inspect_container(c) for c in (looping, running)]
    assert (looped["State"]["Status"], looped["State"]["ExitCode"], looped["RestartCount"]) == ("exited", 0, 3)
    assert (killed["State"]["Status"], killed["State"]["ExitCode"], killed["RestartCount"]) == ("exited", 137, 0)
    await engine.remove_container(looping)
