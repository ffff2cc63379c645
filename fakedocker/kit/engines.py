"""The same fixtures on a real engine (``--fakedocker-engine=docker``).

What a test creates through ``docker_engine`` on a real engine carries a
label naming this pytest run (the engine is shared: other runs and other
people's containers are never touched), and is removed after the test,
whatever happened. Nothing is pulled for the test: ``ensure_image`` checks
that an image is already there and says how to fix it when not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dockerspawner.engine import EngineError, NotFound

#: Label on everything a test made on a real engine; its value names the run.
RUN_LABEL = "org.jupyterhub.fakedocker.run"
RUN_ID = uuid.uuid4().hex[:12]

#: What a docker-stacks single-user image runs (``ensure_image`` gives a fake image this).
SINGLEUSER_CONFIG: dict[str, Any] = {"Cmd": ["start-notebook.py"], "User": "1000", "WorkingDir": "/home/jovyan"}


def is_fake(engine: Any) -> bool:
    from fakedocker.engine import FakeDocker

    return isinstance(engine, FakeDocker)


def is_real(engine: Any) -> bool:
    """An engine of ``--fakedocker-engine`` (or any docker-py backend)."""
    return getattr(engine, "engine_kind", None) in ("docker", "podman")


async def ensure_image(engine: Any, ref: str, *, config: dict[str, Any] | None = None) -> str:
    """``ref`` present on ``engine``: added to a fake (a single-user image
    unless ``config`` says otherwise), checked on a real engine. Returns ``ref``."""
    if is_fake(engine):
        engine.add_image(ref, config=dict(SINGLEUSER_CONFIG if config is None else config))
        return ref
    try:
        await engine.inspect_image(ref)
    except NotFound:
        raise RuntimeError(
            f"image {ref[:200]} is not on the engine: a test on a real engine uses local images only "
            "(nothing is pulled); build or tag it there first"
        ) from None
    return ref


class HubStub:
    """What a real single-user server needs of a hub to start when there is
    no hub (``make_spawner`` on a real engine): its API answering with
    ``X-JupyterHub-Version``, on the address containers reach the host at."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        import jupyterhub
        from tornado import web
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        version = jupyterhub.__version__

        class Answer(web.RequestHandler):
            def get(self) -> None:
                self.set_header("X-JupyterHub-Version", version)
                self.write({"version": version})

            post = get

        sockets = bind_sockets(0, self.ip)
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(web.Application([(r".*", Answer)]))
        self._server.add_sockets(sockets)

    async def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()


class LabelledEngine:
    """A real engine whose create calls add ``RUN_LABEL``; every other call
    goes through unchanged."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.labels = {RUN_LABEL: RUN_ID}
        self.engine_kind = getattr(engine, "engine_kind", "docker")
        self.hub_stub: HubStub | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _with_labels(self, labels: dict[str, str] | None) -> dict[str, str]:
        return {**(labels or {}), **self.labels}

    async def create_container(self, spec: dict[str, Any]) -> str:
        return await self._engine.create_container({**spec, "labels": self._with_labels(spec.get("labels"))})

    async def create_volume(self, name: str, **kwargs: Any) -> dict:
        kwargs["labels"] = self._with_labels(kwargs.get("labels"))
        return await self._engine.create_volume(name, **kwargs)

    async def create_network(self, name: str, **kwargs: Any) -> str:
        kwargs["labels"] = self._with_labels(kwargs.get("labels"))
        return await self._engine.create_network(name, **kwargs)

    async def create_service(self, spec: dict) -> str:
        return await self._engine.create_service({**spec, "Labels": self._with_labels(spec.get("Labels"))})

    async def cleanup(self) -> None:
        """Remove this run's services, containers (with their named volumes
        that this run's containers used), networks and volumes."""
        filters = {"label": [f"{RUN_LABEL}={RUN_ID}"]}
        eng = self._engine
        try:
            services = await eng.list_services(filters=filters)
        except EngineError:
            services = []
        for svc in services:
            await _quietly(eng.remove_service(svc["ID"]))
        volumes: set[str] = set()
        for c in await eng.list_containers(all=True, filters=filters):
            for m in c.get("Mounts") or []:
                if m.get("Type") == "volume" and m.get("Name"):
                    volumes.add(m["Name"])
            await _quietly(eng.remove_container(c["Id"], force=True, volumes=True))
        for net in await eng.list_networks(filters=filters):
            await _quietly(eng.remove_network(net["Id"]))
        for vol in await eng.list_volumes(filters=filters):
            volumes.add(vol["Name"])
        for name in sorted(volumes):
            await _quietly(eng.remove_volume(name, force=True))


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except NotFound:
        pass


async def bridge_gateway(engine: Any) -> str:
    """The host's address on the default bridge (where containers reach a hub)."""
    ipam = (await engine.inspect_network("bridge"))["IPAM"]["Config"][0]
    return ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))


@asynccontextmanager
async def real_engine(kind: str) -> AsyncIterator[LabelledEngine]:
    """The engine at ``DOCKER_HOST`` (docker-py's environment), labelled and
    cleaned up after use. Fails at once, with the fix, when it does not answer."""
    from dockerspawner.engine.dockerpy import DockerPyEngine

    engine = DockerPyEngine(timeout=30)
    engine.engine_kind = kind
    try:
        await asyncio.wait_for(engine.ping(), 30)
    except (EngineError, asyncio.TimeoutError) as e:
        await engine.close()
        raise RuntimeError(
            f"--fakedocker-engine={kind}: no engine answers at DOCKER_HOST ({str(e)[:200]}); "
            "start one or run without the option"
        ) from None
    labelled = LabelledEngine(engine)
    labelled.hub_stub = stub = HubStub(await bridge_gateway(engine))
    await stub.start()
    try:
        yield labelled
    finally:
        from dockerspawner.index import close_indexes

        try:
            await close_indexes(labelled)
            await labelled.cleanup()
        finally:
            await stub.close()
            await engine.close()
