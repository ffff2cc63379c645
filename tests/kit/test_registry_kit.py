"""fakedocker_registry's two sides: the fake's registry model, and a registry
container through testcontainers that a real engine pulls from."""

from __future__ import annotations

import docker
import pytest

from dockerspawner.engine import NotFound
from fakedocker.kit.engines import RUN_ID
from fakedocker.kit.registry import SERVER_LABEL, FakeRegistry, RealRegistry, RegistryServer


async def _statuses(engine, ref: str) -> list[tuple[str, str | None]]:
    return [(ev.status, ev.layer) async for ev in engine.pull_image(ref)]


async def test_fake_push_adds_one_fresh_layer_and_leaves_the_image_absent(fake_docker):
    fake_docker.add_image("team/base:1", config={"Cmd": ["start-notebook.py"]})
    registry = FakeRegistry(fake_docker)
    ref = await registry.push("team/base:1", "team/lab:2")
    assert ref == "registry.fakedocker.test:5000/team/lab:2"
    with pytest.raises(NotFound):
        await fake_docker.inspect_image(ref)
    statuses = [status for status, _ in await _statuses(fake_docker, ref)]
    assert statuses.count("Already exists") == 1 and statuses.count("Pull complete") == 1
    assert (await fake_docker.inspect_image(ref))["Config"]["Cmd"] == ["start-notebook.py"]
    with pytest.raises(NotFound):
        await _statuses(fake_docker, registry.ref("team/gone:1"))


async def test_fake_push_of_a_missing_image_says_what_to_do(fake_docker):
    with pytest.raises(RuntimeError, match="add it first"):
        await FakeRegistry(fake_docker).push("team/none:1", "team/lab:2")


@pytest.mark.real_engine
@pytest.mark.parametrize("real_engine", ["docker"], indirect=True)
async def test_registry_container_on_loopback_serves_pushed_images_and_leaves_nothing(real_engine, real_test_image):
    server = RegistryServer()
    server.start()
    client = docker.from_env()
    registry = RealRegistry(server)
    try:
        (container,) = client.api.containers(filters={"label": f"{SERVER_LABEL}={RUN_ID}"})
        bindings = client.api.inspect_container(container["Id"])["HostConfig"]["PortBindings"]
        assert [b["HostIp"] for b in bindings["5000/tcp"]] == ["127.0.0.1"]
        ref = await registry.push(real_test_image, "kit/pushed:1")
        assert ref.startswith("127.0.0.1:")
        with pytest.raises(NotFound):
            await real_engine.inspect_image(ref)
        statuses = [status for status, _ in await _statuses(real_engine, ref)]
        assert "Pull complete" in statuses and "Downloading" in statuses, statuses
        again = await registry.push(real_test_image, "kit/again:1")  # blobs mounted, not sent again
        # the engine now knows the base layer's blob: only the fresh layer comes down
        statuses = [status for status, _ in await _statuses(real_engine, again)]
        assert "Already exists" in statuses and statuses.count("Pull complete") == 1, statuses
        with pytest.raises(NotFound):
            await _statuses(real_engine, registry.ref("kit/gone:1"))
        registry.forget()
        assert client.api.images(name=ref.rsplit(":", 1)[0]) == []
    finally:
        registry.forget()
        server.stop()
        assert client.api.containers(all=True, filters={"label": f"{SERVER_LABEL}={RUN_ID}"}) == []
        client.close()
