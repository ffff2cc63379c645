"""Engine fixtures shared by the whole test suite.

One test runs once per engine in ``DOCKERSPAWNER_TEST_ENGINES`` (comma list of
``fake``, ``docker``, ``podman``; default ``fake,docker``). A real engine that
does not answer skips its tests on a developer machine, but fails them in CI
(env ``CI`` set), where a silently skipped engine would hide a broken bring-up.

Objects a test makes on a real engine carry ``TEST_LABELS`` (the contract label
plus a label naming this pytest run); everything so labelled is removed after
each test, even when it failed, and only this run's objects, so two runs on one
engine do not clean up each other's work.
"""

from __future__ import annotations

import inspect
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dockerspawner.engine import EngineError, NotFound
from dockerspawner.index import close_indexes

from unavailable import unavailable

TEST_IMAGE = "local/busybox:test"
CONTRACT_LABEL = "org.jupyterhub.test"
RUN_LABEL = "org.jupyterhub.test.run"
RUN_ID = uuid.uuid4().hex[:8]
TEST_LABELS: dict[str, str] = {CONTRACT_LABEL: "contract", RUN_LABEL: RUN_ID}
LABEL_FILTERS: list[str] = [f"{k}={v}" for k, v in TEST_LABELS.items()]

#: What ``local/busybox:test`` looks like on the real engines (an imported
#: rootfs: no Cmd, no Entrypoint, no Env); the fake gets the same, except
#: the content label ``.ci/ensure-busybox-image`` puts on the real one.
TEST_IMAGE_CONFIG: dict[str, Any] = {"Cmd": None, "Entrypoint": None, "Env": None, "Labels": None}

REAL_KINDS = ("docker", "podman")
ALL_KINDS = ("fake",) + REAL_KINDS


def _parse_engines(raw: str | None) -> list[str]:
    kinds = [k.strip().lower() for k in (raw or "fake,docker").split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise pytest.UsageError(
            f"DOCKERSPAWNER_TEST_ENGINES: unknown engine(s) {unknown}; use {', '.join(ALL_KINDS)}"
        )
    return list(dict.fromkeys(kinds))


ENGINES: list[str] = _parse_engines(os.environ.get("DOCKERSPAWNER_TEST_ENGINES"))
REAL_ENGINES: list[str] = [k for k in ENGINES if k in REAL_KINDS]


def engine_url(kind: str) -> str:
    """Where a real engine of ``kind`` is expected to answer."""
    if kind == "podman":
        return os.environ.get("DOCKERSPAWNER_PODMAN_HOST") or "unix:///run/podman-test.sock"
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def make_real_engine(kind: str, **kwargs: Any):
    """A ``DockerPyEngine`` for ``kind``; docker honours ``DOCKER_HOST``."""
    from dockerspawner.engine.dockerpy import DockerPyEngine

    if kind == "podman":
        eng = DockerPyEngine(client_kwargs={"base_url": engine_url(kind)}, use_env=False, **kwargs)
    else:
        eng = DockerPyEngine(**kwargs)
    eng.engine_kind = kind
    return eng


#: Fixtures that make a test not apply to Podman (see tests/contract/conftest.py):
#: such a test is deselected for it at collection, not skipped, so that the CI
#: guard (which fails on skipped real-engine tests) holds Podman to the rest.
NOT_ON_PODMAN = frozenset({"swarm", "docker_only", "swarm_factory"})


#: What runs on Podman: the contract suite and the real hub spawns (the engine's
#: behaviour and the end-to-end path); DOCKERSPAWNER_PODMAN_SCOPE=all adds every
#: spawner-level real-engine test (compat, orphans, hub errors, kit), which
#: repeats on Podman what the contract already pins, at a few minutes of CI.
PODMAN_SCOPE = ("tests/contract/", "tests/hub/test_hub_real.py")


def _in_podman_scope(item: pytest.Item) -> bool:
    if os.environ.get("DOCKERSPAWNER_PODMAN_SCOPE") == "all":
        return True
    where = Path(str(item.fspath)).resolve().relative_to(Path(__file__).resolve().parents[1]).as_posix()
    return where.startswith(PODMAN_SCOPE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    once: set[str] = set()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_podman = "podman" in (params.get("engine"), params.get("real_engine"))
        repeat = item.get_closest_marker("podman_once") is not None and item.originalname in once
        docker_only = item.get_closest_marker("docker_engine_only") is not None
        out_of_scope = on_podman and not _in_podman_scope(item)
        if on_podman and (out_of_scope or repeat or docker_only or NOT_ON_PODMAN & set(item.fixturenames)):
            drop.append(item)
            continue
        if on_podman and item.get_closest_marker("podman_once") is not None:
            once.add(item.originalname)
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_availability: dict[str, str | None] = {}


async def _why_unavailable(kind: str) -> str | None:
    """None when the engine answers a ping and has the test image, else why not."""
    if kind in _availability:
        return _availability[kind]
    probe = make_real_engine(kind, timeout=10, max_workers=2)
    reason = None
    try:
        await probe.ping()
        try:
            await probe.inspect_image(TEST_IMAGE)
        except NotFound:
            reason = (
                f"the engine at {engine_url(kind)} answers but has no image {TEST_IMAGE}: "
                "build it with `bash .ci/test` (or the rig's make-busybox-rootfs recipe)"
            )
    except EngineError as e:
        reason = (
            f"no {kind} engine answers at {engine_url(kind)}: start one with `bash .ci/test` "
            f"(tried ping: {e})"
        )
    finally:
        await probe.close()
    _availability[kind] = reason
    return reason


async def _require(kind: str) -> None:
    reason = await _why_unavailable(kind)
    if reason is not None:
        unavailable(f"the {kind} engine", reason)


async def cleanup_labelled(eng: Any, label_filters: list[str] = LABEL_FILTERS) -> None:
    """Remove what carries all of ``label_filters`` (fakedocker's kit does the work)."""
    from fakedocker.kit.engines import remove_labelled

    await remove_labelled(eng, label_filters)


async def _make_fake():
    from fakedocker import FakeDocker

    fake = FakeDocker()
    fake.engine_kind = "fake"
    return fake


@pytest.fixture(params=ENGINES, ids=ENGINES)
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A protocol object for one engine kind (``engine.engine_kind``)."""
    kind = request.param
    if kind == "fake":
        eng = await _make_fake()
    else:
        await _require(kind)
        eng = make_real_engine(kind)
    try:
        yield eng
    finally:
        try:
            if kind != "fake":
                await cleanup_labelled(eng)
        finally:
            await close_indexes(eng)
            await eng.close()


@pytest.fixture(params=REAL_ENGINES or [pytest.param(None, marks=pytest.mark.skip(
    reason="no real engine in DOCKERSPAWNER_TEST_ENGINES"))], ids=REAL_ENGINES or ["none"])
async def real_engine(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Like ``engine``, but only over the real engines in ``ENGINES``."""
    kind = request.param
    await _require(kind)
    eng = make_real_engine(kind)
    try:
        yield eng
    finally:
        try:
            await cleanup_labelled(eng)
        finally:
            await close_indexes(eng)
            await eng.close()


async def _ensure_test_image(eng: Any) -> str:
    if getattr(eng, "engine_kind", None) == "fake":
        result = eng.add_image(TEST_IMAGE, config=dict(TEST_IMAGE_CONFIG))
        if inspect.isawaitable(result):
            await result
    return TEST_IMAGE


@pytest.fixture
async def test_image(engine: Any) -> str:
    """``local/busybox:test``, present on the engine under test."""
    return await _ensure_test_image(engine)


@pytest.fixture
async def real_test_image(real_engine: Any) -> str:
    return await _ensure_test_image(real_engine)


@pytest.fixture
def test_labels() -> dict[str, str]:
    """Labels that make an object this run's, so the fixtures clean it up."""
    return dict(TEST_LABELS)


@pytest.fixture
def engine_cleanup() -> Callable[[Any], Awaitable[None]]:
    """``await engine_cleanup(engine)`` removes this run's objects now (the
    engine fixtures also do it after each test)."""
    return cleanup_labelled


@pytest.fixture
def label_filters() -> list[str]:
    """``filters={"label": label_filters}`` selects exactly this run's objects."""
    return list(LABEL_FILTERS)


_name_counter = itertools.count(1)
#: First part of every name ``unique_name`` makes; sessions that share one
#: engine set their own (``DOCKERSPAWNER_TEST_NAME_PREFIX=fid``).
NAME_PREFIX = os.environ.get("DOCKERSPAWNER_TEST_NAME_PREFIX") or "ct"


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("web")`` -> ``ct-<run>-<n>-web``: never reused in a run."""

    def make(suffix: str = "x") -> str:
        return f"{NAME_PREFIX}-{RUN_ID}-{next(_name_counter)}-{suffix}"

    return make
