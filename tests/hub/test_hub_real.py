"""End to end on a real engine: hub, proxy and a real single-user server in a container.

The image is the one `.ci/setup` builds locally for the installed JupyterHub
(tagged like the default image), so nothing is pulled from a registry.
"""

from __future__ import annotations

import ipaddress

import jupyterhub
import pytest
from jupyterhub.tests.utils import add_user, api_request, async_requests, public_url

from dockerspawner import naming

from .test_hub_fake import start_server, stop_server, wait_for_server

pytestmark = pytest.mark.real_engine

IMAGE = "quay.io/jupyterhub/singleuser:" + ".".join(jupyterhub.__version__.split(".")[:2])


@pytest.fixture
async def real_hub(real_engine, hub_factory, test_labels):
    """A started hub on the real engine; containers carry the test labels so the
    engine fixture removes them whatever happens (after the hub has stopped:
    ``real_engine`` is set up first, so it is torn down last)."""
    try:
        await real_engine.inspect_image(IMAGE)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the single-user image {IMAGE} is not on the engine ({e}): run `bash .ci/setup`")
    bridge = await real_engine.inspect_network("bridge")
    ipam = bridge["IPAM"]["Config"][0]
    # Docker leaves the default bridge's Gateway unset: docker0 holds the first address
    gateway = ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))

    async def make(**spawner_config):
        spawner_config.setdefault("extra_create_kwargs", {"labels": test_labels})
        return await hub_factory(
            real_engine,
            hub_config={"hub_ip": gateway},
            image=IMAGE,
            start_timeout=90,
            http_timeout=60,
            **spawner_config,
        )

    return make


@pytest.mark.parametrize("server", ["", "lab"])
@pytest.mark.parametrize("remove", [True, False])
async def test_real_server_answers_through_proxy(real_hub, real_engine, server, remove):
    app = await real_hub(remove=remove)
    user = add_user(app.db, app, name="alice")
    r = await start_server(app, "alice", server)
    assert r.status_code in (201, 202), r.text
    await wait_for_server(app, "alice", server, timeout=90)

    token = user.new_api_token()
    prefix = f"user/alice/{server + '/' if server else ''}"
    r = await async_requests.get(
        public_url(app, path=prefix + "api/status"), headers={"Authorization": f"token {token}"}
    )
    assert r.status_code == 200, r.text
    status = r.json()
    assert "started" in status and "last_activity" in status

    filters = {"label": [f"{naming.LABEL_USER}=alice", f"{naming.LABEL_SERVER}={server}"]}
    (container,) = await real_engine.list_containers(all=True, filters=filters)
    assert container["State"] == "running"
    assert container["Image"] == IMAGE

    await stop_server(app, "alice", server)
    left = await real_engine.list_containers(all=True, filters=filters)
    if remove:
        assert left == []
    else:
        assert [c["State"] for c in left] == ["exited"]
    r = await api_request(app, "users", "alice")
    assert r.json()["servers"].get(server) is None
