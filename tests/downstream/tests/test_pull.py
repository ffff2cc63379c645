"""Pulls from a loopback registry: the fake's model, or a registry container
with --fakedocker-engine=docker."""

import pytest

from fakedocker.kit import start_spawner, user_message
from hubhooks import spawner_config

pytestmark = pytest.mark.asyncio


async def test_image_from_the_registry_is_pulled_with_progress(make_spawner, fakedocker_registry, web_image):
    ref = await fakedocker_registry.push(web_image, "team/web:2")
    spawner = make_spawner("erin", **spawner_config(ref), cmd=["httpd", "-f", "-p", "8888"])
    events = []
    await start_spawner(spawner, progress=events)
    assert f"Pulling image {ref}: 100%" in [event["message"] for event in events]
    await spawner.stop(now=True)


async def test_image_missing_from_the_registry_tells_the_user(make_spawner, fakedocker_registry):
    ref = fakedocker_registry.ref("team/gone:1")
    spawner = make_spawner("fay", **spawner_config(ref))
    with pytest.raises(Exception) as info:
        await start_spawner(spawner)
    assert user_message(info.value) == f"Image {ref} was not found."
