import jupyterhub
import pytest_asyncio

from fakedocker.kit import ensure_image

#: DockerSpawner's default image: the one a real test engine has locally.
IMAGE = "quay.io/jupyterhub/singleuser:" + ".".join(jupyterhub.__version__.split(".")[:2])


@pytest_asyncio.fixture  # not pytest.fixture: strict mode ignores that one on a coroutine
async def image(docker_engine):
    """IMAGE on the engine under test (added to a fake; checked on a real one)."""
    return await ensure_image(docker_engine, IMAGE)
