"""Hub-level behaviour on the fake engine: REST API and form spawns, state across restarts."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
from jupyterhub.tests.utils import (
    add_user,
    api_request,
    async_requests,
    auth_header,
    get_page,
    public_url,
)
from jupyterhub.utils import url_path_join

from dockerspawner import naming

from .conftest import stop_hub

IMAGE = "quay.io/jupyterhub/singleuser:test"
OTHER = "quay.io/jupyterhub/other:test"


@pytest.fixture
def fake(fake_docker):
    for ref in (IMAGE, OTHER):
        fake_docker.add_image(ref, config={"Cmd": ["jupyterhub-singleuser"]})
    return fake_docker


async def wait_for_server(app, name: str, server: str = "", *, ready: bool = True, timeout: float = 20) -> dict:
    """Poll the REST API until the server is (not) ready; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        r = await api_request(app, "users", name)
        r.raise_for_status()
        model = r.json()["servers"].get(server)
        if bool(model and model["ready"]) is ready and not (model and model["pending"]):
            return model or {}
        if time.monotonic() > deadline:
            raise TimeoutError(f"server {name}/{server} ready={ready} not reached: {model}")
        await asyncio.sleep(0.1)


async def start_server(app, name: str, server: str = "", options: dict | None = None):
    path = ("users", name, "servers", server) if server else ("users", name, "server")
    return await api_request(app, *path, method="post", data=json.dumps(options or {}))


async def stop_server(app, name: str, server: str = ""):
    path = ("users", name, "servers", server) if server else ("users", name, "server")
    r = await api_request(app, *path, method="delete")
    assert r.status_code in (202, 204), r.text
    await wait_for_server(app, name, server, ready=False)


async def labelled(fake, name: str, server: str = "") -> list[dict]:
    return await fake.list_containers(
        all=True, filters={"label": [f"{naming.LABEL_USER}={name}", f"{naming.LABEL_SERVER}={server}"]}
    )


@pytest.mark.parametrize("server", ["", "lab1"])
@pytest.mark.parametrize("remove", [False, True])
async def test_start_stop_through_api(hub_factory, fake, server, remove):
    app = await hub_factory(fake, image=IMAGE, remove=remove)
    add_user(app.db, app, name="alice")
    r = await start_server(app, "alice", server)
    assert r.status_code in (201, 202), r.text
    model = await wait_for_server(app, "alice", server)
    assert model["ready"]

    (container,) = await labelled(fake, "alice", server)
    assert container["State"] == "running"
    expected = "jupyter-alice" + (f"--{server}" if server else "")
    assert container["Names"] == [f"/{expected}"]
    info = await fake.inspect_container(container["Id"])
    env = dict(line.split("=", 1) for line in info["Config"]["Env"])
    assert env["JUPYTER_IMAGE_SPEC"] == IMAGE
    assert env["JUPYTERHUB_USER"] == "alice"

    await stop_server(app, "alice", server)
    left = await labelled(fake, "alice", server)
    if remove:
        assert left == []
    else:
        assert [c["State"] for c in left] == ["exited"]

    # a second start reuses the stopped container when nothing changed
    await start_server(app, "alice", server)
    await wait_for_server(app, "alice", server)
    (again,) = await labelled(fake, "alice", server)
    assert (again["Id"] == container["Id"]) is (not remove)
    await stop_server(app, "alice", server)


@pytest.mark.parametrize(
    "allowed, requested, expected_image",
    [
        ([IMAGE, OTHER], OTHER, OTHER),
        ({"default": IMAGE, "other": OTHER}, "other", OTHER),
        ("*", OTHER, OTHER),
        (lambda spawner: [IMAGE, OTHER], OTHER, OTHER),
    ],
)
async def test_image_choice_allowed(hub_factory, fake, allowed, requested, expected_image):
    app = await hub_factory(fake, image=IMAGE, allowed_images=allowed)
    add_user(app.db, app, name="bob")
    r = await start_server(app, "bob", options={"image": requested})
    assert r.status_code in (201, 202), r.text
    await wait_for_server(app, "bob")
    (container,) = await labelled(fake, "bob")
    assert container["Image"] == expected_image
    await stop_server(app, "bob")


@pytest.mark.parametrize(
    "allowed, requested, message",
    [
        ([], OTHER, "not allowed on this hub"),
        ([IMAGE], OTHER, "not allowed; choose one of"),
        ({"default": IMAGE}, "evil/image:latest", "not allowed"),
        ([IMAGE, OTHER], 42, "must be a string"),
    ],
)
async def test_image_choice_refused(hub_factory, fake, allowed, requested, message):
    app = await hub_factory(fake, image=IMAGE, allowed_images=allowed)
    add_user(app.db, app, name="carol")
    r = await start_server(app, "carol", options={"image": requested})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert await labelled(fake, "carol") == []
    assert fake.calls.count("create_container") == 0
    assert fake.calls.count("pull_image") == 0


async def test_options_form_lists_allowed_images_and_spawns_choice(hub_factory, fake):
    app = await hub_factory(fake, image=IMAGE, allowed_images={"default": IMAGE, "other": OTHER})
    add_user(app.db, app, name="dave")
    cookies = await app.login_user("dave")
    r = await get_page("spawn", app, cookies=cookies)
    r.raise_for_status()
    assert '<option value="default" selected>' in r.text
    assert '<option value="other">' in r.text
    r = await async_requests.post(
        public_url(app, path="hub/spawn"), cookies=cookies, data={"image": "other", "_xsrf": cookies["_xsrf"]}
    )
    assert r.status_code < 400, r.text
    await wait_for_server(app, "dave")
    (container,) = await labelled(fake, "dave")
    assert container["Image"] == OTHER
    await stop_server(app, "dave")


async def test_server_survives_hub_restart(hub_factory, fake):
    app = await hub_factory(fake, start=False, image=IMAGE)
    user = add_user(app.db, app, name="erin")
    await user.spawn()
    (container,) = await labelled(fake, "erin")
    creates = fake.calls.count("create_container")
    await stop_hub(app)

    app2 = await hub_factory(fake, start=False, clean_db=False, image=IMAGE)
    user2 = app2.users["erin"]
    assert user2.running, "the restarted hub must find the running server"
    spawner = user2.spawner
    assert spawner.object_id == container["Id"]
    assert spawner.get_state()["object_name"] == "jupyter-erin"
    assert await spawner.poll() is None
    (after,) = await labelled(fake, "erin")
    assert after["Id"] == container["Id"] and after["State"] == "running"
    assert fake.calls.count("create_container") == creates, "the server must not be respawned"
    await user2.stop()
    assert [c["State"] for c in await labelled(fake, "erin")] == ["exited"]


async def test_restarted_hub_sees_a_server_that_died_meanwhile(hub_factory, fake):
    app = await hub_factory(fake, start=False, image=IMAGE)
    user = add_user(app.db, app, name="fred")
    await user.spawn()
    await stop_hub(app)
    (container,) = await labelled(fake, "fred")
    await fake.kill_container(container["Id"])

    app2 = await hub_factory(fake, start=False, clean_db=False, image=IMAGE)
    assert not app2.users["fred"].running



async def _at_once(app, method: str, n: int, *path: str) -> list:
    """``n`` identical API requests in flight together (``api_request`` sends one at a time)."""
    headers = {"Sec-Fetch-Mode": "cors", **auth_header(app.db, "admin")}
    url = url_path_join(public_url(app, path="hub"), "api", *path)
    call = getattr(requests, method)
    return await asyncio.gather(*(asyncio.to_thread(call, url, headers=headers, json={}) for _ in range(n)))


async def test_duplicate_requests_through_the_hub_make_one_container(hub_factory, fake):
    """Five starts of one server at once (a double click, a retrying client):
    the hub joins them (202) or refuses them, and the engine gets one container."""
    app = await hub_factory(fake, image=IMAGE, remove=True)
    add_user(app.db, app, name="alice")
    fake.faults.delay("create_container", 1, times=1)  # the duplicates arrive while it is pending
    starts = await _at_once(app, "post", 5, "users", "alice", "server")
    assert {r.status_code for r in starts} <= {201, 202}, [r.text for r in starts]
    await wait_for_server(app, "alice")
    (container,) = await labelled(fake, "alice")
    assert container["State"] == "running"
    assert fake.calls.count("create_container") == 1

    # (two stops at once are JupyterHub's own race: both handlers poll before either
    # marks the stop pending, and the second answers 500 "pending stop")
    await stop_server(app, "alice")
    assert await labelled(fake, "alice") == []
