"""make_spawner's keywords, and the hooks start_spawner runs as the hub does."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from fakedocker.kit import start_spawner, stop_spawner, user_message

IMAGE = "quay.io/jupyterhub/singleuser:test"


@pytest.fixture
def fake(fake_docker):
    fake_docker.add_image(IMAGE, config={"Cmd": ["start-singleuser.sh"]})
    return fake_docker


@pytest.mark.parametrize(
    "kwargs, hint",
    [({"admn": True}, "did you mean 'admin'?"), ({"servername": "x"}, "did you mean 'server_name'?"),
     ({"imgae": IMAGE}, "did you mean 'image'?"), ({"zzz_nothing": 1}, "not a trait of DockerSpawner")],
)
def test_unknown_keyword_is_refused_with_a_hint(make_spawner, kwargs, hint):
    with pytest.raises(TypeError) as err:
        make_spawner("alice", **kwargs)
    assert "unknown keyword" in str(err.value) and hint in str(err.value)


def test_groups_must_be_a_list_not_a_string(make_spawner):
    with pytest.raises(TypeError, match="list of group names"):
        make_spawner("alice", groups="staff")


def test_admin_groups_options_and_config_reach_the_spawner(make_spawner):
    cfg = Config({"DockerSpawner": {"mem_limit": "1G", "image": IMAGE}})
    spawner = make_spawner("alice", "lab", admin=True, groups=["b", "a"], user_options={"image": IMAGE}, config=cfg)
    assert spawner.user.admin is True
    assert sorted(g.name for g in spawner.user.groups) == ["a", "b"]
    assert spawner.user_options == {"image": IMAGE} and spawner.name == "lab"
    assert spawner.mem_limit == 1024**3 and spawner.image == IMAGE
    # a dict works as config too, and traits win over it
    other = make_spawner("bob", config={"DockerSpawner": {"mem_limit": "1G"}}, mem_limit="2G")
    assert other.mem_limit == 2 * 1024**3


async def test_start_runs_no_hook_but_start_spawner_does(make_spawner, fake):
    seen = []
    spawner = make_spawner("alice", image=IMAGE, pre_spawn_hook=lambda s: seen.append(s.user.name))
    await spawner.start()
    assert seen == []
    await spawner.stop()
    await start_spawner(spawner)
    assert seen == ["alice"]
    await spawner.stop()


async def test_stop_spawner_runs_post_stop_hook(make_spawner, fake):
    stopped = []
    spawner = make_spawner("carl", image=IMAGE, post_stop_hook=lambda s: stopped.append(s.user.name))
    await start_spawner(spawner)
    await stop_spawner(spawner)
    assert stopped == ["carl"]
    # as 14: stop() clears the id from the state; the stopped container keeps its name
    assert (await fake.inspect_container(spawner.object_name))["State"]["Status"] == "exited"


async def test_user_message_is_jupyterhub_message_and_str_is_for_the_admin(make_spawner, fake):
    spawner = make_spawner("dora", image="example.org/missing:1")
    with pytest.raises(Exception) as err:
        await start_spawner(spawner)
    assert user_message(err.value) == err.value.jupyterhub_message
    assert "example.org/missing:1 was not found" in user_message(err.value)
    assert user_message(ValueError("plain")) == "plain"
