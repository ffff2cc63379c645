"""Real-engine chaos: faults injected from outside the spawner, on a real dockerd.

Each test is one scenario of issue 11 §3, on the extra engine of ``rig.py``
(own network namespace; stopped and restarted here). The last test counts
what is left with the project's labels after all of them: it must be 0.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from dockerspawner import naming
from fakedocker.kit.engines import RUN_ID
from fakedocker.kit.spawners import start_spawner, stop_spawner

from .conftest import LEAKS, WAIT, managed_objects

pytestmark = pytest.mark.real_engine

_n = itertools.count(1)


def user(tag: str) -> str:
    """A user name no other test of this run uses."""
    return f"cx{next(_n)}-{tag}"


async def poll_until(spawner: Any, done, timeout: float = WAIT) -> Any:
    """Poll like the hub (each poll bounded) until ``done(status)``; the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = await asyncio.wait_for(spawner.poll(), WAIT)
        if done(status) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def owned(engine: Any, username: str, server: str = "") -> list[dict]:
    """The containers labelled for (username, server)."""
    filters = {"label": [f"{naming.LABEL_USER}={username}", f"{naming.LABEL_SERVER}={server}"]}
    return await engine.list_containers(all=True, filters=filters)


async def gone_within(engine: Any, username: str, server: str = "", timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while await owned(engine, username, server):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@pytest.mark.parametrize("remove", [True, False], ids=["remove", "keep"])
async def test_container_killed_from_outside(chaos_engine, engine, make_spawner, remove):
    name = user("kill")
    spawner = make_spawner(name, remove=remove)
    await start_spawner(spawner)
    assert await spawner.poll() is None
    chaos_engine.docker("kill", spawner.object_name)

    status = await poll_until(spawner, lambda s: s is not None)
    # 14's format: "ExitCode=137, Error='', FinishedAt=..."
    assert str(status).startswith("ExitCode=137,"), f"poll after docker kill: {status!r}"
    if remove:
        assert await gone_within(engine, name), "remove=True: the killed container is still there"
    else:
        (left,) = await owned(engine, name)
        assert left["State"] == "exited"
    await stop_spawner(spawner)
    if remove:
        assert await gone_within(engine, name)
    else:
        (left,) = await owned(engine, name)
        await engine.remove_container(left["Id"], force=True)  # remove=False keeps it: the admin's to remove


async def test_container_removed_from_outside(chaos_engine, engine, make_spawner):
    name = user("rm")
    spawner = make_spawner(name, remove=False)
    await start_spawner(spawner)
    first = spawner.object_id
    chaos_engine.docker("rm", "-f", spawner.object_name)

    status = await poll_until(spawner, lambda s: s is not None)
    assert status is not None, "poll says running for a container that was removed"
    await stop_spawner(spawner)
    await start_spawner(spawner)
    assert spawner.object_id != first
    (again,) = await owned(engine, name)
    assert again["State"] == "running" and await spawner.poll() is None
    spawner.remove = True
    await stop_spawner(spawner)
    assert await gone_within(engine, name)


async def answers(url: str) -> bool:
    from tornado.httpclient import AsyncHTTPClient

    try:
        resp = await AsyncHTTPClient().fetch(url + "/", request_timeout=5, raise_error=False)
    except OSError:
        return False
    return resp.code == 200


async def test_engine_stopped_and_restarted_while_servers_run(chaos_engine, engine, make_spawner):
    name = user("eng")
    servers = {
        "default": make_spawner(name, remove=True),
        "lab": make_spawner(name, "lab", remove=False),
        "inspect": make_spawner(name, "inspect", remove=True, poll_from_events=False),
    }
    urls = {key: await start_spawner(s) for key, s in servers.items()}
    assert [await s.poll() for s in servers.values()] == [None] * 3

    stopped_in = chaos_engine.stop()
    assert not chaos_engine.answers()
    polls = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the hub polls on: nobody is reported stopped
        for key, s in servers.items():
            status = await asyncio.wait_for(s.poll(), WAIT)
            assert status is None, f"{key}: poll said {status!r} while the engine was down"
            polls += 1
        await asyncio.sleep(0.2)
    assert polls >= 6
    assert all([await answers(u) for u in urls.values()]), "live-restore: the servers run on"

    restarted_in = chaos_engine.start()
    for key, s in servers.items():
        assert await asyncio.wait_for(s.poll(), WAIT) is None, f"{key}: not running after the restart"
    # poll is right again: a server killed now is reported with its exit code
    for key in ("default", "inspect"):
        chaos_engine.docker("kill", servers[key].object_name)
        status = await poll_until(servers[key], lambda st: st is not None)
        assert str(status).startswith("ExitCode=137,"), f"{key} after the restart: {status!r}"
    for s in servers.values():
        await asyncio.wait_for(stop_spawner(s), WAIT)
    left = await owned(engine, name, "lab")
    assert [c["State"] for c in left] == ["exited"], "remove=False: the stopped container stays"
    await engine.remove_container(left[0]["Id"], force=True)
    assert await gone_within(engine, name) and await gone_within(engine, name, "inspect")
    print(f"engine stopped in {stopped_in:.2f}s, {polls} polls while down, restarted in {restarted_in:.2f}s")


async def test_ten_users_at_once_and_a_duplicate_start(engine, make_spawner):
    names = [user(f"u{i}") for i in range(10)]
    spawners = [make_spawner(n, remove=True) for n in names]
    twin = make_spawner(names[1], remove=True)  # a second spawner object for the same server
    results = await asyncio.gather(
        *(start_spawner(s) for s in spawners), start_spawner(spawners[0]), start_spawner(twin),
        return_exceptions=True,
    )
    firsts, duplicate, second = results[:10], results[10], results[11]
    assert not [r for r in firsts if isinstance(r, BaseException)], firsts
    for extra, base in ((duplicate, firsts[0]), (second, firsts[1])):
        if isinstance(extra, BaseException):  # refused: with a message for the user
            assert str(getattr(extra, "jupyterhub_message", "") or extra), repr(extra)
        else:
            assert extra == base, f"a duplicate start answered {extra}, the first {base}"
    for n, s in zip(names, spawners):
        found = await owned(engine, n)
        assert len(found) == 1, f"{n}: {len(found)} containers: {[c['Names'] for c in found]}"
        assert found[0]["State"] == "running" and found[0]["Id"] == s.object_id
        assert await s.poll() is None
    await asyncio.gather(*(stop_spawner(s) for s in spawners))
    for n in names:
        assert await gone_within(engine, n)


async def test_start_cancelled_during_a_slow_pull(chaos_engine, engine, make_spawner, registry_addr):
    from .registry import ThrottledProxy, delete_image
    from .rig import HOST_ADDR, IMAGE

    docker = chaos_engine.docker
    proxy = ThrottledProxy(HOST_ADDR, registry_addr)
    await proxy.start()
    tag = user("pull")
    repo = f"cx-{RUN_ID}/{tag}"  # the registry may be shared: this run's own name
    ref = f"{proxy.addr}/{repo}:1"
    try:
        # an image with a layer the engine does not have: 3 MB that do not compress
        await asyncio.to_thread(docker, "run", "--name", tag, IMAGE, "sh", "-c", "head -c 3000000 /dev/urandom >/blob")
        await asyncio.to_thread(docker, "commit", tag, ref)
        await asyncio.to_thread(docker, "rm", tag)
        await asyncio.to_thread(docker, "push", ref, timeout=60)
        await asyncio.to_thread(docker, "rmi", ref)

        proxy.rate, proxy.sent = 100_000, 0
        spawner = make_spawner(tag, image=ref, remove=True)
        start = asyncio.ensure_future(start_spawner(spawner))
        deadline = time.monotonic() + WAIT
        while proxy.sent < 300_000:
            assert not start.done(), f"the start ended before the slow pull was under way: {start}"
            assert time.monotonic() < deadline, f"only {proxy.sent} bytes pulled in {WAIT}s"
            await asyncio.sleep(0.05)
        mid_pull = proxy.sent
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(start, WAIT)
        assert mid_pull < 3_000_000, "the pull was over before the cancel"
        assert await gone_within(engine, tag), "a cancelled start left a container"
        assert await managed_objects(engine) == [] and not spawner.object_id

        proxy.rate = None  # the next spawn works (and finishes the pull)
        await asyncio.wait_for(start_spawner(spawner), 40)
        assert await spawner.poll() is None and len(await owned(engine, tag)) == 1
        await stop_spawner(spawner)
        assert await gone_within(engine, tag)
        print(f"cancelled after {mid_pull} bytes of the throttled pull; {proxy.sent} bytes in all")
    finally:
        await asyncio.to_thread(docker, "rm", "-f", tag, check=False)
        await asyncio.to_thread(docker, "rmi", ref, check=False)
        await proxy.close()
        deleted = await asyncio.to_thread(delete_image, registry_addr, repo, "1")
    assert deleted, f"could not delete {repo}:1 from the registry at {registry_addr}"


def test_nothing_left_with_the_project_labels(chaos_engine):
    """Last in the module: every scenario above left nothing labelled by the
    project on the engine (each test's leftovers were counted after it)."""
    assert LEAKS == {}, f"left behind with the project's labels: {LEAKS}"
    out = chaos_engine.docker("ps", "-a", "-q", "--filter", f"label={naming.LABEL_MANAGED}={naming.MANAGED_BY}")
    volumes = chaos_engine.docker("volume", "ls", "-q", "--filter", f"label={naming.LABEL_MANAGED}")
    assert out.stdout.split() == [] and volumes.stdout.split() == []
