"""A real two-node swarm through the project's protocol (``DockerPyEngine``):
placement on the worker, a server reached over HTTP on the worker's address,
an unsatisfiable constraint, and the worker's dockerd dying under a task.

Timelines are printed (run with ``-s`` to see them); the assertions pin what
the engine reports, so a change in swarm's behaviour shows up here first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
import uuid

import pytest

from contract.helpers import eventually

from .conftest import SWARM_LABELS, TEST_IMAGE, SwarmRig, run_script

pytestmark = pytest.mark.real_engine

HTTPD = ["httpd", "-f", "-p", "8888", "-h", "/var/www"]


def spec(name: str, *, constraints: list[str], restart: dict | None = None) -> dict:
    """A one-replica server the way SwarmSpawner runs one here: dnsrr (no
    IPVS), a host-mode port with a random published port, init and a short
    grace so a stop is quick."""
    return {
        "Name": name,
        "Labels": dict(SWARM_LABELS),
        "TaskTemplate": {
            "ContainerSpec": {"Image": TEST_IMAGE, "Command": HTTPD, "Init": True, "StopGracePeriod": 10**9},
            "Placement": {"Constraints": constraints},
            "RestartPolicy": restart or {"Condition": "none"},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"}]},
    }


def name(suffix: str) -> str:
    return f"sw-{uuid.uuid4().hex[:6]}-{suffix}"


async def running_task(engine, sid: str) -> dict | None:
    for task in await engine.list_tasks(filters={"service": sid}):
        if task["Status"]["State"] == "running":
            return task
    return None


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status, r.read().decode()


async def get_until(url: str, timeout: float) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.to_thread(http_get, url)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)


def published_port(task: dict) -> int:
    ports = task["Status"]["PortStatus"]["Ports"]
    assert {p["TargetPort"] for p in ports} == {8888}
    return ports[0]["PublishedPort"]


async def test_constraint_places_on_worker_reachable_by_host_port(swarm_rig: SwarmRig, manager, manager_api):
    t0 = time.monotonic()
    sid = await manager.create_service(spec(name("placed"), constraints=[f"node.hostname=={swarm_rig.worker_hostname}"]))
    task = await eventually(lambda: running_task(manager, sid), 30)
    t_running = time.monotonic() - t0
    assert task["NodeID"] == swarm_rig.worker_node_id
    node = await asyncio.to_thread(manager_api.inspect_node, task["NodeID"])
    assert node["Status"]["Addr"] == swarm_rig.worker_addr
    assert node["Spec"]["Role"] == "worker"
    port = published_port(task)
    status, body = await get_until(f"http://{node['Status']['Addr']}:{port}/", 15)
    t_http = time.monotonic() - t0
    assert status == 200 and "busybox ok" in body
    # the service's endpoint knows the mode, not the random port
    ep = (await manager.inspect_service(sid))["Endpoint"]
    assert ep["Ports"] == [{"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"}]
    print(f"\nplaced on {swarm_rig.worker_hostname}: running {t_running:.2f}s, HTTP 200 {t_http:.2f}s after create")


async def test_no_node_satisfies_the_constraint(manager):
    sid = await manager.create_service(spec(name("nowhere"), constraints=["node.labels.sw-zone==nowhere"]))

    async def explained() -> dict | None:
        tasks = await manager.list_tasks(filters={"service": sid})
        return tasks[0] if tasks and tasks[0]["Status"].get("Err") else None

    t0 = time.monotonic()
    task = await eventually(explained, 10, 0.05)
    assert task["Status"]["State"] == "pending"
    assert task["DesiredState"] == "running"
    assert "NodeID" not in task
    assert task["Status"]["Err"] == "no suitable node (scheduling constraints not satisfied on 2 nodes)"
    print(f"\npending with the reason after {time.monotonic() - t0:.2f}s: {task['Status']['Err']}")


async def test_worker_dockerd_killed(swarm_rig: SwarmRig, manager, manager_api):
    """What the manager reports when the worker's dockerd dies under a task,
    and after `up` repairs the node; runs last: it breaks the worker."""
    sid = await manager.create_service(
        spec(
            name("killed"),
            constraints=[f"node.id=={swarm_rig.worker_node_id}"],
            restart={"Condition": "any", "Delay": 10**9, "MaxAttempts": 0},
        )
    )
    first = await eventually(lambda: running_task(manager, sid), 30)
    url = f"http://{swarm_rig.worker_addr}:{published_port(first)}/"
    assert (await get_until(url, 15))[0] == 200

    timeline: list[str] = []
    seen: dict[str, tuple] = {}
    t0 = time.monotonic()

    async def sample() -> tuple[str, list[dict]]:
        node = await asyncio.to_thread(manager_api.inspect_node, swarm_rig.worker_node_id)
        tasks = await manager.list_tasks(filters={"service": sid})
        key = ("node", node["Status"]["State"], node["Status"].get("Message", ""))
        if seen.get("node") != key:
            seen["node"] = key
            timeline.append(f"{time.monotonic() - t0:6.2f}s node {key[1]} {key[2]!r}")
        for t in tasks:
            k = (t["Status"]["State"], t["DesiredState"], t["Status"].get("Err", ""), t.get("NodeID", "")[:6])
            if seen.get(t["ID"]) != k:
                seen[t["ID"]] = k
                timeline.append(f"{time.monotonic() - t0:6.2f}s task {t['ID'][:6]} state={k[0]} desired={k[1]} err={k[2]!r} node={k[3]}")
        return node["Status"]["State"], tasks

    os.kill(swarm_rig.worker_pid, signal.SIGKILL)
    timeline.append(f"  0.00s SIGKILL to the worker's dockerd (pid {swarm_rig.worker_pid})")
    try:

        async def replaced() -> bool:
            state, tasks = await sample()
            old = next(t for t in tasks if t["ID"] == first["ID"])
            return state == "down" and old["DesiredState"] == "shutdown" and len(tasks) > 1

        await eventually(replaced, 40, 0.1)
        t_down = time.monotonic() - t0
        state, tasks = await sample()
        old = next(t for t in tasks if t["ID"] == first["ID"])
        new = next(t for t in tasks if t["ID"] != first["ID"])
        # the manager cannot know: the old task still says running (stale)
        assert old["Status"]["State"] == "running"
        assert new["Status"]["State"] == "pending" and new["DesiredState"] in ("running", "ready")
        await eventually(lambda: _has_err(manager, new["ID"]), 10)
        _, tasks = await sample()
        new = next(t for t in tasks if t["ID"] == new["ID"])
        assert new["Status"]["Err"] == (
            "no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 1 node)"
        )
        try:
            still = (await asyncio.to_thread(http_get, url))[0]
        except OSError as e:
            still = repr(e)
        timeline.append(f"{time.monotonic() - t0:6.2f}s the old server over HTTP: {still}")
    finally:
        t_repair = time.monotonic()
        run_script("up")
        timeline.append(f"{time.monotonic() - t0:6.2f}s `up` repaired the worker in {time.monotonic() - t_repair:.2f}s")
    try:
        task = await eventually(lambda: _sampled_running(sample, first["ID"]), 40, 0.1)
        assert task["NodeID"] == swarm_rig.worker_node_id
        _, tasks = await sample()
        old = next(t for t in tasks if t["ID"] == first["ID"])
        assert old["DesiredState"] == "shutdown" and old["Status"]["State"] != "running"
    finally:
        print(f"\nworker dockerd killed: node down and task replaced after {t_down:.2f}s\n" + "\n".join(timeline))


async def _has_err(engine, task_id: str) -> bool:
    tasks = await engine.list_tasks(filters={"id": task_id})
    return bool(tasks and tasks[0]["Status"].get("Err"))


async def _sampled_running(sample, old_id: str) -> dict | None:
    _, tasks = await sample()
    for t in tasks:
        if t["ID"] != old_id and t["Status"]["State"] == "running":
            return t
    return None
