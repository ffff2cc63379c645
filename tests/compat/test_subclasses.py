"""Subclasses and hooks written the way downstream projects write them for dockerspawner 14.

Each runs on fakedocker and on the real engine: what a subclass overrides must
change what happens, as it did with 14.
"""

from __future__ import annotations

import docker.errors
import pytest

from dockerspawner import DockerSpawner

from contract.helpers import HTTPD_CMD, HTTPD_BODY, http_get

pytestmark = pytest.mark.engine


class InspectingSpawner(DockerSpawner):
    """Overrides get_command and asks the engine through 14's docker()."""

    seen_image_ids: list[str] = []

    async def get_command(self):
        info = await self.docker("inspect_image", self.image)
        InspectingSpawner.seen_image_ids.append(info["Id"])
        return ["sh", "-c", f"echo from-subclass; exec {' '.join(HTTPD_CMD)}"]


async def test_get_command_override_and_docker_inspect_image(spawner_factory, engine):
    spawner = spawner_factory(InspectingSpawner, cmd=None)
    InspectingSpawner.seen_image_ids.clear()
    ip, port = await spawner.start()
    info = await engine.inspect_container(spawner.object_id)
    assert info["Config"]["Cmd"][:2] == ["sh", "-c"] and "from-subclass" in info["Config"]["Cmd"][2]
    assert InspectingSpawner.seen_image_ids == [(await engine.inspect_image(spawner.image))["Id"]]
    status, body = await http_get(f"http://{ip}:{port}/")
    assert status == 200 and HTTPD_BODY in body
    await spawner.stop()


async def test_docker_raises_docker_py_errors_as_14_did(spawner_factory):
    spawner = spawner_factory()
    with pytest.raises(docker.errors.NotFound) as info:
        await spawner.docker("inspect_container", "compat-no-such-container")
    assert info.value.status_code == 404


class LabellingSpawner(DockerSpawner):
    """Adds a label by overriding create_object, then defers to the base class."""

    async def create_object(self):
        labels = dict(self.extra_create_kwargs.get("labels") or {})
        labels["org.example.team"] = f"team-of-{self.user.name}"
        self.extra_create_kwargs = {**self.extra_create_kwargs, "labels": labels}
        return await super().create_object()


async def test_create_object_override_adds_a_label(spawner_factory, engine):
    spawner = spawner_factory(LabellingSpawner)
    await spawner.start()
    labels = (await engine.inspect_container(spawner.object_id))["Config"]["Labels"]
    assert labels["org.example.team"] == "team-of-alice"
    assert labels["org.jupyterhub.user"] == "alice"  # the owner labels are still there
    await spawner.stop()


class OwnStartSpawner(DockerSpawner):
    """A 14-style start of its own, built from the hooks."""

    async def start(self):
        await self.pull_image(self.image)
        obj = await self.get_object()
        if obj is None:
            obj = await self.create_object()
            self.object_id = obj[self.object_id_key]
        await self.start_object()
        if self.post_start_cmd:
            await self.post_start_exec()
        return await self.get_ip_and_port()


async def test_own_start_calls_pull_image_and_post_start_exec(spawner_factory, engine, caplog):
    caplog.set_level("DEBUG")
    spawner = spawner_factory(OwnStartSpawner, post_start_cmd=["sh", "-c", "echo post-start-ran"], mem_limit="64M")
    ip, port = await spawner.start()
    status, _ = await http_get(f"http://{ip}:{port}/")
    assert status == 200
    info = await engine.inspect_container(spawner.object_id)
    assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024  # limits still reach the container
    assert any("post-start-ran" in r.getMessage() for r in caplog.records)
    await spawner.stop()
    assert await spawner.poll() is not None


async def test_pre_spawn_hook_reads_mem_limit_as_a_number(spawner_factory, engine):
    seen = []
    choice = {"limit": "96M"}
    spawner = spawner_factory(
        mem_limit=lambda sp: choice["limit"],
        pre_spawn_hook=lambda sp: seen.append(sp.mem_limit),
    )
    for limit, expected in (("96M", 96 * 2**20), ("128M", 128 * 2**20)):
        choice["limit"] = limit
        await spawner.run_pre_spawn_hook()  # what the hub does before start()
        await spawner.start()
        assert seen[-1] == expected
        assert spawner.mem_limit == expected  # as 14 showed it, after start
        info = await engine.inspect_container(spawner.object_id)
        assert info["HostConfig"]["Memory"] == expected  # evaluated again at every start
        await spawner.stop()


async def test_hook_setting_mem_limit_wins_over_the_callable(spawner_factory, engine):
    def hook(sp):
        sp.mem_limit = "80M"

    spawner = spawner_factory(mem_limit=lambda sp: "96M", pre_spawn_hook=hook)
    await spawner.run_pre_spawn_hook()
    await spawner.start()
    assert (await engine.inspect_container(spawner.object_id))["HostConfig"]["Memory"] == 80 * 2**20
    await spawner.stop()
