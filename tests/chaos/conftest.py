"""Fixtures of the chaos tests: one extra engine for the module, DockerSpawners
on it, and a leak count after every test.

Everything runs on the extra dockerd of ``rig.py`` (its own network
namespace, stopped and restarted by the tests), never on the system engine.
Without root or the tools it needs, the tests skip on a developer machine and
fail in CI (env ``CI`` set), like every real-engine test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dockerspawner import naming
from dockerspawner.engine.dockerpy import DockerPyEngine
from dockerspawner.exits import close_watchers
from dockerspawner.index import close_indexes
from fakedocker.kit.engines import LabelledEngine, remove_labelled
from fakedocker.kit.spawners import SpawnerFactory

from contract.helpers import HTTPD_CMD  # busybox httpd: answers the readiness check on 8888
from unavailable import require_root, unavailable

from .rig import ENGINE_ADDR, IMAGE, ChaosEngine

#: Each bounded wait in these tests (seconds).
WAIT = 15
#: Leaks seen after each test: test id -> what carried the project's labels.
LEAKS: dict[str, list[str]] = {}
MANAGED = [f"{naming.LABEL_MANAGED}={naming.MANAGED_BY}"]


def _unavailable(reason: str) -> None:
    unavailable("the chaos engine", reason)


@pytest.fixture(scope="module")
def chaos_engine() -> Iterator[ChaosEngine]:
    """The extra engine, up for the whole module, removed (and checked gone) after."""
    require_root("the chaos engine", "a network namespace and a dockerd")
    rig = ChaosEngine()
    try:
        rig.up()
    except (RuntimeError, OSError, TimeoutError) as e:
        rig.down()
        _unavailable(f"could not bring up the chaos engine: {str(e)[:1500]}")
    try:
        yield rig
    finally:
        t0 = time.monotonic()
        left = rig.down()
        print(f"\nchaos engine: {', '.join(f'{k} {v:.2f}s' for k, v in rig.timings.items())}; "
              f"down {time.monotonic() - t0:.2f}s")
        assert not left, f"the chaos engine left behind: {left}"


async def managed_objects(engine: Any) -> list[str]:
    """Everything on ``engine`` carrying the project's managed-by label."""
    filters = {"label": MANAGED}
    found = [f"container {c['Names'][0].lstrip('/')} ({c['State']})"
             for c in await engine.list_containers(all=True, filters=filters)]
    found += [f"volume {v['Name']}" for v in await engine.list_volumes(filters=filters)]
    found += [f"network {n['Name']}" for n in await engine.list_networks(filters=filters)]
    return found


@pytest.fixture
async def engine(chaos_engine: ChaosEngine, request: pytest.FixtureRequest) -> AsyncIterator[LabelledEngine]:
    """The project's engine client for the chaos engine. Afterwards the leaks
    are counted (recorded in ``LEAKS``), then removed so the next test starts clean."""
    if not chaos_engine.answers():
        chaos_engine.start()
    client = DockerPyEngine(client_kwargs={"base_url": chaos_engine.url}, use_env=False, timeout=10)
    client.engine_kind = "docker"
    labelled = LabelledEngine(client)
    try:
        yield labelled
    finally:
        try:
            if not chaos_engine.answers():
                chaos_engine.start()
            await close_watchers(labelled)
            await close_indexes(labelled)
            leaks = await managed_objects(client)
            if leaks:
                LEAKS[request.node.nodeid] = leaks
            await remove_labelled(client, MANAGED)
            await labelled.cleanup()
        finally:
            await client.close()


@pytest.fixture(scope="module")
def spawner_factory() -> Iterator[SpawnerFactory]:
    """One kit factory (and hub database) for the module: making one costs seconds."""
    factory = SpawnerFactory(engine=None)
    yield factory
    factory.close()


@pytest.fixture
def make_spawner(engine: LabelledEngine, spawner_factory: SpawnerFactory) -> Any:
    """``make_spawner(user, server="", **traits)``: a DockerSpawner on the chaos
    engine running busybox httpd, published on the engine's address."""

    def make(user: str, server_name: str = "", **traits: Any) -> Any:
        defaults = {
            "engine": engine, "image": IMAGE, "cmd": HTTPD_CMD, "host_ip": ENGINE_ADDR, "prefix": "cx",
            "start_timeout": 30, "http_timeout": 15, "pull_policy": "ifnotpresent",
            # httpd as PID 1 ignores SIGTERM: an init passes it on, so a stop takes no 10 s grace
            "extra_host_config": {"init": True},
        }
        return spawner_factory(user, server_name, **{**defaults, **traits})

    return make


@pytest.fixture(scope="module")
def registry_addr() -> Iterator[str]:
    """The loopback test registry, else one of our own for the module."""
    from .registry import OwnRegistry, loopback_registry

    addr = loopback_registry()
    if addr:
        yield addr
        return
    own = OwnRegistry()
    try:
        addr = own.start()
    except RuntimeError as e:
        _unavailable(str(e))
    try:
        yield addr
    finally:
        own.stop()
