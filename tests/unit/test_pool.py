"""The docker-py backend's pool: calls of the oldest spawn first, bounded, and it ends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dockerspawner import DockerSpawner
from dockerspawner.engine.pool import OldestFirstPool, oldest_first, spawn_began

IMAGE = "quay.io/jupyterhub/singleuser:test"


def _blocked(pool: OldestFirstPool) -> threading.Event:
    """Occupy the pool's only worker until the returned event is set."""
    release, busy = threading.Event(), threading.Event()
    pool.submit(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(10)
    return release


def test_a_free_worker_takes_the_call_of_the_oldest_spawn():
    pool = OldestFirstPool(1, thread_name_prefix="t-pool")
    ran: list[str] = []
    try:
        release = _blocked(pool)
        futures = []
        for name, began in [("late", 30.0), ("early", 10.0), ("middle", 20.0), ("early-2", 10.0)]:
            with oldest_first(began):
                futures.append(pool.submit(ran.append, name))
        futures.append(pool.submit(ran.append, "outside a spawn"))  # ranked by now: after them all
        release.set()
        for f in futures:
            f.result(10)
        assert ran == ["early", "early-2", "middle", "late", "outside a spawn"]
    finally:
        pool.shutdown()


def test_without_oldest_first_calls_run_in_the_order_they_came():
    pool = OldestFirstPool(1, thread_name_prefix="t-pool", by_spawn=False)
    ran: list[str] = []
    try:
        release = _blocked(pool)
        futures = []
        for name, began in [("late", 30.0), ("early", 10.0)]:
            with oldest_first(began):
                futures.append(pool.submit(ran.append, name))
        release.set()
        for f in futures:
            f.result(10)
        assert ran == ["late", "early"]
    finally:
        pool.shutdown()


async def test_the_docker_engine_option_turns_it_off(monkeypatch):
    from dockerspawner.engine.connect import forget_engines

    made: list[bool] = []
    real_init = OldestFirstPool.__init__

    def recording(self, *args, **kwargs):
        made.append(kwargs.get("by_spawn", True))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(OldestFirstPool, "__init__", recording)
    sp = DockerSpawner(engine="docker", engine_options={"oldest_first": False})
    try:
        assert sp.docker_engine.engine_kind == "docker"  # made here, without IO
    finally:
        for engine in forget_engines():
            await engine.close()
    assert made == [False]


def test_calls_return_and_raise_like_an_executor():
    pool = OldestFirstPool(2, thread_name_prefix="t-pool")
    try:
        assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(10) == 5
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(10)
    finally:
        pool.shutdown()


def test_bounded_and_all_workers_started_by_the_first():
    pool = OldestFirstPool(3, thread_name_prefix="t-pool")
    gate = threading.Barrier(4)
    seen: set[int] = set()

    def held() -> None:
        seen.add(threading.get_ident())
        gate.wait(10)

    try:
        futures = [pool.submit(held) for _ in range(3)]
        gate.wait(10)  # three calls at once: all three workers run
        for f in futures:
            f.result(10)
        assert len(seen) == 3
        assert sum(t.name.startswith("t-pool_") for t in threading.enumerate()) == 3
    finally:
        pool.shutdown()
    assert not any(t.name.startswith("t-pool_") for t in threading.enumerate())


def test_shutdown_runs_what_was_queued_and_refuses_more():
    pool = OldestFirstPool(1, thread_name_prefix="t-pool")
    release = _blocked(pool)
    queued = pool.submit(lambda: "ran")
    pool.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    release.set()
    assert queued.result(10) == "ran"
    pool.shutdown()


def test_shutdown_can_cancel_what_was_queued():
    pool = OldestFirstPool(1, thread_name_prefix="t-pool")
    release = _blocked(pool)
    queued = pool.submit(lambda: "ran")
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert queued.cancelled()
    pool.shutdown()


async def test_a_spawn_ranks_its_engine_calls_by_when_it_began(fake_docker, make_spawner):
    fake_docker.add_image(IMAGE, config={"Cmd": ["jupyterhub-singleuser"]})
    seen: dict[str, float | None] = {}

    class Recording(DockerSpawner):
        async def create_object(self):
            seen[self.user.name] = spawn_began.get()
            return await super().create_object()

    first = make_spawner("first", image=IMAGE, spawner_class=Recording)
    second = make_spawner("second", image=IMAGE, spawner_class=Recording)
    started = asyncio.ensure_future(first.start())
    await asyncio.sleep(0.01)
    await asyncio.gather(started, second.start())
    assert seen["first"] is not None and seen["second"] is not None
    assert seen["first"] < seen["second"]
    assert spawn_began.get() is None  # not left set in the caller
    await asyncio.gather(first.stop(), second.stop())
