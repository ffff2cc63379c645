"""End to end on a real engine: hub, proxy and a real single-user server in a container.

The image is the one `.ci/setup` builds locally for the installed JupyterHub
(tagged like the default image), so nothing is pulled from a registry.
"""

from __future__ import annotations

import jupyterhub
import pytest
from jupyterhub.tests.utils import add_user, api_request, async_requests, public_url

from dockerspawner import naming

from .conftest import JUPYTERHUB_VERSION
from .conftest import SINGLEUSER_IMAGE as IMAGE
from .test_hub_fake import start_server, stop_server, wait_for_server

pytestmark = pytest.mark.real_engine


@pytest.mark.podman_once
@pytest.mark.parametrize(
    "remove, server",
    [
        # the spawn .ci/hub-matrix runs under each JupyterHub major (-m hub_matrix)
        pytest.param(True, "", marks=pytest.mark.hub_matrix),
        (True, "lab"),
        (False, ""),
        (False, "lab"),
    ],
)
async def test_real_server_answers_through_proxy(real_hub, real_engine, label_filters, server, remove):
    """This hub, a server from the image built for its version, reached
    through the proxy, then stopped (and removed or kept)."""
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

    # this run's only: the engine is shared with other runs, which have an alice too
    filters = {"label": [f"{naming.LABEL_USER}=alice", f"{naming.LABEL_SERVER}={server}", *label_filters]}
    (container,) = await real_engine.list_containers(all=True, filters=filters)
    assert container["State"] == "running"
    assert container["Image"] == IMAGE
    await assert_server_runs_this_hubs_version(real_engine, container["Id"])

    await stop_server(app, "alice", server)
    left = await real_engine.list_containers(all=True, filters=filters)
    if remove:
        assert left == []
    else:
        assert [c["State"] for c in left] == ["exited"]
    r = await api_request(app, "users", "alice")
    assert r.json()["servers"].get(server) is None


async def assert_server_runs_this_hubs_version(real_engine, container_id: str) -> None:
    result = await real_engine.exec_run(container_id, ["python", "-c", "import jupyterhub; print(jupyterhub.__version__)"])
    assert result.exit_code == 0, result.stderr.decode(errors="replace")[-500:]
    server_version = result.stdout.decode().strip()
    assert tuple(int(p) for p in server_version.split(".")[:2]) == JUPYTERHUB_VERSION, (
        f"{IMAGE} runs JupyterHub {server_version}, the hub is {jupyterhub.__version__}: "
        f"rebuild it (JUPYTERHUB_VERSION={jupyterhub.__version__} bash .ci/build-singleuser-image)"
    )
