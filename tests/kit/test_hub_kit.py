"""make_hub: the installed JupyterHub's app and proxy on fakedocker, its REST
client, and a teardown that leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest
from dockerspawner.engine import EngineError

from fakedocker.kit import SpawnFailed
from fakedocker.kit.hub import HubFactory, KitHub
from jupyterhub.app import JupyterHub

IMAGE = "quay.io/jupyterhub/singleuser:test"


@pytest.fixture
def fake(fake_docker):
    fake_docker.add_image(IMAGE, config={"Cmd": ["start-notebook.py"]})
    return fake_docker


async def test_spawn_progress_and_stop_through_the_api(make_hub, fake):
    hub = await make_hub(image=IMAGE)
    assert isinstance(hub.app, JupyterHub) and type(hub.app).__mro__[1] is JupyterHub
    await hub.add_user("alice", groups=["team"])
    events = await hub.spawn("alice")
    assert events[0]["message"] == "Server requested" and events[-1]["ready"]
    assert events[-1]["progress"] == 100
    assert [c["State"] for c in await fake.list_containers(all=True)] == ["running"]
    await hub.stop("alice")
    assert await hub.server("alice") is None
    assert [c["State"] for c in await fake.list_containers(all=True)] == ["exited"]


async def test_named_server_and_user_visible_failure(make_hub, fake):
    hub = await make_hub(image=IMAGE, allowed_images=[IMAGE])
    await hub.add_user("bob")
    await hub.spawn("bob", "lab1")
    assert (await hub.server("bob", "lab1"))["ready"]
    with pytest.raises(SpawnFailed) as refused:
        await hub.spawn("bob", "lab2", options={"image": "evil/miner:1"})
    assert "not allowed" in refused.value.message
    fake.faults.fail("create_container", EngineError("disk full", 500), times=None)
    with pytest.raises(SpawnFailed) as failed:
        await hub.spawn("bob")
    assert "could not start while Creating container jupyter-bob: disk full" in failed.value.message
    assert failed.value.message.startswith("Spawn failed: ") and failed.value.events[-1]["failed"]


async def test_progress_stream_follows_a_slow_pull(make_hub, fake):
    fake.registry.add("example.org/big:1", config={"Cmd": ["start-notebook.py"]}, layers=[4_000_000])
    fake.registry.speed = 4_000_000
    hub = await make_hub(image="example.org/big:1")
    await hub.add_user("pia")
    events = await hub.spawn("pia")
    messages = [e["message"] for e in events]
    assert "Pulling image example.org/big:1" in messages
    percents = [int(m.rsplit(" ", 1)[1].rstrip("%")) for m in messages if m.startswith("Pulling image example.org/big:1: ")]
    assert percents and percents == sorted(percents)
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    assert events[-1]["ready"]


async def test_missing_image_message_reaches_the_progress_stream(make_hub, fake):
    hub = await make_hub(image="example.org/gone:1")
    await hub.add_user("cleo")
    with pytest.raises(SpawnFailed) as failed:
        await hub.spawn("cleo")
    assert failed.value.message.startswith("Spawn failed: Image example.org/gone:1 was not found")


async def test_teardown_leaves_no_files_no_tasks_and_cancels_nothing_else(fake, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (cwd / "jupyterhub_config.py").write_text("raise SystemExit('the working directory config was read')\n")
    bystander = asyncio.ensure_future(asyncio.sleep(30))
    factory = HubFactory(fake, tmp_path / "hubs")
    hub = await factory(image=IMAGE)
    assert isinstance(hub.app, KitHub)
    await hub.add_user("dan")
    await hub.spawn("dan")
    stray = await factory.close()
    assert stray == []
    assert not bystander.done(), "the hub's shutdown must not cancel the test's tasks"
    bystander.cancel()
    assert sorted(p.name for p in cwd.iterdir()) == ["jupyterhub_config.py"]
    assert [c["State"] for c in await fake.list_containers(all=True)] == ["exited"]


async def test_unknown_spawner_trait_is_refused(make_hub):
    with pytest.raises(TypeError, match="not a DockerSpawner trait"):
        await make_hub(imgae=IMAGE)
