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


async def test_starts_of_many_servers_at_once_share_one_image_check(fake, make_spawner):
    """A burst of starts asks about the same image once while the check is in
    flight; a start after it finished asks again (the answer is never older
    than a call that was running when the start asked)."""
    fake.faults.delay("inspect_image", 0.2, times=1)
    spawners = [make_spawner(f"user{i}", image=IMAGE, remove=True) for i in range(5)]
    await asyncio.wait_for(asyncio.gather(*(sp.start() for sp in spawners)), 20)
    assert fake.calls.count("inspect_image") == 1
    late = make_spawner("late", image=IMAGE, remove=True)
    await asyncio.wait_for(late.start(), 20)
    assert fake.calls.count("inspect_image") == 2
    await asyncio.gather(*(sp.stop() for sp in [*spawners, late]))


async def test_a_start_cancelled_while_sharing_the_image_check_leaves_the_others_theirs(fake, make_spawner):
    fake.faults.delay("inspect_image", 0.5, times=1)
    first, second = make_spawner("alice", image=IMAGE), make_spawner("bob", image=IMAGE)
    cancelled = asyncio.ensure_future(first.start())
    await asyncio.sleep(0.1)
    other = asyncio.ensure_future(second.start())
    await asyncio.sleep(0.1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(other, 20)
    assert fake.calls.count("inspect_image") == 1
    assert [c["State"] for c in await owned(fake, "bob")] == ["running"]
    assert await owned(fake, "alice") == []
    await second.stop()


async def test_a_missing_image_is_everyones_answer_and_each_pulls(fake, make_spawner):
    fake.registry.add("quay.io/jupyterhub/fresh:1", config={"Cmd": ["jupyterhub-singleuser"]}, layers=[1_000])
    fake.faults.delay("inspect_image", 0.2, times=1)
    spawners = [make_spawner(f"user{i}", image="quay.io/jupyterhub/fresh:1", remove=True) for i in range(3)]
    await asyncio.wait_for(asyncio.gather(*(sp.start() for sp in spawners)), 20)
    # one shared "not found", then each pull is followed by its own inspect
    assert fake.calls.count("pull_image") == 3
    assert fake.calls.count("inspect_image") == 1 + 3
    await asyncio.gather(*(sp.stop() for sp in spawners))
