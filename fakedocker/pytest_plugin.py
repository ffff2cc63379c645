"""pytest fixtures for code that talks to a Docker engine through the
protocol: ``fake_docker`` (a fresh, empty ``FakeDocker``, closed after the
test) and ``fake_docker_factory`` (make several, with options).

Registered through the ``pytest11`` entry point ``fakedocker``, so installing
the package makes the fixtures available everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .engine import FakeDocker

# The engine is imported inside the fixture: pytest loads this plugin in every
# run in the environment, and the engine imports dockerspawner (and with it
# jupyterhub); a run that never asks for a fake should neither pay for that
# nor break when that import does.


@pytest.fixture
async def fake_docker_factory() -> AsyncIterator[Callable[..., FakeDocker]]:
    """``fake_docker_factory(**options)`` -> a new ``FakeDocker``; all of them
    are closed after the test."""
    from .engine import FakeDocker

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


@pytest.fixture
def make_spawner(fake_docker: FakeDocker) -> Callable[..., Any]:
    """``make_spawner(username="alice", servername="", **traits)`` -> a
    ``DockerSpawner`` bound to ``fake_docker``, with a real JupyterHub ``User``
    (in-memory database) but no hub process: enough to call ``start``,
    ``poll``, ``stop`` and inspect what reached the engine."""
    from jupyterhub import orm
    from jupyterhub.objects import Hub
    from jupyterhub.user import User

    from dockerspawner import DockerSpawner

    db = orm.new_session_factory("sqlite:///:memory:")()
    users: dict[str, User] = {}

    def make(
        username: str = "alice", servername: str = "", *, spawner_class: type = DockerSpawner, **traits: Any
    ):
        if username not in users:
            orm_user = orm.User(name=username)
            db.add(orm_user)
            db.commit()
            users[username] = User(orm_user, {"hub": Hub(), "db": db})
        user = users[username]
        if servername not in user.orm_spawners:
            orm_spawner = orm.Spawner(user=user.orm_user, name=servername)
            db.add(orm_spawner)
            db.commit()
        traits.setdefault("engine", fake_docker)
        traits.setdefault("start_timeout", 20)
        traits.setdefault("http_timeout", 10)
        return user._new_spawner(servername, spawner_class=spawner_class, **traits)

    yield make
    db.close()
