"""Fixtures shared by the spawner tests (all on fakedocker)."""

import pytest

from dockerspawner.engine.connect import forget_engines
from dockerspawner.index import close_indexes

#: Images the ``fake`` fixture puts in the engine, like single-user images.
IMAGES = ("quay.io/jupyterhub/singleuser:test", "quay.io/jupyterhub/singleuser:other")


@pytest.fixture
def fake(fake_docker):
    """``fake_docker`` with the test images present."""
    for ref in IMAGES:
        fake_docker.add_image(ref, config={"Cmd": ["jupyterhub-singleuser"]})
    return fake_docker


@pytest.fixture
async def shared_engines():
    """Close the engines that ``engine="fake"``/``"docker"`` spawners made in this loop."""
    yield
    for engine in forget_engines():
        await close_indexes(engine)
        await engine.close()
