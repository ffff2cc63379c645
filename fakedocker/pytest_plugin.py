"""pytest fixtures for code that talks to a Docker engine through the
protocol, registered through the ``pytest11`` entry point ``fakedocker``:

- ``fake_docker``: a fresh, empty ``FakeDocker``, closed after the test;
- ``fake_docker_factory(**options)``: make more ``FakeDocker`` s, with options;
- ``docker_engine``: the engine under test: ``fake_docker``, or a real engine
  with ``--fakedocker-engine=docker``;
- ``make_spawner(name, server_name="", *, admin=False, groups=(),
  user_options=None, config=None, spawner_class=DockerSpawner, **traits)``:
  a ``DockerSpawner`` on ``docker_engine`` (see ``fakedocker.kit.spawners``);
- ``make_hub(engine=None, *, config=None, **spawner_traits)``: a started
  JupyterHub on ``docker_engine`` and its REST client (``fakedocker.kit.hub``);
- ``fakedocker_registry``: a loopback registry ``docker_engine`` pulls from
  (``await fakedocker_registry.push(image, "team/lab:1")`` -> a ref to pull,
  ``fakedocker_registry.ref("team/gone:1")`` a missing one;
  ``fakedocker.kit.registry``).

The async fixtures are pytest-asyncio's, so they work in its strict, auto and
unconfigured modes; in strict mode mark the tests that use them with
``@pytest.mark.asyncio``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .kit.compat import async_fixture, keep_loop_scope_notice_from_failing

if TYPE_CHECKING:
    from .engine import FakeDocker
    from .kit.hub import HubFactory
    from .kit.registry import FakeRegistry, RealRegistry, RegistryServer
    from .kit.spawners import SpawnerFactory

# The engine and the spawner are imported inside the fixtures: pytest loads
# this plugin in every run in the environment, and they import dockerspawner
# (and with it jupyterhub); a run that never asks for a fake should neither
# pay for that nor break when that import does.

ENGINE_OPTION = "--fakedocker-engine"
ENGINE_KINDS = ("fake", "docker")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fakedocker")
    group.addoption(
        ENGINE_OPTION,
        dest="fakedocker_engine",
        choices=ENGINE_KINDS,
        default="fake",
        help="engine behind the docker_engine, make_spawner and make_hub fixtures: "
        "fake (fakedocker, default) or docker (the engine at DOCKER_HOST)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    keep_loop_scope_notice_from_failing()


@async_fixture
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
    from dockerspawner.index import close_indexes

    for fake in reversed(made):
        await close_indexes(fake)  # the spawners' shared followers of this engine
        await fake.close()


@async_fixture
async def fake_docker(fake_docker_factory: Callable[..., FakeDocker]) -> FakeDocker:
    """A fresh ``FakeDocker`` with no images: a test adds what it needs
    (``fake_docker.add_image(ref, config=...)``)."""
    return fake_docker_factory()


@pytest.fixture
def docker_engine(request: pytest.FixtureRequest) -> Any:
    """The engine under test: ``fake_docker`` by default; with
    ``--fakedocker-engine=docker`` the real engine at ``DOCKER_HOST``, and
    everything the test's spawners and hubs created there is removed after it.
    A test that also asks for ``fake_docker`` (to inject faults or add
    images) stays on the fake."""
    kind = request.config.getoption("fakedocker_engine", "fake")
    if kind == "fake" or "fake_docker" in request.fixturenames:
        return request.getfixturevalue("fake_docker")
    return request.getfixturevalue("fakedocker_real_engine")


@async_fixture
async def fakedocker_real_engine(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The real engine of ``--fakedocker-engine`` (use ``docker_engine``)."""
    from .kit.engines import real_engine

    async with real_engine(request.config.getoption("fakedocker_engine")) as engine:
        yield engine


@pytest.fixture
def make_spawner(docker_engine: Any) -> Any:
    """``make_spawner(name, server_name="", *, admin=False, groups=(),
    user_options=None, config=None, spawner_class=DockerSpawner, **traits)``
    -> a ``DockerSpawner`` on ``docker_engine`` with a real JupyterHub
    ``User`` but no hub process. An unknown keyword raises ``TypeError``.
    ``spawner.start()`` runs no hooks, as in JupyterHub; ``await
    fakedocker.kit.start_spawner(spawner)`` runs ``pre_spawn_hook`` and the
    rest as the hub does."""
    from .kit.spawners import SpawnerFactory

    factory: SpawnerFactory = SpawnerFactory(docker_engine)
    yield factory
    factory.close()


@async_fixture
async def make_hub(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HubFactory]:
    """``await make_hub(engine=None, *, config=None, **spawner_traits)`` -> a
    ``HubClient`` of a started JupyterHub (its own app and proxy) spawning
    ``DockerSpawner`` s on ``docker_engine``. After the test every hub is
    stopped with its servers and proxy; its files were in a temporary
    directory."""
    from .kit.hub import HubFactory

    factory = HubFactory(docker_engine, tmp_path_factory.mktemp("fakedocker-hub"))
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
def fakedocker_registry(request: pytest.FixtureRequest, docker_engine: Any) -> Iterator[FakeRegistry | RealRegistry]:
    """A loopback registry that ``docker_engine`` pulls from: the fake's own
    registry model on a fake; on a real engine a registry container started
    through testcontainers (once per session, 127.0.0.1 only, its image
    ``local/registry:test`` never pulled). ``await push(source, name)`` ->
    a ref to pull (``source`` plus one fresh layer, absent locally);
    ``ref(name)`` a ref that is not there. What the test pulled is removed
    from the engine afterwards."""
    from .kit.engines import is_fake
    from .kit.registry import registry_for

    server = None if is_fake(docker_engine) else request.getfixturevalue("fakedocker_registry_server")
    registry = registry_for(docker_engine, server)
    yield registry
    registry.forget()


@pytest.fixture(scope="session")
def fakedocker_registry_server() -> Iterator[RegistryServer]:
    """The real engine's registry container of ``fakedocker_registry``
    (started on first use, removed at the end of the session)."""
    from .kit.registry import RegistryServer

    server = RegistryServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
