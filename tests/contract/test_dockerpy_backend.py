"""What only the docker-py backend promises: threads, lanes, shared pulls,
client configuration and error mapping."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import docker
import pytest
import requests

from dockerspawner.engine import (
    Conflict,
    EngineError,
    EngineUnavailable,
    InvalidSpec,
    NotFound,
    dockerpy,
)
from dockerspawner.engine.dockerpy import DockerPyEngine, map_error

pytestmark = pytest.mark.engine


@pytest.fixture
def engine(real_engine: Any) -> Any:
    """This file tests the docker-py backend itself: only real engines."""
    return real_engine


@pytest.fixture
async def backend(engine: Any) -> DockerPyEngine:
    """The real engine's ``DockerPyEngine``, client made."""
    assert isinstance(engine, DockerPyEngine)
    await engine.ping()
    return engine


def _same_engine(backend: DockerPyEngine, **kwargs: Any) -> DockerPyEngine:
    """Another ``DockerPyEngine`` on the engine ``backend`` talks to."""
    eng = DockerPyEngine(client_kwargs={"base_url": backend.base_url}, use_env=False, **kwargs)
    eng.engine_kind = backend.engine_kind
    return eng


class Concurrency:
    """Counts how many wrapped calls run at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.threads: set[int] = set()

    def wrap(self, fn):
        def wrapped(*args, **kwargs):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.threads.add(threading.get_ident())
            try:
                time.sleep(self.hold)
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        return wrapped


# -- threads and lanes ----------------------------------------------------------------


async def test_pool_is_bounded(backend, monkeypatch):
    eng = _same_engine(backend, max_workers=3)
    try:
        await eng.ping()
        counter = Concurrency(hold=0.2)
        monkeypatch.setattr(eng._api, "version", counter.wrap(eng._api.version))
        results = await asyncio.gather(*(eng.version() for _ in range(7)))
        assert all(r["ApiVersion"] for r in results)
        assert counter.peak == 3
    finally:
        await eng.close()


async def test_default_pool_runs_calls_in_parallel_off_the_loop(backend, monkeypatch):
    counter = Concurrency(hold=0.3)
    monkeypatch.setattr(backend._api, "version", counter.wrap(backend._api.version))
    await asyncio.gather(*(backend.version() for _ in range(6)))
    assert counter.peak == 6
    assert threading.get_ident() not in counter.threads


async def test_blocked_pull_does_not_block_other_calls(backend, test_image, monkeypatch):
    eng = _same_engine(backend, max_workers=1)
    release = threading.Event()
    started = threading.Event()

    def stuck_pull(*args, **kwargs):
        started.set()
        release.wait(15)
        raise docker.errors.NotFound("released")

    try:
        await eng.ping()
        monkeypatch.setattr(eng._api, "pull", stuck_pull)
        pulls = [asyncio.create_task(_drain(eng.pull_image(f"local/ct-stuck-{i}:x"))) for i in range(3)]
        assert await asyncio.to_thread(started.wait, 5)
        t0 = time.monotonic()
        info = await asyncio.wait_for(eng.inspect_image(test_image), 5)
        assert info["Id"].startswith("sha256:")
        assert time.monotonic() - t0 < 2
        assert not any(p.done() for p in pulls)
    finally:
        release.set()
        await eng.close()
    for p in pulls:
        with pytest.raises(NotFound):
            await asyncio.wait_for(p, 10)


async def test_waiting_on_a_container_does_not_take_a_pool_slot(backend, make_container):
    eng = _same_engine(backend, max_workers=1)
    try:
        cid = await make_container(start=True)
        waits = [asyncio.create_task(eng.wait_container(cid)) for _ in range(2)]
        await asyncio.sleep(0.2)
        info = await asyncio.wait_for(eng.inspect_container(cid), 5)
        assert info["State"]["Running"] is True
        await asyncio.wait_for(eng.kill_container(cid), 5)
        assert await asyncio.wait_for(asyncio.gather(*waits), 10) == [137, 137]
    finally:
        await eng.close()


async def test_first_use_makes_the_client_off_the_loop(backend, monkeypatch):
    made_in: list[int] = []
    real = docker.APIClient

    def recording(*args, **kwargs):
        made_in.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(dockerpy.docker, "APIClient", recording)
    eng = _same_engine(backend)
    try:
        assert made_in == []
        await asyncio.gather(*(eng.ping() for _ in range(5)))
        assert len(made_in) == 1
        assert made_in[0] != threading.get_ident()
    finally:
        await eng.close()


async def test_first_use_starts_every_worker_off_the_loop(backend, monkeypatch):
    """Thread.start() waits for the new thread: the pool's workers are all started
    by its first worker, not one by one on the loop by the first burst."""
    started: list[tuple[threading.Thread, int]] = []
    real_start = threading.Thread.start

    def recording(self, *args, **kwargs):
        started.append((self, threading.get_ident()))
        return real_start(self, *args, **kwargs)

    def workers() -> list[int]:
        # this engine's pool only: other engines' streams start threads of their own meanwhile
        return [by for thread, by in started if thread in eng._pool._threads]

    eng = _same_engine(backend, max_workers=6)
    monkeypatch.setattr(threading.Thread, "start", recording)
    try:
        await eng.ping()
        assert len(workers()) == 6
        assert workers().count(threading.get_ident()) == 1  # only the first, from the loop
        await asyncio.gather(*(eng.version() for _ in range(12)))
        assert len(workers()) == 6
    finally:
        await eng.close()


async def _drain(stream) -> list:
    return [ev async for ev in stream]


# -- shared pulls --------------------------------------------------------------------


async def test_concurrent_pulls_share_one_engine_pull(backend, registry_image, monkeypatch):
    real_pull = backend._api.pull
    calls: list[tuple] = []
    gate = threading.Event()

    def gated_pull(*args, **kwargs):
        calls.append(args)
        events = iter(real_pull(*args, **kwargs))
        yield next(events)
        gate.wait(15)
        yield from events

    monkeypatch.setattr(backend._api, "pull", gated_pull)
    first = asyncio.create_task(_drain(backend.pull_image(registry_image.ref)))
    await asyncio.sleep(0.3)
    late = [asyncio.create_task(_drain(backend.pull_image(registry_image.ref))) for _ in range(3)]
    await asyncio.sleep(0.1)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *late), 60)
    assert len(calls) == 1
    image_id = (await backend.inspect_image(registry_image.ref))["Id"]
    for events in results:
        assert events == results[0]
        assert events[-1].status == "complete" and events[-1].image_id == image_id
    assert len(results[0]) > 2


async def test_a_later_pull_starts_a_new_engine_pull(backend, registry_image, monkeypatch):
    real_pull = backend._api.pull
    calls: list[tuple] = []

    def counting_pull(*args, **kwargs):
        calls.append(args)
        return real_pull(*args, **kwargs)

    monkeypatch.setattr(backend._api, "pull", counting_pull)
    await _drain(backend.pull_image(registry_image.ref))
    await _drain(backend.pull_image(registry_image.ref))
    assert len(calls) == 2


async def test_concurrent_failing_pulls_share_the_error(backend, registry_image, monkeypatch):
    real_pull = backend._api.pull
    calls: list[tuple] = []

    def counting_pull(*args, **kwargs):
        calls.append(args)
        time.sleep(0.3)
        return real_pull(*args, **kwargs)

    monkeypatch.setattr(backend._api, "pull", counting_pull)
    results = await asyncio.gather(
        *(_drain(backend.pull_image(registry_image.missing_tag_ref)) for _ in range(3)),
        return_exceptions=True,
    )
    assert len(calls) == 1
    assert all(isinstance(r, NotFound) for r in results), results


@pytest.mark.parametrize(
    "message, error",
    [
        ("manifest unknown: manifest unknown", NotFound),
        ("initializing source docker://x:1: reading manifest 1 in x: name unknown", NotFound),
        ("unexpected EOF while writing layer", EngineError),
    ],
)
async def test_error_event_inside_a_200_stream_raises(backend, monkeypatch, message, error):
    def podman_like_pull(*args, **kwargs):
        yield {"status": "Trying to pull", "id": "abc"}
        yield {"progressDetail": {}, "errorDetail": {"message": message}, "error": message}

    monkeypatch.setattr(backend._api, "pull", podman_like_pull)
    seen = []
    with pytest.raises(error) as info:
        async for ev in backend.pull_image("127.0.0.1:5000/ct/podman-like:x"):
            seen.append(ev)
    assert type(info.value) is error
    assert message in str(info.value)
    assert [ev.status for ev in seen] == ["Trying to pull"]


# -- configuration -------------------------------------------------------------------


def test_client_kwargs_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    eng = DockerPyEngine(max_workers=40)
    kwargs = eng.client_kwargs()
    assert kwargs["version"] == "auto"
    assert kwargs["base_url"] == "tcp://127.0.0.1:1"
    assert kwargs["max_pool_size"] >= 40
    override = DockerPyEngine(client_kwargs={"base_url": "unix:///x.sock", "version": "1.41"})
    assert override.client_kwargs()["base_url"] == "unix:///x.sock"
    assert override.client_kwargs()["version"] == "1.41"
    assert "base_url" not in DockerPyEngine(use_env=False).client_kwargs()


def test_tls_config_becomes_tls(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a cert")
    kwargs = DockerPyEngine(tls_config={"ca_cert": str(ca), "verify": True}).client_kwargs()
    assert isinstance(kwargs["tls"], docker.tls.TLSConfig)
    assert kwargs["tls"].ca_cert == str(ca)


async def test_env_docker_host_is_honoured(backend, monkeypatch, tmp_path):
    missing = tmp_path / "ct-no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{missing}")
    eng = DockerPyEngine()
    try:
        with pytest.raises(EngineUnavailable) as info:
            await eng.ping()
        assert str(missing) in str(info.value)
    finally:
        await eng.close()
    good = DockerPyEngine(client_kwargs={"base_url": backend.base_url})
    try:
        assert await good.ping() is True
    finally:
        await good.close()
    monkeypatch.setenv("DOCKER_HOST", backend.base_url)
    via_env = DockerPyEngine()
    try:
        assert (await via_env.version())["ApiVersion"]
    finally:
        await via_env.close()


async def test_a_socket_engine_does_not_look_up_proxies_on_every_call(backend, monkeypatch):
    """requests reads proxy variables and .netrc on each call unless told not to;
    none of them applies to a unix socket. A TCP engine keeps them (HTTPS_PROXY)."""
    looked: list = []
    real = requests.sessions.get_environ_proxies

    def recording(*args, **kwargs):
        looked.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", recording)
    assert backend.base_url.startswith("unix://"), backend.base_url
    eng = DockerPyEngine(client_kwargs={"base_url": backend.base_url})
    try:
        for _ in range(3):
            assert await eng.ping() is True
            await eng.version()
    finally:
        await eng.close()
    assert len(looked) <= 1, looked  # the client's own version lookup, before it can be told
    looked.clear()
    tcp = DockerPyEngine(client_kwargs={"base_url": "tcp://127.0.0.1:1"}, use_env=False)
    try:
        with pytest.raises(EngineUnavailable):
            await tcp.ping()
    finally:
        await tcp.close()
    assert looked and all(url.startswith("http://127.0.0.1:1/") for url in looked), looked


async def test_missing_socket_is_unavailable_and_named(tmp_path):
    path = tmp_path / "nothing-here.sock"
    eng = DockerPyEngine(client_kwargs={"base_url": f"unix://{path}"}, use_env=False)
    try:
        for call in (eng.ping(), eng.inspect_container("x"), _drain(eng.pull_image("x:1"))):
            with pytest.raises(EngineUnavailable) as info:
                await call
            assert str(path) in str(info.value)
    finally:
        await eng.close()


async def test_refused_tcp_port_is_unavailable():
    eng = DockerPyEngine(client_kwargs={"base_url": "tcp://127.0.0.1:9", "timeout": 5}, use_env=False)
    try:
        with pytest.raises(EngineUnavailable) as info:
            await eng.version()
        assert "127.0.0.1:9" in str(info.value)
    finally:
        await eng.close()


async def test_close_is_idempotent_and_final(backend):
    eng = _same_engine(backend)
    await eng.ping()
    await eng.close()
    await eng.close()
    with pytest.raises(EngineUnavailable):
        await eng.ping()


async def test_event_reader_threads_end(backend, label_filters):
    def readers() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "dockerpy-events" and t.is_alive())

    before = readers()
    streams = [backend.events(filters={"label": label_filters}) for _ in range(3)]
    tasks = [asyncio.create_task(s.__anext__()) for s in streams]
    await asyncio.sleep(0.3)
    assert readers() == before + 3
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for s in streams:
        await s.aclose()
    deadline = time.monotonic() + 5
    while readers() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert readers() == before


async def test_close_ends_open_event_streams(backend, label_filters):
    eng = _same_engine(backend)
    stream = eng.events(filters={"label": label_filters})
    reader = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.3)
    await eng.close()
    with pytest.raises((EngineUnavailable, StopAsyncIteration)):
        await asyncio.wait_for(reader, 5)


# -- error mapping -------------------------------------------------------------------


def _api_error(cls, status: int, message: str) -> Exception:
    response = requests.Response()
    response.status_code = status
    return cls(f"{status} error", response=response, explanation=message)


@pytest.mark.parametrize(
    "exc, expected, status",
    [
        (_api_error(docker.errors.NotFound, 404, "No such container: x"), NotFound, 404),
        (_api_error(docker.errors.ImageNotFound, 404, "No such image: x"), NotFound, 404),
        (_api_error(docker.errors.APIError, 409, "name in use"), Conflict, 409),
        (_api_error(docker.errors.APIError, 500, "boom"), EngineError, 500),
        (_api_error(docker.errors.APIError, 503, "swarm inactive"), EngineError, 503),
        (_api_error(docker.errors.APIError, 500, "update out of sequence"), EngineError, 500),
        (_api_error(docker.errors.APIError, 500, "x: rpc error: code = NotFound desc = network n not found"), NotFound, 500),
        (_api_error(docker.errors.APIError, 500, "can only kill running containers: container state improper"), Conflict, 500),
        (_api_error(docker.errors.APIError, 500, 'the container name "x" is already in use by 1234'), Conflict, 500),
        (_api_error(docker.errors.APIError, 500, "network name x already used: network already exists"), Conflict, 500),
        (_api_error(docker.errors.APIError, 500, "unable to find network with name or ID x: network not found"), NotFound, 500),
        (requests.exceptions.ConnectionError("refused"), EngineUnavailable, None),
        (requests.exceptions.ReadTimeout("slow"), EngineUnavailable, None),
        (FileNotFoundError(2, "No such file"), EngineUnavailable, None),
        (docker.errors.DockerException("Error while fetching server API version: x"), EngineUnavailable, None),
        (docker.errors.InvalidArgument("bad port"), InvalidSpec, 400),
        (docker.errors.InvalidVersion("too old"), InvalidSpec, 400),
    ],
)
def test_map_error(exc, expected, status):
    mapped = map_error(exc, "unix:///ct.sock")
    assert type(mapped) is expected
    assert mapped.status == status
    if expected is EngineUnavailable:
        assert "unix:///ct.sock" in str(mapped)
    else:
        assert str(exc.args[0] if not isinstance(exc, docker.errors.APIError) else exc.explanation) in str(mapped)
