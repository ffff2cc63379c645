"""SwarmSpawner on a real two-node swarm (``.ci/multi-node-swarm``): a server
placed on the worker is reached over HTTP at the worker's address, a
constraint no node satisfies fails fast with swarm's message, and the worker's
dockerd dying under a running server is reported by ``poll()`` and cleaned up
by ``stop()``.

The hub side (this process) reaches tasks only through host-mode published
ports on the node addresses (10.215.0.x), never by overlay task address.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from compat.factory import spawners
from contract.helpers import HTTPD_BODY, eventually, http_get
from dockerspawner import SpawnError, SwarmSpawner
from dockerspawner.engine import NotFound

from .conftest import SWARM_LABELS, TEST_IMAGE, SwarmRig, run_script

pytestmark = pytest.mark.real_engine


@pytest.fixture
async def swarm_spawner(manager) -> AsyncIterator[Callable[..., Any]]:
    async with spawners(manager, TEST_IMAGE, f"ssp-{uuid.uuid4().hex[:6]}", SWARM_LABELS) as make:
        yield lambda name="alice", **traits: make(SwarmSpawner, name, **traits)


async def progress_of(spawner) -> list[str]:
    return [event["message"] async for event in spawner.progress()]


async def test_placed_on_the_worker_and_reached_over_http(swarm_rig: SwarmRig, manager, swarm_spawner):
    sp = swarm_spawner(extra_placement_spec={"constraints": [f"node.hostname=={swarm_rig.worker_hostname}"]})
    progress = asyncio.ensure_future(progress_of(sp))
    t0 = time.monotonic()
    ip, port = await sp.start()
    took = time.monotonic() - t0
    assert ip == swarm_rig.worker_addr
    status, body = await http_get(f"http://{ip}:{port}/", timeout=10)
    assert status == 200 and HTTPD_BODY in body
    assert f"Task scheduled on node {swarm_rig.worker_hostname}" in await asyncio.wait_for(progress, 5)
    (task,) = await manager.list_tasks(filters={"service": sp.service_id})
    assert task["NodeID"] == swarm_rig.worker_node_id
    assert await sp.poll() is None
    await sp.stop()
    with pytest.raises(NotFound):
        await manager.inspect_service(task["ServiceID"])
    print(f"\nSwarmSpawner on the worker: start() returned after {took:.2f}s (running and answering HTTP)")


async def test_a_constraint_no_node_satisfies_fails_fast(swarm_spawner):
    sp = swarm_spawner(start_timeout=60, extra_placement_spec={"constraints": ["node.labels.ssp-zone==nowhere"]})
    t0 = time.monotonic()
    with pytest.raises(SpawnError) as info:
        await sp.start()
    took = time.monotonic() - t0
    assert took < 5
    assert info.value.jupyterhub_message == (
        "No node of the swarm can run your server: no suitable node (scheduling constraints not satisfied on 2 nodes)"
    )
    assert not sp.service_id
    print(f"\nunsatisfiable constraint: start failed after {took:.2f}s")


async def test_the_worker_going_down_is_reported_by_poll_and_stop_cleans_up(swarm_rig: SwarmRig, manager, swarm_spawner):
    """Breaks the worker's dockerd and repairs it with `up` afterwards."""
    sp = swarm_spawner(extra_placement_spec={"constraints": [f"node.id=={swarm_rig.worker_node_id}"]})
    await sp.start()
    assert await sp.poll() is None
    # the worker's dockerd may have been restarted by an earlier test: ask for its pid now
    fresh = SwarmRig.from_exports(run_script("env", timeout=60), 0.0, owned=False)
    os.kill(fresh.worker_pid, signal.SIGKILL)
    t0, t_poll = time.monotonic(), -1.0
    try:
        status = await eventually(sp.poll, timeout=40, interval=0.25)
        t_poll = time.monotonic() - t0
        assert f"node {swarm_rig.worker_hostname} is down (heartbeat failure)" in status, status
        assert "running (desired shutdown)" in status, status
        await sp.stop()
        assert await manager.list_services(filters={"name": sp.service_name}) == []
        assert await sp.poll() == 0
    finally:
        t_repair = time.monotonic()
        run_script("up")
        print(
            f"\nworker dockerd killed: poll() reported it after {t_poll:.2f}s;"
            f" `up` repaired the worker in {time.monotonic() - t_repair:.2f}s"
        )
