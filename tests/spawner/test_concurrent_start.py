"""Two starts of one server at once never make two containers (found by the
real-engine chaos tests, tests/chaos): a second ``start()`` of the same
spawner joins the first; another spawner object for the same server is
refused while the first start runs. On fakedocker, with slow engine calls so
the starts overlap.
"""

from __future__ import annotations

import asyncio

import pytest

from dockerspawner import SpawnError, naming

IMAGE = "quay.io/jupyterhub/singleuser:test"


async def owned(fake, user: str) -> list[dict]:
    return await fake.list_containers(all=True, filters={"label": [f"{naming.LABEL_USER}={user}"]})


@pytest.mark.parametrize("op", ["inspect_image", "create_container"])
async def test_a_second_start_of_one_spawner_joins_the_first(fake, make_spawner, op):
    fake.faults.delay(op, 0.2, times=2)
    sp = make_spawner("alice", image=IMAGE, remove=True)
    first, second = await asyncio.wait_for(asyncio.gather(sp.start(), sp.start()), 20)
    assert first == second
    (container,) = await owned(fake, "alice")
    assert container["Id"] == sp.object_id and container["State"] == "running"
    await sp.stop()
    assert await owned(fake, "alice") == []


async def test_another_spawner_for_the_same_server_is_refused_while_it_starts(fake, make_spawner):
    fake.faults.delay("create_container", 0.2, times=1)
    sp, twin = make_spawner("alice", image=IMAGE), make_spawner("alice", image=IMAGE)
    first, refused = await asyncio.wait_for(asyncio.gather(sp.start(), twin.start(), return_exceptions=True), 20)
    assert isinstance(refused, SpawnError) and "already starting" in refused.jupyterhub_message
    assert not isinstance(first, BaseException), first
    assert len(await owned(fake, "alice")) == 1
    # once the first start is over, the same server can be started again (nothing stays locked)
    await sp.stop()
    await asyncio.wait_for(twin.start(), 20)
    assert len(await owned(fake, "alice")) == 1


async def test_a_cancelled_start_cancels_the_joined_one_and_unlocks(fake, make_spawner):
    fake.faults.delay("create_container", 1.0, times=1)
    sp = make_spawner("alice", image=IMAGE)
    first = asyncio.ensure_future(sp.start())
    joined = asyncio.ensure_future(sp.start())
    await asyncio.sleep(0.3)
    first.cancel()
    for task in (first, joined):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    await asyncio.wait_for(sp.start(), 20)
    assert len(await owned(fake, "alice")) == 1


async def test_a_name_conflict_without_a_visible_holder_is_retried_under_the_same_name(fake, make_spawner):
    # what the real engine answers while another create of the name is still under way
    from dockerspawner.engine import Conflict

    fake.faults.fail("create_container", Conflict("name in use"), times=1)
    sp = make_spawner("alice", image=IMAGE)
    await asyncio.wait_for(sp.start(), 20)
    (container,) = await owned(fake, "alice")
    assert container["Names"] == [f"/{sp._established_name()}"], "took a derived name for no other owner"
