"""A loopback registry for pull tests on either engine (``fakedocker_registry``).

On a fake it is the fake's own registry model (``fake.registry``) under a
host name that resolves nowhere. On a real engine it is a registry container
brought up through testcontainers: no reaper, its port published on
127.0.0.1 only, its image (``local/registry:test``, made without any registry
by ``.ci/build-registry-image``) never pulled. ``push`` makes an image
pullable and absent locally, with one fresh layer, so the pull that follows
downloads something and reports progress as a first pull does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
import urllib.request
from typing import Any

from .engines import RUN_ID, RUN_LABEL, is_fake
from .oci_push import LAYER_BYTES, Uploads

#: The registry image on a real engine (``FAKEDOCKER_REGISTRY_IMAGE`` overrides it).
REGISTRY_IMAGE = os.environ.get("FAKEDOCKER_REGISTRY_IMAGE") or "local/registry:test"
#: Label of the registry container; its value names the run.
SERVER_LABEL = "org.jupyterhub.fakedocker.registry"
#: Where a fake's registry "is": a reserved name, so nothing real answers it.
FAKE_HOST = "registry.fakedocker.test:5000"


class FakeRegistry:
    """The fake's registry model behind the ``fakedocker_registry`` interface."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.host = FAKE_HOST

    def ref(self, name: str) -> str:
        """``name`` (``repo[:tag]``) in this registry; not pushed, so a pull of
        it fails as for a missing image."""
        return f"{self.host}/{name}"

    async def push(self, source: str, name: str) -> str:
        """Publish local image ``source`` as ``name`` plus one fresh layer;
        returns the ref to pull."""
        from fakedocker.images import Layer, image_id_for

        image = self.fake.images.find(source)
        if image is None:
            raise RuntimeError(f"image {source[:200]} is not on the fake: add it first (ensure_image)")
        layers = [*image.layers, Layer("sha256:" + secrets.token_hex(32), LAYER_BYTES)]
        pushed = dataclasses.replace(
            image, id=image_id_for(image.config, layers), layers=layers, tags=[], digests=[]
        )
        ref = self.ref(name)
        self.fake.registry.publish(ref, pushed)
        return ref

    def forget(self) -> None:
        """Nothing to undo: the fake goes away with its test."""


class RegistryServer:
    """The registry container of a test session, started through testcontainers."""

    def __init__(self, image: str = REGISTRY_IMAGE) -> None:
        self.image = image
        self.host = ""
        self._container: Any = None
        self._uploads = Uploads("")

    def start(self, timeout: float = 30) -> str:
        """Start the container and wait until ``/v2/`` answers; returns
        ``127.0.0.1:<port>``. Fails with the fix when the image is missing."""
        import docker

        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        try:
            from testcontainers.core.config import testcontainers_config
            from testcontainers.core.container import DockerContainer
        except ImportError:
            raise RuntimeError(
                "fakedocker_registry on a real engine starts its registry with testcontainers: "
                "pip install testcontainers"
            ) from None

        testcontainers_config.ryuk_disabled = True  # the reaper is an image we would have to pull
        client = docker.from_env()
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise RuntimeError(
                f"registry image {self.image} is not on the engine (nothing is pulled): build it with "
                f".ci/build-registry-image {self.image}, or set FAKEDOCKER_REGISTRY_IMAGE"
            ) from None
        finally:
            client.close()
        container = DockerContainer(self.image).with_name(f"fakedocker-registry-{RUN_ID}")
        # not RUN_LABEL: a test's cleanup removes those, and this outlives tests
        container.with_kwargs(labels={SERVER_LABEL: RUN_ID}, network="bridge")
        container.ports["5000/tcp"] = ("127.0.0.1", None)  # loopback only; testcontainers' default is 0.0.0.0
        self._container = container.start()
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        port = wrapped.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
        self.host = f"127.0.0.1:{port}"
        self._uploads = Uploads(self.host)
        _wait_for_registry(self.host, timeout, lambda: wrapped.logs(tail=20).decode(errors="replace"))
        return self.host

    def push(self, source: str, ref: str) -> None:
        """Publish local image ``source`` plus one fresh layer as ``ref``
        (blocking: run it in a thread)."""
        import docker
        from docker.utils import parse_repository_tag

        from .oci_push import push_image

        repo, tag = parse_repository_tag(ref)
        api = docker.from_env(timeout=120).api
        try:
            push_image(api, self._uploads, source, repo.split("/", 1)[1], tag or "latest")
        except docker.errors.ImageNotFound:
            raise RuntimeError(f"image {source[:200]} is not on the engine: nothing is pulled, tag or build it first") from None
        finally:
            api.close()

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None


def _wait_for_registry(host: str, timeout: float, logs: Any) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the registry on {host} did not answer within {timeout:.0f}s; its log:\n{logs()[-2000:]}")
        time.sleep(0.1)


class RealRegistry:
    """A ``RegistryServer`` seen from one test: what the test pushed or named
    is removed from the engine's local images afterwards (the registry keeps
    its copy until the session ends)."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.host = server.host
        self._refs: list[str] = []

    def ref(self, name: str) -> str:
        """``name`` (``repo[:tag]``) in this registry; not pushed, so a pull of
        it fails as for a missing image."""
        ref = f"{self.host}/{name}"
        self._refs.append(ref)
        return ref

    async def push(self, source: str, name: str) -> str:
        """Publish local image ``source`` plus one fresh layer as ``name``;
        returns the ref to pull (not present locally)."""
        ref = self.ref(name)
        await asyncio.to_thread(self.server.push, source, ref)
        return ref

    def forget(self) -> None:
        """Remove the local copies of what this test pushed or named, and the
        run's containers still using them (an image removed under a container
        would stay behind untagged)."""
        import docker

        api = docker.from_env().api
        try:
            for ref in self._refs:
                users = api.containers(all=True, filters={"ancestor": ref, "label": f"{RUN_LABEL}={RUN_ID}"})
                for container in users:
                    _quietly(api.remove_container, container["Id"], force=True, v=True)
                _quietly(api.remove_image, ref, force=True)
        finally:
            api.close()


def _quietly(call: Any, *args: Any, **kwargs: Any) -> None:
    import docker

    try:
        call(*args, **kwargs)
    except docker.errors.NotFound:
        pass


def registry_for(engine: Any, server: Any = None) -> FakeRegistry | RealRegistry:
    """The registry a test on ``engine`` pulls from: the fake's model, or
    ``server`` (a started ``RegistryServer``) on a real engine."""
    if is_fake(engine):
        return FakeRegistry(engine)
    if server is None:
        raise RuntimeError("a real engine needs a started RegistryServer")
    return RealRegistry(server)
