"""Fault injection: failing and slow calls, dying containers, engine down/up, slow pulls."""

from __future__ import annotations

import asyncio
import time

import pytest

from dockerspawner.engine import Conflict, EngineError, EngineUnavailable, NotFound


async def test_fail_next_call_then_succeed(fake, run):
    fake.faults.fail("start_container", EngineError("boom", 500), times=1)
    cid = await run(start=False)
    with pytest.raises(EngineError) as info:
        await fake.start_container(cid)
    assert info.value.status == 500 and info.value.explanation == "boom"
    assert (await fake.inspect_container(cid))["State"]["Status"] == "created"
    await fake.start_container(cid)
    assert (await fake.inspect_container(cid))["State"]["Running"] is True


async def test_fail_times_counts_and_raises_fresh_copies(fake):
    err = EngineUnavailable("flaky")
    fake.faults.fail("ping", err, times=2)
    raised = []
    for _ in range(2):
        with pytest.raises(EngineUnavailable) as info:
            await fake.ping()
        raised.append(info.value)
    assert await fake.ping() is True
    assert raised[0] is not raised[1] and raised[0] is not err
    assert all(e.explanation == "flaky" for e in raised)


async def test_fail_until_cleared_with_wildcard_and_class(fake, run):
    cid = await run()
    fake.faults.fail("*_container", Conflict, times=None)
    for _ in range(3):
        with pytest.raises(Conflict):
            await fake.inspect_container(cid)
    assert await fake.ping()
    fake.faults.clear()
    assert (await fake.inspect_container(cid))["Id"] == cid


async def test_fail_matches_by_name_glob(fake, run):
    fake.faults.fail("create_container", EngineError("no space left", 500), match="jupyter-bob*", times=None)
    await run(name="jupyter-alice")
    with pytest.raises(EngineError, match="no space left"):
        await run(name="jupyter-bob")
    assert [c["Names"] for c in await fake.list_containers()] == [["/jupyter-alice"]]


async def test_delay_slows_only_that_operation(fake, run):
    cid = await run()
    fake.faults.delay("inspect_container", 0.2, times=1)
    t0 = time.monotonic()
    await fake.inspect_container(cid)
    assert time.monotonic() - t0 >= 0.19
    t0 = time.monotonic()
    await fake.inspect_container(cid)
    await fake.list_containers()
    assert time.monotonic() - t0 < 0.15


async def test_container_exits_after_start_with_logs(fake, run):
    fake.faults.exit_after_start(
        "crashy-*", after=0.05, exit_code=3, stdout=["starting"], stderr=["Traceback: boom"]
    )
    ok = await run(name="steady-1")
    cid = await run(name="crashy-1")
    assert await fake.wait_container(cid, timeout=5) == 3
    state = (await fake.inspect_container(cid))["State"]
    assert state["Status"] == "exited" and state["OOMKilled"] is False
    assert await fake.container_logs(cid, stdout=False) == "Traceback: boom\n"
    assert await fake.container_logs(cid, stderr=False) == "starting\n"
    assert (await fake.inspect_container(ok))["State"]["Running"] is True


async def test_oom_kill(fake, run):
    fake.faults.exit_after_start("*", oom=True)
    events = []

    async def watch():
        async for ev in fake.events(filters={"event": ["oom", "die"]}):
            events.append((ev["Action"], ev["Actor"]["Attributes"].get("exitCode")))
            if ev["Action"] == "die":
                return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    cid = await run()
    assert await fake.wait_container(cid, timeout=5) == 137
    await asyncio.wait_for(watcher, 5)
    state = (await fake.inspect_container(cid))["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert events == [("oom", None), ("die", "137")]


async def test_exit_container_now(fake, run):
    cid = await run()
    fake.exit_container(cid, 42, stderr=["bye"])
    state = (await fake.inspect_container(cid))["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 42)
    assert await fake.container_logs(cid) == "bye\n"


async def test_down_makes_every_call_unavailable_until_up(fake, run):
    cid = await run()
    fake.down()
    for call in (fake.ping(), fake.inspect_container(cid), fake.list_containers(), fake.version()):
        with pytest.raises(EngineUnavailable):
            await call
    with pytest.raises(EngineUnavailable):
        async for _ in fake.pull_image("busybox"):
            pass
    fake.up()
    assert await fake.ping() is True
    assert (await fake.inspect_container(cid))["State"]["Running"] is True


async def test_down_breaks_open_event_streams(fake):
    stream = fake.events()
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.01)
    fake.down()
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(first, 5)
    await stream.aclose()


async def test_down_with_stop_containers_kills_them(fake, run):
    cid = await run(host_config={"init": True})
    fake.down(stop_containers=True)
    fake.up()
    state = (await fake.inspect_container(cid))["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 143)


async def test_slow_pull_takes_size_over_speed(fake_docker_factory):
    fake = fake_docker_factory(pull_speed=2_000_000)
    fake.registry.add("reg.local/slow:1", layers=[400_000])
    t0 = time.monotonic()
    events = [ev async for ev in fake.pull_image("reg.local/slow:1")]
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 2, elapsed
    downloads = [ev for ev in events if ev.status == "Downloading"]
    assert downloads and downloads[-1].current == downloads[-1].total
    assert events[-1].status == "complete"


async def test_slow_pull_does_not_block_other_calls(fake_docker_factory):
    fake = fake_docker_factory(pull_speed=1_000_000)
    fake.registry.add("reg.local/big:1", layers=[1_000_000])
    pull = asyncio.ensure_future(_drain(fake.pull_image("reg.local/big:1")))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    assert await fake.ping()
    assert time.monotonic() - t0 < 0.1
    assert not pull.done()
    await asyncio.wait_for(pull, 5)


async def test_registry_fail_next_breaks_the_pull_midway(fake):
    fake.registry.add("reg.local/broken:1", layers=[10_000])
    fake.registry.fail_next("reg.local/broken:*", EngineError("unexpected EOF", 500))
    seen = []
    with pytest.raises(EngineError, match="unexpected EOF"):
        async for ev in fake.pull_image("reg.local/broken:1"):
            seen.append(ev.status)
    assert "Downloading" in seen and "complete" not in seen
    with pytest.raises(NotFound):
        await fake.inspect_image("reg.local/broken:1")
    assert [ev.status async for ev in fake.pull_image("reg.local/broken:1")][-1] == "complete"


async def test_swarm_rejected_task_has_err(fake):
    fake.swarm.fail_next_task("svc-*", state="rejected", err="no suitable node")
    sid = await fake.create_service(
        {
            "Name": "svc-1",
            "TaskTemplate": {"ContainerSpec": {"Image": "local/busybox:test", "Command": ["sleep", "60"]}},
        }
    )
    task = await _wait_task(fake, sid, {"rejected"})
    assert task["Status"]["Err"] == "no suitable node"
    assert task["DesiredState"] == "shutdown"


async def test_swarm_task_fails_when_its_container_exits_nonzero(fake):
    spec = {
        "Name": "svc-2",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "local/busybox:test", "Command": ["sh", "-c", "exit 3"]},
            "RestartPolicy": {"Condition": "none"},
        },
    }
    sid = await fake.create_service(spec)
    task = await _wait_task(fake, sid, {"failed"})
    assert task["Status"]["Err"] == "task: non-zero exit (3)"
    assert task["Status"]["ContainerStatus"]["ExitCode"] == 3


async def test_swarm_task_walks_the_states(fake_docker_factory):
    fake = fake_docker_factory(task_step_delay=0.02)
    fake.add_image("local/busybox:test")
    sid = await fake.create_service(
        {
            "Name": "svc-3",
            "TaskTemplate": {"ContainerSpec": {"Image": "local/busybox:test", "Command": ["sleep", "60"]}},
        }
    )
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not seen or seen[-1] != "running"):
        (task,) = await fake.list_tasks(filters={"service": sid})
        if not seen or seen[-1] != task["Status"]["State"]:
            seen.append(task["Status"]["State"])
        await asyncio.sleep(0.005)
    assert seen[-1] == "running"
    order = ["new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    assert len(seen) >= 4


async def _drain(stream):
    return [ev async for ev in stream]


async def _wait_task(fake, sid: str, states: set[str], timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in await fake.list_tasks(filters={"service": sid}):
            if task["Status"]["State"] in states:
                return task
        await asyncio.sleep(0.01)
    raise AssertionError(f"no task of {sid} reached {states}")
