"""Contract: the event stream."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.engine


async def _collect(engine, filters, out: list, ready: asyncio.Event) -> None:
    stream = engine.events(filters=filters)
    try:
        ready.set()
        async for ev in stream:
            out.append(ev)
    finally:
        await stream.aclose()


async def _wait_for(out: list, pred, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not any(pred(ev) for ev in out):
        assert time.monotonic() < deadline, f"no such event within {timeout}s; got {out}"
        await asyncio.sleep(0.05)


async def _start_listening(engine, filters) -> tuple[list, asyncio.Task]:
    out: list = []
    ready = asyncio.Event()
    task = asyncio.create_task(_collect(engine, filters, out, ready))
    await ready.wait()
    # The engine subscribes once the request reached it; give it a moment so
    # the first event we cause is not older than the subscription.
    await asyncio.sleep(0.3)
    return out, task


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    try:
        await asyncio.wait_for(task, 5)
    except asyncio.CancelledError:
        pass


async def test_container_lifecycle_events(engine, make_container, label_filters, unique_name):
    out, task = await _start_listening(engine, {"type": "container", "label": label_filters})
    try:
        name = unique_name("ev")
        cid = await make_container(["sh", "-c", "exit 2"], name=name, labels={"ct.ev": "1"})
        await engine.start_container(cid)
        await _wait_for(out, lambda ev: ev.get("Action") == "die" and ev["Actor"]["ID"] == cid)
    finally:
        await _stop(task)
    mine = [ev for ev in out if ev["Actor"]["ID"] == cid]
    actions = [ev["Action"] for ev in mine]
    assert actions.index("create") < actions.index("start") < actions.index("die")
    for ev in mine:
        assert ev["Type"] == "container"
        assert isinstance(ev["time"], int) and isinstance(ev["timeNano"], int)
        assert ev["Actor"]["Attributes"]["name"] == name
        assert ev["Actor"]["Attributes"]["ct.ev"] == "1"
    die = next(ev for ev in mine if ev["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "2"


async def test_events_filtered_by_label(engine, make_container, label_filters):
    out, task = await _start_listening(engine, {"type": "container", "label": label_filters + ["ct.ev=yes"]})
    try:
        other = await make_container(["true"], labels={"ct.ev": "no"})
        await engine.start_container(other)
        wanted = await make_container(["true"], labels={"ct.ev": "yes"})
        await engine.start_container(wanted)
        await _wait_for(out, lambda ev: ev.get("Action") == "die" and ev["Actor"]["ID"] == wanted)
        await engine.wait_container(other, timeout=10)
    finally:
        await _stop(task)
    assert {ev["Actor"]["ID"] for ev in out} == {wanted}


async def test_events_filtered_by_event_name(engine, make_container, label_filters):
    """The exit watcher listens for ``die`` only (Podman 4.3 calls it "died"
    inside its filter: the backend filters actions itself)."""
    out, task = await _start_listening(engine, {"type": "container", "event": ["die"], "label": label_filters})
    try:
        cid = await make_container(["true"], start=True)
        await _wait_for(out, lambda ev: ev["Actor"]["ID"] == cid)
        await engine.wait_container(cid, timeout=10)
        await asyncio.sleep(0.3)
    finally:
        await _stop(task)
    assert [ev["Action"] for ev in out] == ["die"]


async def test_event_filter_names_an_action_without_its_detail(engine, docker_only, make_container, label_filters):
    """``exec_start`` selects ``exec_start: true``, as dockerd's filter matches it
    (Podman 4.3 sends no ``exec_start`` event: docs/compatibility.md, Podman)."""
    cid = await make_container(start=True)
    out, task = await _start_listening(engine, {"type": "container", "event": ["exec_start"], "label": label_filters})
    try:
        await engine.exec_run(cid, ["true"])
        await _wait_for(out, lambda ev: ev["Actor"]["ID"] == cid)
    finally:
        await _stop(task)
    assert {ev["Action"].split(":", 1)[0] for ev in out} == {"exec_start"}


async def test_events_since_replays_past_events(engine, make_container, label_filters):
    since = time.time() - 1
    cid = await make_container(["true"], start=True)
    await engine.wait_container(cid, timeout=10)
    seen: list[str] = []
    stream = engine.events(filters={"type": "container", "label": label_filters}, since=since)

    async def read() -> None:
        async for ev in stream:
            if ev["Actor"]["ID"] == cid:
                seen.append(ev["Action"])
                if ev["Action"] == "die":
                    return

    try:
        await asyncio.wait_for(read(), 10)
    finally:
        await stream.aclose()
    assert seen[0] == "create" and seen[-1] == "die"


async def test_closing_the_stream_after_an_event(engine, label_filters, make_container):
    stream = engine.events(filters={"type": "container", "label": label_filters})
    first = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.3)
    await make_container(["true"])
    ev = await asyncio.wait_for(first, 10)
    assert ev["Action"] == "create"
    await asyncio.wait_for(stream.aclose(), 5)
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_cancelling_the_reader_ends_the_stream(engine, label_filters):
    stream = engine.events(filters={"type": "container", "label": label_filters})
    reader = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.3)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert reader.cancelled()
    await asyncio.wait_for(stream.aclose(), 5)
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
