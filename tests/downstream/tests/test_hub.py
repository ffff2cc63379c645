"""A whole hub: the REST API, the progress stream, a server that exits."""

import pytest

from fakedocker.kit import SpawnFailed
from hubhooks import spawner_config

pytestmark = pytest.mark.asyncio


async def test_spawn_through_the_rest_api_reports_progress(make_hub, image):
    hub = await make_hub(**spawner_config(image))
    await hub.add_user("gina", groups=["physics"])
    events = await hub.spawn("gina")
    assert events[-1]["ready"] and events[-1]["progress"] == 100
    assert (await hub.server("gina"))["ready"]
    await hub.stop("gina")
    assert await hub.server("gina") is None


async def test_server_that_exits_at_start_fails_the_spawn(make_hub, fake_docker, image):
    fake_docker.faults.exit_after_start("jupyter-hank", after=0, exit_code=3, stderr=["no space left"])
    hub = await make_hub(**spawner_config(image))
    await hub.add_user("hank")
    with pytest.raises(SpawnFailed) as info:
        await hub.spawn("hank")
    assert info.value.message.startswith("Spawn failed:")
    assert info.value.events[-1]["failed"]
