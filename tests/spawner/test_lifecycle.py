"""Nothing leaks and nothing stale is reused (issue 4, points 3 and 4).

- A failure or a cancellation at any point of ``start`` leaves no container, no
  helper container and no certs volume behind that were not there before.
- ``stop`` is idempotent ("not found" and "removal in progress" count as done); a
  start right after a stop (remove=True) waits for the old container to be gone.
- ``remove_orphans=True`` removes labelled containers whose owner left the database, once, at the
  first spawner; keeps owned ones and ones created after the sweep started; logs it.
- With remove=False a stopped container is reused only if it is what the spawner
  would create now; otherwise it is recreated, keeping named volumes, and the log
  says why.

Runs on fakedocker only.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from dockerspawner import DockerSpawner, naming
from dockerspawner.engine import Conflict, EngineError, EngineUnavailable

IMAGE = "quay.io/jupyterhub/singleuser:test"
IMAGE2 = "quay.io/jupyterhub/singleuser:other"
PULLED = "example.org/lab/pulled:1"
SINGLEUSER = {"Cmd": ["jupyterhub-singleuser"]}


async def snapshot(fake) -> dict[str, set[str]]:
    """Every container (id and name), volume and network the engine has."""
    containers = await fake.list_containers(all=True)
    return {
        "containers": {f"{c['Names'][0].lstrip('/')} {c['Id'][:12]}" for c in containers},
        "volumes": {v["Name"] for v in await fake.list_volumes()},
        "networks": {n["Name"] for n in await fake.list_networks()},
    }


async def assert_nothing_new(fake, before: dict[str, set[str]], what: str) -> None:
    # removal may be finishing in a shielded task: give it a bounded moment
    for _ in range(50):
        after = await snapshot(fake)
        if all(after[k] <= before[k] for k in before):
            return
        await asyncio.sleep(0.05)
    new = {k: sorted(after[k] - before[k]) for k in before if after[k] - before[k]}
    raise AssertionError(f"{what} left behind: {new}")


async def wait_for_call(fake, op: str, count: int = 1, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while fake.calls.count(op) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{op} was not called {count} time(s): {fake.calls.methods()}")
        await asyncio.sleep(0.01)


def log_messages(caplog, needle: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


@pytest.fixture
def certs(tmp_path) -> dict[str, str]:
    """Files like the ones JupyterHub's internal SSL hands to ``move_certs``."""
    paths = {}
    for key, name in (("keyfile", "server.key"), ("certfile", "server.crt"), ("cafile", "ca.crt")):
        path = tmp_path / name
        path.write_text(f"-----BEGIN {key}-----\n")
        paths[key] = str(path)
    return paths


# -- failures at every point of start leave nothing behind -------------------------------------


def fail_pull(fake):
    fake.registry.add(PULLED, config=dict(SINGLEUSER), layers=[1_000_000])
    fake.registry.fail_next("*pulled*", EngineError("unexpected EOF", 500))
    return {"image": PULLED}


def fail_inspect_image(fake):
    fake.faults.fail("inspect_image", EngineError("boom", 500))
    return {}


def fail_create(fake):
    fake.faults.fail("create_container", EngineError("boom", 500))
    return {}


def fail_create_after_acting(fake):
    """The engine made the container but its answer was lost (a read timeout of
    the client, a dropped connection): the spawner never learned the id."""
    original = fake.create_container

    async def create_then_lose_answer(spec):
        await original(spec)
        raise EngineUnavailable(f"no answer from the engine at {fake.base_url} in time: read timed out")

    fake.create_container = create_then_lose_answer
    return {}


def fail_start(fake):
    fake.faults.fail("start_container", EngineError("OCI runtime create failed", 500))
    return {}


def fail_network_at_start(fake):
    return {"network_name": "no-such-net"}


def after_start(fake, name: str = "jupyter-alice"):
    """A matcher for calls made once the container ``name`` runs."""
    return lambda args: any(c.name == "/" + name and c.running for c in fake.containers.values())


def fail_inspect_after_start(fake):
    # the spawner must learn the address of the started container
    fake.faults.fail("inspect_container", EngineError("boom", 500), times=None, match=after_start(fake))
    return {}


def fail_post_start(fake):
    return {"post_start_cmd": ["sh", "-c", "echo no >&2; exit 1"], "post_start_cmd_must_succeed": True}


def fail_post_start_engine(fake):
    fake.faults.fail("exec_run", EngineError("exec failed", 500))
    return {"post_start_cmd": ["true"]}


def fail_exits_during_wait(fake):
    fake.faults.exit_after_start("jupyter-*", after=0.3, exit_code=1, stderr=["bye"])
    return {"cmd": ["sleep", "600"]}


def fail_exits_at_once(fake):
    fake.faults.exit_after_start("jupyter-*", after=0.0, exit_code=1, stderr=["bye"])
    return {}


def fail_wait_timeout(fake):
    return {"cmd": ["sleep", "600"], "start_timeout": 3}


def fail_engine_unreachable_after_start(fake):
    # a server that never answers, and an engine that stops answering inspects once it runs
    fake.faults.fail("inspect_container", EngineUnavailable("engine went away"), times=None, match=after_start(fake))
    return {"cmd": ["sleep", "600"], "start_timeout": 3}


FAULT_POINTS = {
    "pull": fail_pull,
    "inspect-image": fail_inspect_image,
    "create": fail_create,
    "create-answer-lost": fail_create_after_acting,
    "start": fail_start,
    "network-missing": fail_network_at_start,
    "inspect-after-start": fail_inspect_after_start,
    "post-start-cmd": fail_post_start,
    "post-start-engine": fail_post_start_engine,
    "exits-during-wait": fail_exits_during_wait,
    "exits-at-once": fail_exits_at_once,
    "wait-timeout": fail_wait_timeout,
    "engine-unreachable-after-start": fail_engine_unreachable_after_start,
}


@pytest.mark.parametrize("remove", [False, True], ids=["keep", "remove"])
@pytest.mark.parametrize("point", list(FAULT_POINTS))
async def test_failed_start_leaves_nothing(fake, make_spawner, point, remove):
    # another user's server and a network exist before and must stay
    other = make_spawner("bob", image=IMAGE)
    await other.start()
    before = await snapshot(fake)
    traits = FAULT_POINTS[point](fake)
    sp = make_spawner("alice", **{"image": IMAGE, "remove": remove, **traits})
    with pytest.raises(Exception):  # noqa: B017 (each fault point fails differently)
        await asyncio.wait_for(sp.start(), 30)
    fake.faults.clear()
    fake.up()
    await assert_nothing_new(fake, before, f"a start failing at {point}")
    assert not sp.object_id, "a failed start must not keep the id of a removed container"
    assert await other.poll() is None


@pytest.mark.parametrize("point", ["start", "post-start-cmd", "exits-during-wait", "inspect-after-start"])
async def test_failed_start_with_certs_leaves_no_volume(fake, make_spawner, certs, point):
    before = await snapshot(fake)
    traits = FAULT_POINTS[point](fake)
    sp = make_spawner("alice", **{"image": IMAGE, **traits})
    sp.cert_paths = await sp.move_certs(certs)
    with pytest.raises(Exception):  # noqa: B017 (each fault point fails differently)
        await asyncio.wait_for(sp.start(), 30)
    fake.faults.clear()
    await assert_nothing_new(fake, before, f"a start with certs failing at {point}")


@pytest.mark.parametrize("op", ["put_archive", "create_container", "create_volume"])
async def test_failed_move_certs_leaves_no_helper_and_no_volume(fake, make_spawner, certs, op):
    before = await snapshot(fake)
    fake.faults.fail(op, EngineError("disk full", 500))
    sp = make_spawner("alice", image=IMAGE)
    with pytest.raises(Exception):  # noqa: B017 (each fault point fails differently)
        await asyncio.wait_for(sp.move_certs(certs), 10)
    await assert_nothing_new(fake, before, f"move_certs failing at {op}")


async def test_move_certs_then_start_then_stop_remove_leaves_nothing(fake, make_spawner, certs):
    before = await snapshot(fake)
    sp = make_spawner("alice", image=IMAGE, remove=True)
    sp.cert_paths = await sp.move_certs(certs)
    after_certs = await snapshot(fake)
    assert len(after_certs["volumes"] - before["volumes"]) == 1, "move_certs makes one certs volume"
    assert after_certs["containers"] == before["containers"], "the helper container is removed at once"
    await sp.start()
    await sp.stop()
    await assert_nothing_new(fake, before, "start+stop with remove=True and certs")


# -- cancellation (the hub's start timeout, a user's cancel) at every phase ---------------------

# phase -> (operation delayed before it acts, only after start?, spawner traits)
CANCEL_POINTS = {
    "pull": ("pull_image", False, {"image": PULLED}),
    "inspect-image": ("inspect_image", False, {}),
    "create": ("create_container", False, {}),
    "start": ("start_container", False, {}),
    "inspect-after-start": ("inspect_container", True, {}),
    "post-start-cmd": ("exec_run", False, {"post_start_cmd": ["true"]}),
}


@pytest.mark.parametrize("remove", [False, True], ids=["keep", "remove"])
@pytest.mark.parametrize("phase", list(CANCEL_POINTS))
async def test_cancelled_start_leaves_nothing(fake, make_spawner, phase, remove):
    fake.registry.add(PULLED, config=dict(SINGLEUSER), layers=[1_000])
    before = await snapshot(fake)
    op, only_after_start, traits = CANCEL_POINTS[phase]
    rule = fake.faults.delay(op, 30, times=1, match=after_start(fake) if only_after_start else None)
    sp = make_spawner("alice", **{"image": IMAGE, "remove": remove, **traits})
    task = asyncio.ensure_future(sp.start())
    deadline = asyncio.get_running_loop().time() + 10
    while rule.hits == 0:
        assert asyncio.get_running_loop().time() < deadline, f"{op} was never delayed: {fake.calls.methods()}"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    fake.faults.clear()
    await assert_nothing_new(fake, before, f"a start cancelled in {phase}")


async def test_cancelled_while_waiting_for_server_leaves_nothing(fake, make_spawner):
    before = await snapshot(fake)
    sp = make_spawner("alice", image=IMAGE, cmd=["sleep", "600"], http_timeout=60, start_timeout=60)
    task = asyncio.ensure_future(sp.start())
    await wait_for_call(fake, "start_container")
    await asyncio.sleep(0.5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    await assert_nothing_new(fake, before, "a start cancelled while waiting for the server")


@pytest.mark.parametrize("op", ["create_container", "start_container"])
async def test_cancelled_while_the_engine_acts_leaves_nothing(fake, make_spawner, op):
    """Cancelling the await does not stop the engine (docker-py runs the request
    in a thread): the engine makes the container, the spawner never sees the
    answer. The container must still not be left behind."""
    before = await snapshot(fake)
    original = getattr(fake, op)

    async def act_then_hang(*args, **kwargs):
        result = await original(*args, **kwargs)
        await asyncio.sleep(30)
        return result

    setattr(fake, op, act_then_hang)
    sp = make_spawner("alice", image=IMAGE)
    task = asyncio.ensure_future(sp.start())
    await wait_for_call(fake, op)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    setattr(fake, op, original)
    await assert_nothing_new(fake, before, f"a start cancelled while the engine ran {op}")


async def test_timeout_of_start_leaves_nothing(fake, make_spawner):
    """The spawner's own deadline (a little under start_timeout) cancels the work
    and cleans up, and the error names the phase."""
    before = await snapshot(fake)
    fake.faults.delay("start_container", 30)
    sp = make_spawner("alice", image=IMAGE, start_timeout=2)
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(sp.start(), 10)
    assert "Starting container" in getattr(info.value, "jupyterhub_message", "")
    fake.faults.clear()
    await assert_nothing_new(fake, before, "a timed-out start")


# -- stop is idempotent ------------------------------------------------------------------------


@pytest.mark.parametrize("remove", [False, True], ids=["keep", "remove"])
async def test_stop_twice(fake, make_spawner, remove):
    sp = make_spawner("alice", image=IMAGE, remove=remove)
    await sp.start()
    await sp.stop()
    await sp.stop()
    assert await sp.poll() is not None


async def test_stop_with_remove_makes_one_remove_and_asks_nothing_more(fake, make_spawner):
    """stop() removes its own container: the exit watcher does not also reap it
    on its "die", and a remove the engine answered is not checked by inspecting."""
    sp = make_spawner("alice", image=IMAGE, remove=True)
    await sp.start()
    await asyncio.sleep(0.1)  # the exit watcher follows the engine's events by now
    fake.calls.clear()
    await sp.stop()
    await asyncio.sleep(0.2)  # a reap would come right after the "die"
    assert fake.calls.count("remove_container") == 1, fake.calls
    assert fake.calls.count("inspect_container") == 0, fake.calls
    assert await fake.list_containers(all=True) == []


@pytest.mark.parametrize("remove", [False, True], ids=["keep", "remove"])
async def test_stop_when_container_already_gone(fake, make_spawner, remove):
    sp = make_spawner("alice", image=IMAGE, remove=remove)
    await sp.start()
    await fake.remove_container(sp.object_id, force=True)
    await sp.stop()
    assert await sp.poll() is not None
    # and the next start works under the same name
    await sp.start()
    assert sp.object_name == "jupyter-alice"
    await sp.stop()


async def test_stop_when_gone_between_stop_and_remove(fake, make_spawner):
    sp = make_spawner("alice", image=IMAGE, remove=True)
    await sp.start()
    cid = sp.object_id

    original = fake.stop_container

    async def stop_then_vanish(ref, timeout=None):
        await original(ref, timeout=timeout)
        await fake.remove_container(cid, force=True)

    fake.stop_container = stop_then_vanish
    await sp.stop()
    fake.stop_container = original
    assert not await fake.list_containers(all=True)


async def test_stop_with_removal_in_progress_counts_as_done(fake, make_spawner):
    sp = make_spawner("alice", image=IMAGE, remove=True)
    await sp.start()
    started: list = []

    async def finish(cid):
        await asyncio.sleep(0.5)
        await fake.remove_container(cid, force=True)

    cid = sp.object_id

    def error():
        started.append(asyncio.ensure_future(finish(cid)))
        return Conflict(f"removal of container {cid} is already in progress")

    fake.faults.fail("remove_container", error, times=1)
    await asyncio.wait_for(sp.stop(), 20)
    assert started, "the fault was not hit"
    # stop returned only once the container was gone, so a start can use the name
    assert [c for c in fake.containers.values() if c.id == cid] == []
    await sp.start()
    assert sp.object_name == "jupyter-alice"
    assert fake.calls.count("create_container") == 2
    await sp.stop()


async def test_start_right_after_stop_waits_for_the_old_container(fake, make_spawner):
    """remove=True: the old container is still being removed when the next start
    comes; the start must wait for the name rather than fail or rename."""
    sp = make_spawner("alice", image=IMAGE, remove=True)
    await sp.start()
    old = sp.object_id
    await sp.stop()
    # the engine removes slowly: the container is "still there" for a moment
    fake2 = fake
    c = await fake2.create_container(
        {"image": IMAGE, "name": "jupyter-alice", "command": ["sleep", "600"], "labels": naming.owner_labels("alice", "")}
    )
    assert c != old

    busy = [True]

    async def remove_later():
        await asyncio.sleep(0.5)
        busy[0] = False
        await fake2.remove_container(c, force=True)

    remover = asyncio.ensure_future(remove_later())
    fake.faults.fail(
        "remove_container",
        lambda: Conflict(f"removal of container {c} is already in progress"),
        times=None,
        match=lambda args: args.get("ref") == c and busy[0],
    )
    fresh = make_spawner("alice", image=IMAGE, remove=True)
    await asyncio.wait_for(fresh.start(), 20)
    await remover
    assert fresh.object_name == "jupyter-alice"
    info = await fake.inspect_container("jupyter-alice")
    assert info["Id"] == fresh.object_id != c
    await fresh.stop()


async def test_stop_remove_true_when_gone_still_removes_certs_volume(fake, make_spawner, certs):
    before = await snapshot(fake)
    sp = make_spawner("alice", image=IMAGE, remove=True)
    sp.cert_paths = await sp.move_certs(certs)
    await sp.start()
    await fake.remove_container(sp.object_id, force=True)
    await sp.stop()
    await assert_nothing_new(fake, before, "stop (remove=True) of a vanished container with certs")


# -- orphans -----------------------------------------------------------------------------------


async def save_state(sp) -> None:
    sp.orm_spawner.state = sp.get_state()
    sp.user.db.commit()


async def orphan_setup(fake, make_spawner):
    owned = make_spawner("bob", image=IMAGE)
    await owned.start()
    await save_state(owned)
    orphan = make_spawner("carol", image=IMAGE)
    await orphan.start()  # state never saved, then its user was deleted
    orphan.user.db.delete(orphan.user.orm_user)
    orphan.user.db.commit()
    # labelled but not ours by prefix; unlabelled (dockerspawner 14); not labelled at all
    await fake.create_container(
        {"image": IMAGE, "name": "other-carol", "command": ["sleep", "1"], "labels": naming.owner_labels("x", "")}
    )
    await fake.create_container({"image": IMAGE, "name": "jupyter-legacy", "command": ["sleep", "1"]})
    await asyncio.sleep(1.05)  # so the sweep's "created before" is strictly after these
    return owned, orphan


async def names(fake) -> set[str]:
    return {c["Names"][0].lstrip("/") for c in await fake.list_containers(all=True)}


async def wait_until(predicate, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def test_orphans_removed_at_first_spawner_and_logged(fake, make_spawner, caplog):
    caplog.set_level(logging.INFO)
    await orphan_setup(fake, make_spawner)
    assert "jupyter-carol" in await names(fake)
    make_spawner("alice", image=IMAGE, remove_orphans=True)

    async def carol_gone():
        return "jupyter-carol" not in await names(fake)

    await wait_until(carol_gone)
    await asyncio.sleep(0.1)
    assert await names(fake) == {"jupyter-bob", "other-carol", "jupyter-legacy"}
    assert log_messages(caplog, "jupyter-carol"), "the removal of an orphan must be logged"
    # once per engine: a second spawner does not sweep again
    lists = fake.calls.count("list_containers")
    make_spawner("dave", image=IMAGE, remove_orphans=True)
    await asyncio.sleep(0.2)
    assert fake.calls.count("list_containers") == lists


async def test_orphans_kept_by_default(fake, make_spawner):
    await orphan_setup(fake, make_spawner)
    assert DockerSpawner.class_traits()["remove_orphans"].default() is False
    make_spawner("alice", image=IMAGE)
    await asyncio.sleep(0.3)
    assert "jupyter-carol" in await names(fake)
    assert fake.calls.count("remove_container") == 0


async def test_orphan_sweep_keeps_containers_created_after_it_started(fake, make_spawner):
    """A spawn that has not saved its state yet owns its container: one created
    after the sweep began (even within the same second) is not an orphan."""
    await orphan_setup(fake, make_spawner)
    # the sweep lists late, after a spawn made its container
    fake.faults.delay("list_containers", 0.5, times=1)
    # stay within one wall-clock second: the engine reports Created in whole seconds
    while not 0.05 < time.time() % 1 < 0.4:
        await asyncio.sleep(0.01)
    make_spawner("alice", image=IMAGE, remove_orphans=True)
    late = make_spawner("erin", image=IMAGE)
    await late.start()

    async def carol_gone():
        return "jupyter-carol" not in await names(fake)

    await wait_until(carol_gone)
    await asyncio.sleep(0.1)
    assert "jupyter-erin" in await names(fake), "a container made after the sweep started was removed"


# -- reuse only what matches (remove=False) ---------------------------------------------------


async def start_stop(sp) -> str:
    await sp.start()
    cid = sp.object_id
    await sp.stop()
    return cid


async def _no_wait(ip, port):
    return None


CHANGES = {
    "image": ({"image": IMAGE}, {"image": IMAGE2}),
    "cmd": ({"cmd": ["jupyterhub-singleuser"]}, {"cmd": ["jupyterhub-singleuser", "--debug"]}),
    "args": ({"args": []}, {"args": ["--ServerApp.x=1"]}),
    "env": ({"environment": {"FOO": "1"}}, {"environment": {"FOO": "2"}}),
    "env-added": ({}, {"environment": {"BAR": "x"}}),
    "mem_limit": ({"mem_limit": "1G"}, {"mem_limit": "2G"}),
    "mem_limit-callable": ({"mem_limit": lambda sp: "1G"}, {"mem_limit": lambda sp: "3G"}),
    "cpu_limit": ({"cpu_limit": 1.0}, {"cpu_limit": 2.0}),
    "volumes": ({"volumes": {"jupyterhub-user-{username}": "/home/jovyan/work"}},
                {"volumes": {"jupyterhub-user-{username}": "/home/jovyan/data"}}),
    "read_only_volumes": ({}, {"read_only_volumes": {"shared-data": "/srv/shared"}}),
    "mounts": ({}, {"mounts": [{"type": "volume", "source": "extra-{username}", "target": "/extra"}]}),
    "extra_host_config": ({}, {"extra_host_config": {"shm_size": "1G"}}),
    "extra_create_kwargs": ({}, {"extra_create_kwargs": {"working_dir": "/tmp"}}),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_changed_spec_recreates_and_says_why(fake, make_spawner, caplog, change):
    caplog.set_level(logging.INFO)
    first, second = CHANGES[change]
    old = await start_stop(make_spawner("alice", **{"image": IMAGE, **first}))
    sp = make_spawner("alice", **{"image": IMAGE, **second})
    sp.load_state({"object_id": old, "object_name": "jupyter-alice"})
    await sp.start()
    assert sp.object_id != old, f"a stopped container was reused although its {change} changed"
    assert old not in fake.containers, "the stale container must be removed"
    assert sp.object_name == "jupyter-alice"
    why = log_messages(caplog, "Replacing container jupyter-alice")
    assert why and "spec changed" in why[0], log_messages(caplog, "jupyter-alice")
    await sp.stop()


async def test_changed_network_recreates(fake, make_spawner):
    await fake.create_network("jhub-net", labels={})
    old = await start_stop(make_spawner("alice", image=IMAGE))
    sp = make_spawner("alice", image=IMAGE, network_name="jhub-net")
    sp._wait_for_server = _no_wait  # nothing listens on container IPs in the fake
    sp.load_state({"object_id": old, "object_name": "jupyter-alice"})
    await sp.start()
    assert sp.object_id != old
    info = await fake.inspect_container(sp.object_id)
    assert "jhub-net" in info["NetworkSettings"]["Networks"]
    await sp.stop()


async def test_unchanged_spec_is_reused_despite_new_token(fake, make_spawner, caplog):
    caplog.set_level(logging.INFO)
    sp = make_spawner("alice", image=IMAGE, environment={"FOO": "1"}, mem_limit="1G")
    sp.api_token = "token-one"
    old = await start_stop(sp)
    again = make_spawner("alice", image=IMAGE, environment={"FOO": "1"}, mem_limit="1G")
    again.load_state(sp.get_state())
    again.api_token = "token-two"
    await again.start()
    assert again.object_id == old
    assert fake.calls.count("create_container") == 1
    assert log_messages(caplog, "Reusing container jupyter-alice")
    # the hub is told the token the reused container has
    assert again.api_token == "token-one"
    await again.stop()


async def test_same_tag_new_image_recreates(fake, make_spawner, caplog):
    """The tag now points at a newer image (a pull, a rebuild): the stopped
    container still runs the old one and must not be reused."""
    caplog.set_level(logging.INFO)
    old = await start_stop(make_spawner("alice", image=IMAGE))
    old_image = (await fake.inspect_container(old))["Image"]
    new_id = fake.add_image(IMAGE, config={**SINGLEUSER, "Labels": {"version": "2"}})
    assert new_id != old_image
    sp = make_spawner("alice", image=IMAGE)
    sp.load_state({"object_id": old, "object_name": "jupyter-alice"})
    await sp.start()
    info = await fake.inspect_container(sp.object_id)
    assert info["Image"] == new_id, "a container of the previous image was reused"
    await sp.stop()


async def test_named_volume_survives_recreation(fake, make_spawner):
    volumes = {"jupyterhub-user-{username}": "/home/jovyan/work"}
    sp = make_spawner("alice", image=IMAGE, volumes=volumes)
    await sp.start()
    result = await fake.exec_run(sp.object_id, ["sh", "-c", "echo precious > /home/jovyan/work/notes.txt"])
    assert result.exit_code == 0
    old = sp.object_id
    await sp.stop()
    sp2 = make_spawner("alice", image=IMAGE2, volumes=volumes)
    sp2.load_state(sp.get_state())
    await sp2.start()
    assert sp2.object_id != old
    assert "jupyterhub-user-alice" in {v["Name"] for v in await fake.list_volumes()}
    result = await fake.exec_run(sp2.object_id, ["cat", "/home/jovyan/work/notes.txt"])
    assert result.stdout.decode().strip() == "precious"
    await sp2.stop()


async def test_remove_true_replaces_a_leftover_and_says_why(fake, make_spawner, caplog):
    caplog.set_level(logging.INFO)
    old = await start_stop(make_spawner("alice", image=IMAGE))  # remove=False leftover
    sp = make_spawner("alice", image=IMAGE, remove=True)
    await sp.start()
    assert sp.object_id != old and old not in fake.containers
    assert log_messages(caplog, "remove is set")
    await sp.stop()
    assert not await fake.list_containers(all=True)


async def test_legacy_unlabelled_container_is_replaced_volume_kept(fake, make_spawner, caplog):
    """A container of dockerspawner 14 (no labels, no spec hash) under the
    established name is not trusted to match; it is recreated, its named
    volume kept."""
    caplog.set_level(logging.INFO)
    await fake.create_volume("jupyterhub-user-alice")
    legacy = await fake.create_container(
        {
            "image": IMAGE,
            "name": "jupyter-alice",
            "command": ["jupyterhub-singleuser"],
            "host_config": {"binds": {"jupyterhub-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"}}},
        }
    )
    sp = make_spawner("alice", image=IMAGE, volumes={"jupyterhub-user-{username}": "/home/jovyan/work"})
    sp.load_state({"container_id": legacy})
    await sp.start()
    assert sp.object_id != legacy and legacy not in fake.containers
    assert log_messages(caplog, "Replacing container jupyter-alice")
    assert "jupyterhub-user-alice" in {v["Name"] for v in await fake.list_volumes()}
    await sp.stop()
