"""close(): no task, socket, stream or process outlives it; it is idempotent."""

from __future__ import annotations

import asyncio

import pytest
from fk_helpers import BUSYBOX, http_get, published

from dockerspawner.engine import EngineUnavailable
from fakedocker import FakeDocker


def _others() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_close_leaves_no_tasks_sockets_or_streams():
    before = _others()
    fake = FakeDocker(pull_speed=100_000)
    fake.add_image(BUSYBOX)
    fake.registry.add("reg.local/slow:1", layers=[10_000_000])
    web = await fake.create_container(
        {
            "image": BUSYBOX,
            "name": "web",
            "command": ["httpd", "-f", "-p", "8888", "-h", "/var/www"],
            **published(),
        }
    )
    await fake.start_container(web)
    su = await fake.create_container(
        {"image": BUSYBOX, "name": "su", "command": ["jupyterhub-singleuser"], **published()}
    )
    await fake.start_container(su)
    url = f"http://127.0.0.1:{(await fake.port(web, 8888))[0]['HostPort']}/"
    assert (await http_get(url))[0] == 200
    await fake.create_service(
        {"Name": "svc", "TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Command": ["sleep", "60"]}}}
    )
    stream = fake.events()
    waiting = asyncio.ensure_future(stream.__anext__())
    pull = asyncio.ensure_future(_drain(fake.pull_image("reg.local/slow:1")))
    fake.faults.exit_after_start("*", after=30)
    late = await fake.create_container({"image": BUSYBOX, "name": "late", "command": ["sleep", "60"]})
    await fake.start_container(late)
    await asyncio.sleep(0.05)
    assert fake.live_tasks

    await asyncio.wait_for(fake.close(), 5)

    assert fake.live_tasks == []
    await asyncio.wait_for(_rest(waiting, stream), 2)
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(pull, 2)
    assert isinstance(await http_get(url), OSError)
    await stream.aclose()
    await asyncio.sleep(0)
    assert _others() - before == set()


async def test_close_is_idempotent_and_then_refuses_calls():
    fake = FakeDocker()
    await fake.ping()
    await fake.close()
    await fake.close()
    with pytest.raises(EngineUnavailable):
        await fake.ping()


async def test_async_context_manager_closes(fake_docker):
    async with FakeDocker() as fake:
        assert await fake.ping()
    with pytest.raises(EngineUnavailable):
        await fake.ping()


def test_constructor_needs_no_loop():
    fake = FakeDocker(swarm=False, pull_speed=1, processes=True)
    fake.add_image(BUSYBOX)
    fake.registry.add("reg.local/x:1")
    assert fake.live_tasks == []


async def _rest(first: asyncio.Future, stream) -> None:
    """Read the stream to its end: close() must end it, not leave it hanging."""
    try:
        await first
    except StopAsyncIteration:
        return
    async for _ in stream:
        pass


async def _drain(stream):
    return [ev async for ev in stream]
