"""poll() from the shared, event-driven container index (one list + one stream per engine)."""

from __future__ import annotations

import asyncio
import time

import pytest

from dockerspawner import DockerSpawner, probe
from dockerspawner.index import close_indexes, index_for

IMAGE = "quay.io/jupyterhub/singleuser:test"


@pytest.fixture(autouse=True)
async def _stop_indexes():
    yield
    await close_indexes()


async def _started(make_spawner, n: int, **traits) -> list[DockerSpawner]:
    spawners = [make_spawner(f"user{i}", image=IMAGE, **traits) for i in range(n)]
    await asyncio.gather(*(sp.start() for sp in spawners))
    return spawners


async def test_polling_many_servers_costs_no_inspects(fake, make_spawner):
    spawners = await _started(make_spawner, 20)
    fake.calls.clear()
    # servers that changed just before the index's list are invalidated by its event
    # replay and inspected once; then every poll is answered from the index
    for round_ in range(20):  # the first poll makes the index; it consumes its replay after
        before = fake.calls.count("inspect_container")
        assert await asyncio.gather(*(sp.poll() for sp in spawners)) == [None] * 20
        if round_ and fake.calls.count("inspect_container") == before:
            break
        await asyncio.sleep(0.1)
    warmup = fake.calls.count("inspect_container")
    assert warmup <= 40
    for _ in range(5):  # five poll intervals in the steady state
        assert await asyncio.gather(*(sp.poll() for sp in spawners)) == [None] * 20
    assert fake.calls.count("inspect_container") == warmup
    assert fake.calls.count("list_containers") == 1 and fake.calls.count("events") == 1
    await asyncio.gather(*(sp.stop() for sp in spawners))


async def test_without_the_index_every_poll_is_an_inspect(fake, make_spawner):
    spawners = await _started(make_spawner, 5, poll_from_events=False)
    fake.calls.clear()
    await asyncio.gather(*(sp.poll() for sp in spawners))
    assert fake.calls.count("inspect_container") == 5
    await asyncio.gather(*(sp.stop() for sp in spawners))


async def test_killed_from_outside_is_seen_at_the_next_poll(fake, make_spawner):
    (sp,) = await _started(make_spawner, 1)
    assert await sp.poll() is None
    await fake.kill_container(sp.object_id, signal="KILL")
    await asyncio.sleep(0.05)
    status = await sp.poll()
    assert "ExitCode=137" in str(status)


async def test_removed_from_outside_is_stopped(fake, make_spawner):
    (sp,) = await _started(make_spawner, 1)
    assert await sp.poll() is None
    await fake.remove_container(sp.object_id, force=True)
    await asyncio.sleep(0.05)
    assert await sp.poll() == 0


async def test_events_missed_while_the_engine_was_down_are_caught_by_the_resync(fake, make_spawner):
    a, b = await _started(make_spawner, 2)
    assert await a.poll() is None
    index = index_for(a.docker_engine)
    fake.down()
    assert await a.poll() is None  # unknown while down: still running, never "dead"
    fake.up()
    back = time.monotonic()
    fake.exit_container(b.object_id, 3)  # the broken stream never delivers this event
    for _ in range(100):  # bounded: the index relists after the stream broke
        if index.in_sync and index.synced_at > back:
            break
        await asyncio.sleep(0.05)
    assert index.in_sync and index.synced_at > back
    assert await a.poll() is None
    assert "ExitCode=3" in str(await b.poll())


async def test_a_poll_while_the_engine_is_away_does_not_wait_for_the_index_to_retry(fake, make_spawner):
    (sp,) = await _started(make_spawner, 1)
    assert await sp.poll() is None
    relists = fake.calls.count("list_containers")
    fake.down()
    for _ in range(200):  # bounded: the broken stream makes the follower relist, which fails
        if fake.calls.count("list_containers") > relists:
            break
        await asyncio.sleep(0.01)
    failed = fake.calls.count("list_containers")
    assert failed > relists
    # the follower now pauses before its next relist; the poll falls back to an inspect at once
    assert await sp.poll() is None
    assert fake.calls.count("list_containers") == failed
    fake.up()


async def test_a_subclass_with_its_own_get_object_is_polled_through_it(fake, make_spawner):
    seen = []

    class Custom(DockerSpawner):
        async def get_object(self):
            seen.append(self.object_id)
            return await super().get_object()

    sp = make_spawner("alice", image=IMAGE, spawner_class=Custom)
    await sp.start()
    seen.clear()
    assert await sp.poll() is None
    assert seen == [sp.object_id]
    await sp.stop()


async def _slow_to_answer(monkeypatch, refusals: int) -> None:
    """The server refuses the first ``refusals`` HTTP attempts of a start, then answers."""
    real = probe.answers_http
    left = [refusals]

    async def answers_http(*args, **kwargs):
        if left[0] > 0:
            left[0] -= 1
            return False
        return await real(*args, **kwargs)

    monkeypatch.setattr(probe, "answers_http", answers_http)


@pytest.mark.parametrize("from_events", [True, False])
async def test_waiting_for_http_asks_the_index_not_the_engine(fake, make_spawner, monkeypatch, from_events):
    (warm,) = await _started(make_spawner, 1, poll_from_events=from_events)
    assert await warm.poll() is None  # the index follows the engine before the start below
    await asyncio.sleep(0.05)
    await _slow_to_answer(monkeypatch, refusals=6)
    sp = make_spawner("slow", image=IMAGE, poll_from_events=from_events)
    fake.calls.clear()
    await sp.start()
    inspects = fake.calls.count("inspect_container")
    # one inspect after the start, then at most a few until the index has seen the start's events
    assert inspects <= 4 if from_events else inspects >= 7, inspects
    await asyncio.gather(sp.stop(), warm.stop())


async def test_a_server_that_dies_while_the_hub_waits_for_http_fails_the_start(fake, make_spawner, monkeypatch):
    (warm,) = await _started(make_spawner, 1)
    assert await warm.poll() is None
    sp = make_spawner("dies", image=IMAGE)
    attempts = []

    async def answers_http(host, port, path, **kwargs):
        attempts.append(path)
        if len(attempts) == 3:
            fake.exit_container(sp.object_id, 5)
        return False

    monkeypatch.setattr(probe, "answers_http", answers_http)
    with pytest.raises(Exception, match="exit code 5|ExitCode=5|exited"):
        await asyncio.wait_for(sp.start(), 10)
    assert len(attempts) <= 6  # noticed at the next attempts, not at http_timeout
    await warm.stop()
