"""pytest fixtures for code that talks to a Docker engine through the
protocol: ``fake_docker`` (a fresh, empty ``FakeDocker``, closed after the
test) and ``fake_docker_factory`` (make several, with options).

Registered through the ``pytest11`` entry point ``fakedocker``, so installing
the package makes the fixtures available everywhere.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest

from .engine import FakeDocker


@pytest.fixture
async def fake_docker_factory() -> AsyncIterator[Callable[..., FakeDocker]]:
    """``fake_docker_factory(**options)`` -> a new ``FakeDocker``; all of them
    are closed after the test."""
    made: list[FakeDocker] = []

    def make(**options: Any) -> FakeDocker:
        fake = FakeDocker(**options)
        made.append(fake)
        return fake

    yield make
    for fake in reversed(made):
        await fake.close()


@pytest.fixture
async def fake_docker(fake_docker_factory: Callable[..., FakeDocker]) -> FakeDocker:
    """A fresh ``FakeDocker`` with no images: a test adds what it needs
    (``fake_docker.add_image(ref, config=...)``)."""
    return fake_docker_factory()


# --- spawner fixtures -------------------------------------------------------------
# Reserved for the lead: fixtures that build DockerSpawner objects on top of
# ``fake_docker`` go here (the plugin may import the spawner modules; the fake's
# core must not).
