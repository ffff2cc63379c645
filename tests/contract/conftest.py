"""Fixtures of the contract suite (the engine fixtures live in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from dockerspawner.engine import EngineError, NotFound

from unavailable import unavailable

from .helpers import make_tar

REGISTRY = os.environ.get("DOCKERSPAWNER_TEST_REGISTRY") or "127.0.0.1:5000"
#: The unique layer pushed to the registry: big enough that Docker reports
#: download progress with byte counts, seeded so every run pushes the same
#: blob and the registry stores it once.
LAYER_BYTES = 2 * 1024 * 1024


@dataclass
class RegistryImage:
    """An image that exists in the registry but not locally (until pulled)."""

    repo: str
    tag: str = "v1"
    #: What the pulled image's ``Config`` must contain.
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"

    @property
    def missing_tag_ref(self) -> str:
        return f"{self.repo}:no-such-tag"

    @property
    def missing_repo_ref(self) -> str:
        return f"{self.repo}-no-such-repo:v1"


PULLED_CONFIG: dict[str, Any] = {
    "Cmd": ["sleep", "300"],
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CT_IMAGE=pulled"],
    "ExposedPorts": {"8888/tcp": {}},
    "Labels": {"ct.image": "pulled"},
}

_pushed: dict[str, str] = {}
_push_lock = threading.Lock()


def _push_to_registry(kind: str, base_url: str, run_id: str, image: str, labels: dict) -> str:
    """Build ``<registry>/ct/busybox-<run>-<kind>:v1`` (+ ``latest``) on a real
    engine and push it, with docker-py directly: the protocol has no commit or
    push, and a spawner never needs them."""
    import docker

    with _push_lock:
        if kind in _pushed:
            return _pushed[kind]
        repo = f"{REGISTRY}/ct/busybox-{run_id}-{kind}"
        api = docker.APIClient(base_url=base_url, version="auto", timeout=60)
        try:
            blob = random.Random(4711).randbytes(LAYER_BYTES)
            c = api.create_container(image, ["true"], labels=dict(labels))
            try:
                api.put_archive(c["Id"], "/", make_tar({"ct-blob": blob}))
                changes = [
                    'CMD ["sleep", "300"]',
                    f"ENV PATH={PULLED_CONFIG['Env'][0].split('=', 1)[1]}",
                    "ENV CT_IMAGE=pulled",
                    "EXPOSE 8888",
                    "LABEL ct.image=pulled",
                ]
                api.commit(c["Id"], repository=repo, tag="v1", changes=changes)
            finally:
                api.remove_container(c["Id"], force=True)
            api.tag(f"{repo}:v1", repo, "latest")
            for tag in ("v1", "latest"):
                for ev in api.push(repo, tag, stream=True, decode=True):
                    if isinstance(ev, dict) and ev.get("error"):
                        raise RuntimeError(f"push of {repo}:{tag} to {REGISTRY} failed: {ev['error']}")
            for tag in ("v1", "latest"):
                api.remove_image(f"{repo}:{tag}", force=True)
        finally:
            api.close()
        _pushed[kind] = repo
        return repo


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _forget_local(engine: Any, refs: list[str]) -> None:
    for ref in refs:
        try:
            await engine.remove_image(ref, force=True)
        except NotFound:
            pass


@pytest.fixture
async def registry_image(
    engine: Any, test_image: str, test_labels: dict[str, str], engine_cleanup: Callable
) -> AsyncIterator[RegistryImage]:
    """A pullable image (busybox plus one 2 MiB layer) absent from the engine's
    local store; removed again after the test."""
    kind = engine.engine_kind
    run_id = test_labels["org.jupyterhub.test.run"]
    if kind == "fake":
        image = RegistryImage(repo=f"{REGISTRY}/ct/busybox-{run_id}-fake", config=PULLED_CONFIG)
        for tag in ("v1", "latest"):
            await _maybe_await(
                engine.registry.add(
                    f"{image.repo}:{tag}", config=dict(PULLED_CONFIG), layers=[1_984_305, LAYER_BYTES]
                )
            )
        yield image
        return
    try:
        repo = await asyncio.to_thread(
            _push_to_registry, kind, engine.base_url, run_id, test_image, test_labels
        )
    except Exception as e:  # noqa: BLE001 - reported as the reason
        unavailable(f"the registry at {REGISTRY}", f"cannot push a test image to it: {e}")
    image = RegistryImage(repo=repo, config=PULLED_CONFIG)
    refs = [image.ref, f"{repo}:latest"]
    await _forget_local(engine, refs)
    try:
        yield image
    finally:
        await engine_cleanup(engine)
        await _forget_local(engine, refs)


@pytest.fixture
def make_container(
    engine: Any, test_image: str, test_labels: dict[str, str], unique_name: Callable[[str], str]
) -> Callable[..., Awaitable[str]]:
    """``await make_container(command, start=True, **spec)`` -> id, with this
    run's labels and a unique name (both may be overridden in ``spec``)."""

    async def make(command: Any = ("sleep", "300"), *, start: bool = False, **spec: Any) -> str:
        spec.setdefault("image", test_image)
        spec.setdefault("name", unique_name("c"))
        labels = dict(test_labels)
        labels.update(spec.pop("labels", None) or {})
        spec["labels"] = labels
        if command is not None:
            spec["command"] = list(command) if isinstance(command, tuple) else command
        host_config = spec.setdefault("host_config", {})
        host_config.setdefault("init", True)
        cid = await engine.create_container(spec)
        if start:
            await engine.start_container(cid)
        return cid

    return make


@pytest.fixture
async def swarm(engine: Any) -> Any:
    """The engine, when it runs swarm services (Podman has no swarm)."""
    # unreached: tests/conftest.py deselects Podman here (NOT_ON_PODMAN); a backstop the CI guard fails
    if engine.engine_kind == "podman":
        pytest.skip("Podman has no swarm services")
    try:
        info = await engine.info()
    except EngineError as e:
        pytest.fail(f"info() failed: {e}")
    state = (info.get("Swarm") or {}).get("LocalNodeState")
    if state != "active":
        unavailable("the engine's swarm", f"swarm is not active on this engine (LocalNodeState={state!r})")
    return engine


@pytest.fixture
def docker_only(engine: Any) -> None:
    """For cases that pin what dockerd itself answers (its validation
    messages, runc's and tini's errors, its restart manager and health
    monitor), which Podman's libpod, crun and catatonit answer otherwise:
    ``pytestmark = pytest.mark.usefixtures("docker_only")``."""
    # unreached: tests/conftest.py deselects Podman here (NOT_ON_PODMAN); a backstop the CI guard fails
    if engine.engine_kind == "podman":
        pytest.skip("a Docker daemon behaviour that Podman implements differently")
