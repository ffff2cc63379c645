"""Spawners on every engine under test, configured the way existing deployments are.

``spawner_factory(cls=DockerSpawner, name="alice", server="", **traits)`` makes a
spawner (``cls=SwarmSpawner``: a service with init and a host-mode port) bound
to the engine of the test (fakedocker or a real engine) with a real JupyterHub
``User`` (in-memory database, no hub process). It runs busybox httpd from
``local/busybox:test`` (any HTTP answer counts as "up"), and labels its
containers for this test run so the engine fixture removes them.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from .factory import spawners

_prefixes = itertools.count(1)


@pytest.fixture
async def spawner_factory(engine: Any, test_image: str, test_labels: dict) -> AsyncIterator[Callable[..., Any]]:
    run = test_labels["org.jupyterhub.test.run"]
    async with spawners(engine, test_image, f"compat{run}n{next(_prefixes)}", test_labels) as make:
        yield make
