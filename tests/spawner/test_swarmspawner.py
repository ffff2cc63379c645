"""SwarmSpawner on fakedocker's swarm: the whole lifecycle and every way a start
can fail (issue 8).

The fake's swarm walks a task through the engine's states, places it on nodes
(constraints, resources), rejects or fails tasks with swarm's messages, and
takes nodes down; the spawner must report each of these to the user, never
wait without a deadline, and leave no service behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from pathlib import Path

import pytest
from traitlets.config import Config

from dockerspawner import SpawnError, SwarmSpawner, naming
from dockerspawner.engine import EngineError, EngineUnavailable
from dockerspawner.swarmspawner import only_constraints
from dockerspawner.views import TaskView, newest_task

from contract.helpers import eventually, http_get

IMAGE = "quay.io/jupyterhub/singleuser:test"
INSUFFICIENT = "no suitable node (insufficient resources on 1 node)"


@pytest.fixture
def swarm_spawner(make_spawner):
    def make(username: str = "alice", servername: str = "", **traits):
        traits.setdefault("image", IMAGE)
        traits.setdefault("use_internal_ip", False)
        return make_spawner(username, servername, spawner_class=SwarmSpawner, **traits)

    return make


async def services(fake) -> list[dict]:
    return await fake.list_services()


async def no_services_left(fake, what: str) -> None:
    left = await eventually(lambda: _empty(fake), timeout=5)
    assert left, what


async def _empty(fake) -> bool:
    return not await services(fake)


def hub_server(ip: str, port: int):
    """What the hub records from start()'s answer."""
    from jupyterhub import orm
    from jupyterhub.objects import Server

    return Server(orm_server=orm.Server(proto="http", ip=ip, port=port, base_url="/user/alice/", cookie_name="c"))


async def user_message(start) -> str:
    """What the user is shown when ``start`` fails."""
    with pytest.raises(SpawnError) as info:
        await start
    return info.value.jupyterhub_message


async def collect_progress(spawner) -> list[str]:
    return [event["message"] async for event in spawner.progress()]


# -- the lifecycle -------------------------------------------------------------------------------


async def test_start_poll_stop(fake, swarm_spawner):
    sp = swarm_spawner(mem_limit="1G", cpu_limit=1.5, mem_guarantee="512M", cpu_guarantee=0.5)
    ip, port = await sp.start()
    status, _ = await http_get(f"http://{ip}:{port}/user/alice/")
    assert status == 200
    (svc,) = await services(fake)
    assert svc["ID"] == sp.service_id == sp.object_id and svc["Spec"]["Name"] == sp.service_name == "jupyter-alice"
    labels = svc["Spec"]["Labels"]
    assert naming.labels_owner(labels) == ("alice", "")
    res = svc["Spec"]["TaskTemplate"]["Resources"]
    assert res["Limits"] == {"MemoryBytes": 1 << 30, "NanoCPUs": 1_500_000_000}
    assert res["Reservations"] == {"MemoryBytes": 512 << 20, "NanoCPUs": 500_000_000}
    assert svc["Spec"]["EndpointSpec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"}]
    assert fake.calls.count("pull_image") == 0, "pull_policy 'skip' is the swarm default"
    assert await sp.poll() is None
    await sp.stop()
    assert await services(fake) == []
    assert await sp.poll() == 0
    await sp.stop()  # again: nothing to do


async def test_progress_names_each_step_and_the_node(fake_docker_factory, make_spawner):
    fake = fake_docker_factory(task_step_delay=0.6)
    fake.add_image(IMAGE, config={"Cmd": ["jupyterhub-singleuser"]})
    fake.swarm.add_node("worker-7", labels={"zone": "b"})
    sp = make_spawner(
        "alice", engine=fake, spawner_class=SwarmSpawner, image=IMAGE, use_internal_ip=False,
        extra_placement_spec={"constraints": ["node.labels.zone==b"]},
    )
    progress = asyncio.ensure_future(collect_progress(sp))
    await sp.start()
    messages = await asyncio.wait_for(progress, 5)
    expected = [
        "Creating service jupyter-alice",
        "Service jupyter-alice created",
        "Task scheduled on node worker-7",
        f"Preparing on node worker-7 (pulling {IMAGE} if needed)",
        "Starting on node worker-7",
        "Waiting for the server to respond",
    ]
    assert [m for m in messages if m in expected] == expected, messages
    await sp.stop()


async def test_placed_on_a_worker_is_reached_at_the_workers_address(fake, swarm_spawner):
    worker = fake.swarm.add_node("worker-1", labels={"zone": "b"}, addr="127.0.0.1")
    # the manager's address would be wrong: nothing listens on 127.0.0.2
    sp = swarm_spawner(host_ip="127.0.0.2", extra_placement_spec={"constraints": ["node.labels.zone==b"]})
    ip, port = await sp.start()
    (task,) = await fake.list_tasks(filters={"service": sp.service_id})
    assert task["NodeID"] == worker.id
    assert (ip, port) == ("127.0.0.1", task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"])
    await sp.stop()


async def test_state_round_trip_and_a_restarted_hub_finds_the_service(fake, swarm_spawner):
    sp = swarm_spawner()
    await sp.start()
    state = sp.get_state()
    assert state == {"object_id": sp.service_id, "object_name": "jupyter-alice"}
    again = swarm_spawner()
    again.load_state(state)
    assert (again.service_id, again.service_name) == (sp.service_id, "jupyter-alice")
    assert await again.poll() is None
    legacy = swarm_spawner()
    legacy.load_state({"service_id": sp.service_id, "service_name": "jupyter-alice"})  # the alias names
    assert await legacy.poll() is None and legacy.get_state() == state
    nameonly = swarm_spawner()
    nameonly.load_state({})
    assert await nameonly.poll() is None and nameonly.service_id == sp.service_id  # found by name and labels
    await again.stop()
    assert await services(fake) == [] and again.get_state() == {}


async def test_a_14_service_in_saved_state_is_adopted(fake, swarm_spawner):
    """14 made services without owner labels; one running under the saved id is this server."""
    sid = await fake.create_service(
        {"Name": "jupyter-alice", "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Args": ["jupyterhub-singleuser"]}}}
    )
    sp = swarm_spawner()
    sp.load_state({"object_id": sid, "object_name": "jupyter-alice"})
    await eventually(lambda: _serving(fake, sid), 5)
    assert await sp.poll() is None
    await sp.stop()
    assert await services(fake) == []


async def _serving(fake, sid: str) -> bool:
    return any(t["Status"]["State"] == "running" for t in await fake.list_tasks(filters={"service": sid}))


# -- owners -------------------------------------------------------------------------------------


async def test_another_owners_service_under_the_name_is_never_adopted(fake, swarm_spawner):
    bob = swarm_spawner("bob")
    await bob.start()
    sp = swarm_spawner(name_template="jupyter-bob")  # an admin's template mapping alice onto bob's name
    await sp.start()
    assert sp.service_name != "jupyter-bob" and sp.service_id != bob.service_id
    await sp.stop()
    assert await bob.poll() is None, "bob's service must survive alice's stop"
    await bob.stop()


async def test_saved_state_naming_another_owners_service_is_refused(fake, swarm_spawner):
    bob = swarm_spawner("bob")
    await bob.start()
    sp = swarm_spawner()
    sp.load_state({"object_id": bob.service_id, "object_name": bob.service_name})
    assert await user_message(sp.start()) == "Your server's service belongs to someone else."
    assert await bob.poll() is None
    await bob.stop()


async def test_an_unlabelled_service_under_the_name_is_left_alone(fake, swarm_spawner, caplog):
    other = await fake.create_service({"Name": "jupyter-alice", "TaskTemplate": {"ContainerSpec": {"Image": IMAGE}}})
    caplog.set_level(logging.WARNING)
    sp = swarm_spawner()
    await sp.start()
    assert sp.service_id != other and sp.service_name.startswith("jupyter-alice-x")
    assert any("A running service jupyter-alice without owner labels" in r.getMessage() for r in caplog.records)
    await sp.stop()
    assert [s["ID"] for s in await services(fake)] == [other]


# -- the task state machine ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, err, shown",
    [
        ("rejected", INSUFFICIENT, f"The swarm could not run your server: {INSUFFICIENT}"),
        ("rejected", "No such image: example.org/x:1", "The swarm could not run your server: No such image"),
        ("failed", "task: non-zero exit (3)", "Your server exited while starting: task: non-zero exit (3)"),
    ],
)
async def test_an_ended_task_fails_the_start_at_once_with_its_message(fake, swarm_spawner, state, err, shown):
    fake.swarm.fail_next_task("jupyter-alice", state=state, err=err)
    sp = swarm_spawner(start_timeout=60)
    t0 = time.monotonic()
    with pytest.raises(SpawnError) as info:
        await sp.start()
    assert time.monotonic() - t0 < 5, "an ended task must not wait for the deadline"
    assert info.value.jupyterhub_message.startswith(shown)
    assert err in info.value.detail
    await no_services_left(fake, "a failed start")
    assert not sp.service_id


async def test_a_server_that_exits_at_once_shows_its_exit(fake, swarm_spawner):
    """``false`` exits 1; the restart policy makes a second task at once: the
    start still fails on the first one, with its status."""
    sp = swarm_spawner(cmd=["false"])
    assert await user_message(sp.start()) == "Your server exited while starting: task: non-zero exit (1)"
    await no_services_left(fake, "a server that exited")


async def test_pending_for_resources_says_why_and_fails_at_the_deadline(fake, swarm_spawner):
    sp = swarm_spawner(mem_guarantee="100G", start_timeout=4)
    progress = asyncio.ensure_future(collect_progress(sp))
    t0 = time.monotonic()
    with pytest.raises(SpawnError) as info:
        await sp.start()
    took = time.monotonic() - t0
    assert 2.5 < took < 3.6, took  # 75% of start_timeout, before the hub's own timeout
    assert info.value.jupyterhub_message == f"Your server could not start in time: {INSUFFICIENT}"
    assert f"Waiting for a node: {INSUFFICIENT}" in await asyncio.wait_for(progress, 5)
    await no_services_left(fake, "a pending start")


async def test_a_constraint_no_node_satisfies_fails_fast(fake, swarm_spawner):
    fake.swarm.add_node("worker-1")
    sp = swarm_spawner(start_timeout=60, extra_placement_spec={"constraints": ["node.labels.zone==nowhere"]})
    t0 = time.monotonic()
    with pytest.raises(SpawnError) as info:
        await sp.start()
    assert time.monotonic() - t0 < 3
    reason = "no suitable node (scheduling constraints not satisfied on 2 nodes)"
    assert info.value.jupyterhub_message == f"No node of the swarm can run your server: {reason}"
    assert "node.labels.zone==nowhere" in info.value.detail and "extra_placement_spec" in info.value.detail
    await no_services_left(fake, "an unplaceable start")


async def test_a_constraint_on_a_down_node_waits_for_it(fake, swarm_spawner):
    """Constraints are not the only reason: the node may come back."""
    worker = fake.swarm.add_node("worker-1", labels={"zone": "b"})
    fake.swarm.node_down(worker.id)
    sp = swarm_spawner(start_timeout=20, extra_placement_spec={"constraints": ["node.labels.zone==b"]})
    start = asyncio.ensure_future(sp.start())
    await eventually(lambda: "Waiting for a node" in sp._progress.items[-1]["message"], 5)
    assert not start.done()
    fake.swarm.node_up(worker.id)
    await asyncio.wait_for(start, 10)
    await sp.stop()


@pytest.mark.parametrize(
    "err, only",
    [
        ("no suitable node (scheduling constraints not satisfied on 2 nodes)", True),
        ("no suitable node (scheduling constraints not satisfied on 1 node)", True),
        ("no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 1 node)", False),
        (INSUFFICIENT, False),
        ("", False),
    ],
)
def test_only_constraints(err, only):
    assert only_constraints(err) is only


def _task(tid: str, state: str, desired: str, created: str, **status) -> dict:
    return {"ID": tid, "DesiredState": desired, "CreatedAt": created, "Status": {"State": state, **status}}


def test_newest_task_prefers_a_restarted_task_waiting_desired_ready():
    """After a node went down: the old task stays "running" (stale, desired
    shutdown); its replacement waits out the restart delay desired "ready"."""
    old = _task("old", "running", "shutdown", "2026-01-01T00:00:01Z")
    new = _task("new", "pending", "ready", "2026-01-01T00:00:05Z", Err="no suitable node (1 node not available for new tasks)")
    assert newest_task([new, old]).id == "new"
    ended = _task("ended", "rejected", "shutdown", "2026-01-01T00:00:09Z")
    assert newest_task([ended, new, old]).id == "new", "a live (desired ready) task wins over a newer ended one"
    assert newest_task([old]).id == "old" and newest_task([]) is None
    view = TaskView.of(old)
    assert view.running and not view.serving and not view.live
    # Docker 20.10 may give the IPv6 binding (listed second) another host port than the IPv4 one
    ports = {"Ports": [{"TargetPort": 8888, "PublishedPort": 30001, "PublishMode": "ingress"},
                       {"TargetPort": 8888, "PublishedPort": 32787, "PublishMode": "host"},
                       {"TargetPort": 8888, "PublishedPort": 32786, "PublishMode": "host"}]}
    assert TaskView.of(_task("t", "running", "running", "x", PortStatus=ports)).ports == {8888: 32787}


async def test_the_worker_going_down_is_reported_by_poll_and_stop_cleans_up(fake, swarm_spawner):
    worker = fake.swarm.add_node("worker-1", labels={"zone": "b"})
    sp = swarm_spawner(extra_placement_spec={"constraints": ["node.labels.zone==b"]})
    await sp.start()
    assert await sp.poll() is None
    fake.swarm.node_down(worker.id)
    status = await sp.poll()
    assert isinstance(status, str) and "node worker-1 is down (heartbeat failure)" in status, status
    assert "desired shutdown" in status
    await sp.stop()
    assert await services(fake) == []


async def test_a_restart_at_another_port_is_a_stopped_server(fake, swarm_spawner):
    """Swarm replaces a task that died; with a random host port the hub's route
    is stale, so poll says the server stopped (the hub then stops it)."""
    sp = swarm_spawner(extra_task_spec={"restart_policy": {"Condition": "any", "Delay": 100_000_000}})
    ip, port = await sp.start()
    sp.server = hub_server(ip, port)
    (task,) = await fake.list_tasks(filters={"service": sp.service_id})
    await fake.kill_container(task["Status"]["ContainerStatus"]["ContainerID"], signal="KILL")
    first = await eventually(lambda: sp.poll(), 5)
    assert "failed" in first or "restarted" in first, first

    async def replaced():
        return [t for t in await fake.list_tasks(filters={"service": sp.service_id}) if t["Status"]["State"] == "running"]

    (new,) = await eventually(replaced, 5)
    assert new["ID"] != task["ID"]
    status = await sp.poll()
    assert status == f"swarm restarted the server: task {new['ID'][:12]} runs at another address (it replaced task {task['ID'][:12]})"
    # a hub that restarted knows no task id: the address still tells
    again = swarm_spawner()
    again.load_state(sp.get_state())
    assert (again.server.ip, again.server.port) == (ip, port)  # the hub's record, shared
    assert await again.poll() == f"swarm restarted the server: task {new['ID'][:12]} runs at another address"
    await sp.stop()


async def test_a_restart_at_the_same_address_keeps_running(fake, swarm_spawner):
    sp = swarm_spawner(use_internal_ip=True, extra_task_spec={"restart_policy": {"Condition": "any", "Delay": 100_000_000}})
    sp.object_id = (await sp.create_object())["ID"]
    await sp.start_object()
    (task,) = await fake.list_tasks(filters={"service": sp.service_id})
    await fake.kill_container(task["Status"]["ContainerStatus"]["ContainerID"], signal="KILL")

    async def running_again():
        tasks = await fake.list_tasks(filters={"service": sp.service_id})
        return any(t["Status"]["State"] == "running" and t["ID"] != task["ID"] for t in tasks)

    await eventually(running_again, 5)
    assert await sp.poll() is None, "the service name still leads to the server"
    await sp.stop()


# -- addressing ---------------------------------------------------------------------------------------


async def test_internal_addressing_by_service_name_with_dnsrr(fake, make_spawner):
    await fake.create_network("ssp-overlay", driver="overlay", attachable=True)
    sp = make_spawner(
        "alice", spawner_class=SwarmSpawner, image=IMAGE, network_name="ssp-overlay", extra_endpoint_spec={"mode": "dnsrr"}
    )
    assert sp.use_internal_ip is True, "14's default: internal addressing off the bridge network"
    sp.object_id = (await sp.create_object())["ID"]
    await sp.start_object()
    assert await sp.get_ip_and_port() == ("jupyter-alice", 8888)
    svc = await fake.inspect_service(sp.service_id)
    assert svc["Spec"]["EndpointSpec"] == {"Mode": "dnsrr"}
    assert [n["Target"] for n in svc["Spec"]["TaskTemplate"]["Networks"]] == ["ssp-overlay"]
    await sp.stop()


async def test_an_ingress_port_from_extra_endpoint_spec_is_reached_at_host_ip(fake, swarm_spawner):
    sp = swarm_spawner(extra_endpoint_spec={"ports": {None: (8888, "tcp")}})
    ip, port = await sp.start()
    (published,) = (await fake.inspect_service(sp.service_id))["Endpoint"]["Ports"]
    assert published["PublishMode"] == "ingress"
    assert (ip, port) == (sp.host_ip, published["PublishedPort"])
    await sp.stop()


# -- engine errors and cancellation -------------------------------------------------------------------


async def test_engine_errors_become_clear_messages(fake, swarm_spawner):
    fake.faults.fail("create_service", EngineError("boom", 500))
    assert await user_message(swarm_spawner().start()) == "Could not create your server: boom"
    fake.faults.clear()
    fake.faults.fail("list_tasks", EngineUnavailable("gone"), times=None)
    assert "engine is not reachable" in await user_message(swarm_spawner().start())
    fake.faults.clear()
    await no_services_left(fake, "failed starts")


async def test_swarm_not_active(fake_docker_factory, make_spawner):
    fake = fake_docker_factory(swarm=False)
    sp = make_spawner("alice", engine=fake, spawner_class=SwarmSpawner, image=IMAGE, cmd=["x"])
    with pytest.raises(SpawnError) as info:
        await sp.start()
    assert info.value.jupyterhub_message == "The hub's swarm is not available right now."
    assert "docker swarm init" in info.value.detail


async def test_bad_settings_name_the_trait(fake, swarm_spawner):
    with pytest.raises(SpawnError) as info:
        await swarm_spawner(extra_placement_spec={"constraints": ["node.labels.zone"]}).start()
    assert "extra_placement_spec" in info.value.detail
    with pytest.raises(SpawnError) as info:
        await swarm_spawner(extra_container_spec={"no_such_keyword": 1}).start()
    assert "extra_container_spec" in info.value.detail
    assert await user_message(swarm_spawner(network_name="ssp-missing").start()) == "The network ssp-missing does not exist."
    await no_services_left(fake, "refused specs")


async def test_poll_when_the_engine_is_down_says_running(fake, swarm_spawner):
    sp = swarm_spawner()
    await sp.start()
    fake.down()
    assert await sp.poll() is None
    fake.up()
    await sp.stop()


@pytest.mark.parametrize("where", ["create", "pending", "http"])
async def test_cancel_during_start_leaves_no_service(fake, swarm_spawner, where):
    traits = {"start_timeout": 60, "http_timeout": 60}
    if where == "create":
        original = fake.create_service

        async def create_then_hang(spec):
            sid = await original(spec)
            await asyncio.sleep(2)
            return sid

        fake.create_service = create_then_hang
    elif where == "pending":
        traits["mem_guarantee"] = "100G"
    else:
        traits["cmd"] = ["sleep", "600"]  # runs, never answers HTTP
    sp = swarm_spawner(**traits)
    start = asyncio.ensure_future(sp.start())
    await eventually(lambda: fake.calls.count("create_service") == 1, 5)
    await asyncio.sleep(0.3)
    assert not start.done()
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(start, 10)
    await no_services_left(fake, f"a start cancelled at {where}")


# -- configuration ---------------------------------------------------------------------------------


def test_entry_points():
    data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    eps = data["project"]["entry-points"]["jupyterhub.spawners"]
    assert eps["docker-swarm"] == eps["dockerspawner.SwarmSpawner"] == "dockerspawner:SwarmSpawner"


def test_14_config_loads_without_warnings(make_spawner, caplog):
    c = Config()
    s = c.SwarmSpawner
    s.image = IMAGE
    s.network_name = "jupyterhub"
    s.extra_container_spec = {"user": "root"}
    s.extra_resources_spec = {"generic_resources": {"gpu": 1}}
    s.extra_placement_spec = {"constraints": ["node.role==worker"]}
    s.extra_task_spec = {"log_driver": None}
    s.extra_endpoint_spec = {"mode": "dnsrr"}
    s.extra_create_kwargs = {"labels": {"team": "a"}}
    s.volume_driver = "rexray"
    s.volume_driver_options = {"size": "10"}
    s.volumes = {"jupyterhub-user-{username}": "/home/jovyan/work"}
    s.mem_limit = "2G"
    s.cpu_limit = 1.0
    s.mem_guarantee = "1G"
    s.cpu_guarantee = 0.5
    s.pull_policy = "skip"
    s.use_internal_ip = True
    s.name_template = "{prefix}-{username}"
    s.prefix = "jupyter"
    caplog.set_level(logging.WARNING)
    sp = make_spawner("alice", spawner_class=SwarmSpawner, config=c)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sp.extra_endpoint_spec == {"mode": "dnsrr"} and sp.mount_driver_config == {"Name": "rexray", "Options": {"size": "10"}}
    defaults = make_spawner("bob", spawner_class=SwarmSpawner)
    assert (defaults.pull_policy, defaults.network_name, defaults.use_internal_ip, defaults.remove) == ("skip", "", True, True)
    assert (SwarmSpawner.object_type, SwarmSpawner.object_id_key) == ("service", "ID")


async def test_extras_are_templated_and_may_be_callables(fake, swarm_spawner):
    async def placement(spawner):
        return {"constraints": [f"node.labels.user!={spawner.user.name}x"]}

    sp = swarm_spawner(
        extra_container_spec=lambda spawner: {"labels": {"owner": "{username}"}, "init": True},
        extra_placement_spec=placement,
        extra_create_kwargs={"labels": {"team": "team-{username}"}},
        volumes={"ssp-{username}-work": "/home/jovyan/work"},
        volume_driver="local",
        volume_driver_options={"type": "tmpfs"},
    )
    await sp.start()
    spec = (await fake.inspect_service(sp.service_id))["Spec"]
    cs = spec["TaskTemplate"]["ContainerSpec"]
    assert cs["Labels"] == {"owner": "alice"} and cs["Init"] is True
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.user!=alicex"]
    assert spec["Labels"]["team"] == "team-alice"
    (mount,) = cs["Mounts"]
    assert (mount["Type"], mount["Source"], mount["Target"]) == ("volume", "ssp-alice-work", "/home/jovyan/work")
    assert mount["VolumeOptions"]["DriverConfig"] == {"Name": "local", "Options": {"type": "tmpfs"}}
    await sp.stop()
