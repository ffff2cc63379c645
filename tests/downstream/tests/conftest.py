import jupyterhub
import pytest_asyncio

from fakedocker.kit import ensure_image

#: DockerSpawner's default image: the one a real test engine has locally.
IMAGE = "quay.io/jupyterhub/singleuser:" + ".".join(jupyterhub.__version__.split(".")[:2])


@pytest_asyncio.fixture  # not pytest.fixture: strict mode ignores that one on a coroutine
async def image(docker_engine):
    """IMAGE on the engine under test (added to a fake; checked on a real one)."""
    return await ensure_image(docker_engine, IMAGE)


#: A small image with a web server (busybox's httpd): a real pull of it takes a moment,
#: where the single-user image's would take a minute.
WEB_IMAGE = "local/busybox:test"


@pytest_asyncio.fixture
async def web_image(docker_engine):
    """WEB_IMAGE on the engine under test (on a fake: an image with no command of its own)."""
    return await ensure_image(docker_engine, WEB_IMAGE, config={})
