"""Tests of the deployment's hooks, on fakedocker (or a real engine with
--fakedocker-engine=docker). Marked for pytest-asyncio's strict mode."""

import pytest
from dockerspawner.engine import EngineError

from fakedocker.kit import start_spawner, user_message
from hubhooks import spawner_config

pytestmark = pytest.mark.asyncio


async def test_hook_sets_team_and_admin_memory(make_spawner, docker_engine, image):
    spawner = make_spawner("alice", admin=True, groups=["physics", "staff"], **spawner_config(image))
    await start_spawner(spawner)
    info = await docker_engine.inspect_container(spawner.object_id)
    assert "TEAM=physics" in info["Config"]["Env"]
    assert info["HostConfig"]["Memory"] == 2 * 1024**3
    await spawner.stop()


async def test_callable_host_config_gives_big_group_more_cpu(make_spawner, docker_engine, image):
    spawner = make_spawner("bob", groups=["big"], **spawner_config(image))
    await start_spawner(spawner)
    info = await docker_engine.inspect_container(spawner.object_id)
    assert info["HostConfig"]["CpuShares"] == 2048
    await spawner.stop()


async def test_image_outside_the_allowed_list_is_refused(make_spawner, docker_engine, image):
    spawner = make_spawner("carol", user_options={"image": "evil/miner:latest"}, **spawner_config(image))
    with pytest.raises(Exception) as info:
        await start_spawner(spawner)
    assert "not allowed" in user_message(info.value)
    assert await docker_engine.list_containers(all=True, filters={"name": ["jupyter-carol"]}) == []


async def test_engine_error_reaches_the_user_as_a_message(make_spawner, fake_docker, image):
    fake_docker.faults.fail("create_container", EngineError("disk full", 500), times=None)
    spawner = make_spawner("dan", **spawner_config(image))
    with pytest.raises(Exception) as info:
        await start_spawner(spawner)
    assert info.value.jupyterhub_message  # for the user
    assert "disk full" in info.value.detail  # for the admin's log
