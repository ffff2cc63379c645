"""SwarmSpawner on the single-node swarm of each engine under test (fakedocker
and the shared Docker engine): what the fake's swarm says, the real one says too.

Busybox httpd stands in for the single-user server (any HTTP answer is "up");
it is reached on the task's host-mode published port at the node's address.
"""

from __future__ import annotations

import time

import pytest

from dockerspawner import SpawnError, SwarmSpawner, naming
from dockerspawner.engine import NotFound

from contract.helpers import HTTPD_BODY, http_get

pytestmark = pytest.mark.engine


@pytest.fixture
async def swarm_factory(spawner_factory, engine, test_labels):
    # unreached: tests/conftest.py deselects Podman here (NOT_ON_PODMAN); a backstop the CI guard fails
    if getattr(engine, "engine_kind", "") == "podman":
        pytest.skip("Podman has no swarm services")
    state = ((await engine.info()).get("Swarm") or {}).get("LocalNodeState")
    assert state == "active", f"the engine's swarm must be active for SwarmSpawner tests (LocalNodeState={state!r})"

    def make(name: str = "alice", cls: type = SwarmSpawner, **traits):
        traits.setdefault("prefix", f"ssp-{test_labels['org.jupyterhub.test.run']}")
        return spawner_factory(cls, name, **traits)

    return make


async def test_start_http_poll_restart_of_the_hub_and_stop(swarm_factory, engine):
    sp = swarm_factory(mem_limit="256M")
    t0 = time.monotonic()
    ip, port = await sp.start()
    took = time.monotonic() - t0
    status, body = await http_get(f"http://{ip}:{port}/")
    assert status == 200 and HTTPD_BODY in body
    node = await engine.inspect_node((await engine.list_tasks(filters={"service": sp.service_id}))[0]["NodeID"])
    assert ip == node["Status"]["Addr"]
    info = await engine.inspect_service(sp.service_id)
    assert naming.labels_owner(info["Spec"]["Labels"]) == ("alice", "")
    assert info["Spec"]["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 256 << 20
    assert await sp.poll() is None
    again = swarm_factory()  # the hub restarted: a new spawner from the saved state
    again.load_state(sp.get_state())
    assert await again.poll() is None
    await again.stop()
    with pytest.raises(NotFound):
        await engine.inspect_service(sp.service_id)
    assert await again.poll() == 0
    print(f"\n{engine.engine_kind}: service running and answering in {took:.2f}s")


async def test_pending_for_resources_shows_swarms_reason(swarm_factory):
    sp = swarm_factory(mem_guarantee="4000G", start_timeout=4)
    with pytest.raises(SpawnError) as info:
        await sp.start()
    assert info.value.jupyterhub_message == (
        "Your server could not start in time: no suitable node (insufficient resources on 1 node)"
    )
    assert not sp.service_id


async def test_unsatisfiable_constraint_fails_fast(swarm_factory):
    sp = swarm_factory(start_timeout=60, extra_placement_spec={"constraints": ["node.labels.ssp-zone==nowhere"]})
    t0 = time.monotonic()
    with pytest.raises(SpawnError) as info:
        await sp.start()
    assert time.monotonic() - t0 < 5
    assert info.value.jupyterhub_message == (
        "No node of the swarm can run your server: no suitable node (scheduling constraints not satisfied on 1 node)"
    )


async def test_a_server_that_exits_fails_the_start_with_swarms_message(swarm_factory):
    sp = swarm_factory(cmd=["false"], start_timeout=60)
    t0 = time.monotonic()
    with pytest.raises(SpawnError) as info:
        await sp.start()
    assert time.monotonic() - t0 < 15
    assert info.value.jupyterhub_message.startswith("Your server exited while starting: task: non-zero exit (1)")


class TeamSwarmSpawner(SwarmSpawner):
    """A 14-style subclass: adds a service label in create_object, then defers."""

    async def create_object(self):
        labels = dict(self.extra_create_kwargs.get("labels") or {})
        labels["org.example.team"] = f"team-of-{self.user.name}"
        self.extra_create_kwargs = {**self.extra_create_kwargs, "labels": labels}
        return await super().create_object()


async def test_a_subclass_overriding_create_object(swarm_factory, engine):
    sp = swarm_factory(cls=TeamSwarmSpawner)
    ip, port = await sp.start()
    labels = (await engine.inspect_service(sp.service_id))["Spec"]["Labels"]
    assert labels["org.example.team"] == "team-of-alice"
    assert naming.labels_owner(labels) == ("alice", "")
    assert (await http_get(f"http://{ip}:{port}/"))[0] == 200
    await sp.stop()
