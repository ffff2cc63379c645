"""Contract: swarm services and their tasks."""

from __future__ import annotations

import asyncio
import re

import pytest

from dockerspawner.engine import Conflict, EngineError, NotFound
from fakedocker import swarm_tasks
from fakedocker.kit.hub import free_ports

from .helpers import HTTPD_BODY, HTTPD_CMD, eventually, http_get

pytestmark = pytest.mark.engine

GRACE_NS = 1_000_000_000


def service_spec(name: str, image: str, labels: dict, command: list[str], **extra) -> dict:
    """A one-replica service the way SwarmSpawner builds one: dnsrr (this
    kernel has no IPVS), init so SIGTERM works, a short stop grace, and no
    restarts so a failed task stays failed."""
    spec = {
        "Name": name,
        "Labels": dict(labels),
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image,
                "Command": command,
                "Init": True,
                "StopGracePeriod": GRACE_NS,
                "Labels": dict(labels),
                "Env": ["CT_SERVICE=1"],
            },
            "RestartPolicy": {"Condition": "none"},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }
    spec.update(extra)
    return spec


@pytest.fixture
def unique_name(unique_name):
    """Service names start with ``sw-`` (the prefix the shared engine's swarm
    was handed out under); still unique per run and labelled for clean-up."""
    return lambda suffix="x": f"sw-{unique_name(suffix)}"


@pytest.fixture
def new_service(swarm, test_image, test_labels, unique_name):
    async def make(command=("sleep", "300"), **extra) -> tuple[str, dict]:
        spec = service_spec(unique_name("svc"), test_image, test_labels, list(command), **extra)
        return await swarm.create_service(spec), spec

    return make


async def _tasks(engine, sid: str) -> list[dict]:
    return await engine.list_tasks(filters={"service": sid})


async def _task_in(engine, sid: str, states: set[str]) -> dict | None:
    for task in await _tasks(engine, sid):
        if task["Status"]["State"] in states:
            return task
    return None


async def test_create_and_inspect_service(swarm, new_service):
    sid, spec = await new_service()
    assert re.fullmatch(r"[0-9a-z]{25}", sid), sid
    info = await swarm.inspect_service(sid)
    assert info["ID"] == sid
    assert isinstance(info["Version"]["Index"], int)
    assert info["Spec"]["Name"] == spec["Name"]
    assert info["Spec"]["Labels"] == spec["Labels"]
    cs = info["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert cs["Image"] == spec["TaskTemplate"]["ContainerSpec"]["Image"]
    assert cs["Command"] == ["sleep", "300"]
    assert info["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    assert (await swarm.inspect_service(spec["Name"]))["ID"] == sid


async def test_create_duplicate_service_is_conflict(swarm, new_service, test_image, test_labels):
    _, spec = await new_service()
    with pytest.raises(Conflict):
        await swarm.create_service(service_spec(spec["Name"], test_image, test_labels, ["sleep", "300"]))


async def test_list_services_by_label(swarm, new_service, label_filters):
    a, _ = await new_service()
    listed = await swarm.list_services(filters={"label": label_filters})
    assert [s["ID"] for s in listed] == [a]
    assert listed[0]["Spec"]["Labels"]["org.jupyterhub.test"] == "contract"
    assert await swarm.list_services(filters={"label": label_filters + ["ct.none=x"]}) == []


async def test_task_reaches_running(swarm, new_service, test_labels):
    sid, _ = await new_service()
    task = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.1)
    assert task["ServiceID"] == sid
    assert task["DesiredState"] == "running"
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    container = await swarm.inspect_container(cid)
    assert container["State"]["Running"] is True
    assert test_labels.items() <= container["Config"]["Labels"].items()
    assert container["Config"]["Labels"]["com.docker.swarm.service.id"] == sid
    assert "CT_SERVICE=1" in container["Config"]["Env"]


async def test_failed_task_reports_error(swarm, new_service):
    sid, _ = await new_service(["sh", "-c", "echo bad; exit 3"])
    task = await eventually(lambda: _task_in(swarm, sid, {"failed", "rejected"}), timeout=30, interval=0.1)
    assert task["Status"]["State"] == "failed"
    assert task["Status"]["Err"]
    assert "3" in task["Status"]["Err"]
    assert task["Status"]["ContainerStatus"]["ExitCode"] == 3
    assert task["DesiredState"] in ("shutdown", "running")


async def test_update_service(swarm, new_service):
    sid, _ = await new_service()
    info = await swarm.inspect_service(sid)
    spec = info["Spec"]
    spec["Labels"] = {**spec["Labels"], "ct.updated": "yes"}
    await swarm.update_service(sid, info["Version"]["Index"], spec)
    after = await swarm.inspect_service(sid)
    assert after["Spec"]["Labels"]["ct.updated"] == "yes"
    assert after["Version"]["Index"] > info["Version"]["Index"]


async def test_update_with_stale_version_fails(swarm, new_service):
    sid, _ = await new_service()
    info = await swarm.inspect_service(sid)
    spec = info["Spec"]
    await swarm.update_service(sid, info["Version"]["Index"], spec)
    with pytest.raises(EngineError) as err:
        await swarm.update_service(sid, info["Version"]["Index"], spec)
    assert "out of sequence" in str(err.value)


async def test_remove_service(swarm, new_service):
    sid, _ = await new_service()
    await swarm.remove_service(sid)
    with pytest.raises(NotFound):
        await swarm.inspect_service(sid)
    with pytest.raises(NotFound):
        await swarm.remove_service(sid)


async def test_missing_service_is_not_found(swarm, unique_name, test_image, test_labels):
    name = unique_name("absent")
    with pytest.raises(NotFound):
        await swarm.inspect_service(name)
    with pytest.raises(NotFound):
        await swarm.update_service(name, 1, service_spec(name, test_image, test_labels, ["true"]))


async def test_tasks_filtered_by_service(swarm, new_service):
    a, _ = await new_service()
    b, _ = await new_service()
    await eventually(lambda: _tasks(swarm, a), timeout=30)
    await eventually(lambda: _tasks(swarm, b), timeout=30)
    assert {t["ServiceID"] for t in await _tasks(swarm, a)} == {a}


# -- the task state machine, placement, restarts, nodes, endpoints ----------------------------
# What the engine (20.10) reports, probed on the real single-node swarm.

#: The engine's ``Status.Message`` per state and its order of states, as the
#: fake models them; these tests hold that table to the real engine.
MESSAGES = swarm_tasks.MESSAGES
ORDER = list(swarm_tasks.ORDER)
HOST_PORT = {"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"}


def _merge_task(spec: dict, **task: object) -> dict:
    spec["TaskTemplate"].update(task)
    return spec


async def _nodes(engine) -> list[dict]:
    return await engine.list_nodes()


async def _inspect_node(engine, ref: str) -> dict:
    return await engine.inspect_node(ref)


async def _trace(engine, sid: str, until, timeout: float = 30) -> list[tuple]:
    """Every distinct (task, state, message, err, desired, has node) seen until ``until(tasks)``."""
    seen: list[tuple] = []

    async def step():
        tasks = await _tasks(engine, sid)
        for t in tasks:
            st = t["Status"]
            key = (t["ID"], st["State"], st.get("Message"), st.get("Err"), t["DesiredState"], "NodeID" in t)
            if key not in seen:
                seen.append(key)
        return until(tasks)

    await eventually(step, timeout=timeout, interval=0.005)
    return seen


def _free_port() -> int:
    return free_ports(1)[0]


async def test_task_states_in_order_with_the_engine_messages(swarm, new_service):
    sid, _ = await new_service(["sh", "-c", "sleep 0.5; exit 3"])
    seen = await _trace(swarm, sid, lambda ts: ts and ts[0]["Status"]["State"] == "failed" and ts[0]["DesiredState"] == "shutdown")
    states = [s[1] for s in seen]
    assert [ORDER.index(s) for s in states] == sorted(ORDER.index(s) for s in states), states
    # "pending" lasts milliseconds on a real swarm, so a poll may miss it under load;
    # when it is seen, its place in the order and its message are checked like the rest
    assert {"running", "failed"} <= set(states), states
    for _, state, message, err, desired, has_node in seen:
        if state != "failed":
            assert message == MESSAGES[state], (state, message)
            assert err is None and desired == "running"
        assert has_node == (ORDER.index(state) >= ORDER.index("assigned")), (state, has_node)
    assert seen[-1][2:5] == ("started", "task: non-zero exit (3)", "shutdown")


async def test_task_that_exits_zero_is_complete(swarm, new_service):
    sid, _ = await new_service(["true"])
    task = await eventually(lambda: _task_in(swarm, sid, {"complete"}), timeout=30, interval=0.05)
    assert task["Status"]["Message"] == "finished"
    assert task["Status"]["ContainerStatus"]["ExitCode"] == 0
    assert "Err" not in task["Status"]
    await eventually(lambda: _desired(swarm, sid, "shutdown"), timeout=5)


async def _desired(engine, sid: str, desired: str) -> bool:
    tasks = await _tasks(engine, sid)
    return bool(tasks) and all(t["DesiredState"] == desired for t in tasks)


async def _pending_reason(engine, sid: str) -> dict | None:
    tasks = await _tasks(engine, sid)
    return tasks[0] if tasks and tasks[0]["Status"].get("Err") else None


@pytest.mark.parametrize(
    "task, err",
    [
        ({"Placement": {"Constraints": ["node.labels.ct-zone==nowhere"]}}, "scheduling constraints not satisfied on 1 node"),
        ({"Placement": {"Constraints": ["node.role==worker"]}}, "scheduling constraints not satisfied on 1 node"),
        ({"Resources": {"Reservations": {"MemoryBytes": 10**15}}}, "insufficient resources on 1 node"),
        ({"Resources": {"Reservations": {"NanoCPUs": 10**6 * 10**9}}}, "insufficient resources on 1 node"),
    ],
    ids=["label", "role", "memory", "cpus"],
)
async def test_no_suitable_node_stays_pending_with_the_reason(swarm, new_service, test_image, test_labels, unique_name, task, err):
    spec = _merge_task(service_spec(unique_name("pend"), test_image, test_labels, ["sleep", "300"]), **task)
    sid = await swarm.create_service(spec)
    pending = await eventually(lambda: _pending_reason(swarm, sid), timeout=15, interval=0.02)
    assert pending["Status"]["State"] == "pending"
    assert pending["Status"]["Message"] == "pending task scheduling"
    assert pending["Status"]["Err"] == f"no suitable node ({err})"
    assert pending["DesiredState"] == "running"
    assert "NodeID" not in pending


async def test_constraints_that_match_place_the_task(swarm, test_image, test_labels, unique_name):
    (node,) = await _nodes(swarm)
    host = node["Description"]["Hostname"]
    sid = await swarm.create_service(
        _merge_task(
            service_spec(unique_name("placed"), test_image, test_labels, ["sleep", "300"]),
            Placement={"Constraints": ["node.role==manager", f"node.id=={node['ID']}", f"node.hostname=={host.upper()}",
                                       "node.labels.ct-absent!=x"]},
        )
    )
    task = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.05)
    assert task["NodeID"] == node["ID"]


async def test_a_constraint_without_operator_is_refused(swarm, test_image, test_labels, unique_name):
    spec = _merge_task(service_spec(unique_name("badc"), test_image, test_labels, ["true"]),
                       Placement={"Constraints": ["node.labels.x=y"]})
    with pytest.raises(EngineError) as err:
        await swarm.create_service(spec)
    assert err.value.status == 500
    assert err.value.explanation == "rpc error: code = Unknown desc = constraint expected one operator from ==, !="


async def test_host_mode_port_in_use_keeps_the_second_task_pending(swarm, test_image, test_labels, unique_name):
    port = _free_port()
    endpoint = {"Mode": "dnsrr", "Ports": [dict(HOST_PORT, PublishedPort=port)]}
    first = await swarm.create_service(
        service_spec(unique_name("port1"), test_image, test_labels, HTTPD_CMD, EndpointSpec=endpoint))
    await eventually(lambda: _task_in(swarm, first, {"running"}), timeout=30, interval=0.05)
    second = await swarm.create_service(
        service_spec(unique_name("port2"), test_image, test_labels, HTTPD_CMD, EndpointSpec=endpoint))
    pending = await eventually(lambda: _pending_reason(swarm, second), timeout=15, interval=0.02)
    assert pending["Status"]["Err"] == "no suitable node (host-mode port already in use on 1 node)"


async def test_restart_policy_replaces_a_failed_task(swarm, test_image, test_labels, unique_name):
    spec = _merge_task(
        service_spec(unique_name("restart"), test_image, test_labels, ["sh", "-c", "sleep 0.3; exit 2"]),
        RestartPolicy={"Condition": "on-failure", "Delay": 100_000_000, "MaxAttempts": 1},
    )
    sid = await swarm.create_service(spec)

    async def two_failed():
        tasks = await _tasks(swarm, sid)
        return tasks if len(tasks) == 2 and all(t["Status"]["State"] == "failed" for t in tasks) else None

    seen = await _trace(swarm, sid, lambda ts: len(ts) == 2 and all(t["Status"]["State"] == "failed" for t in ts))
    tasks = await two_failed()
    assert tasks is not None
    assert {t["Slot"] for t in tasks} == {1}
    assert all(t["DesiredState"] == "shutdown" for t in tasks)
    assert all(t["Status"]["Err"] == "task: non-zero exit (2)" for t in tasks)
    first = min(tasks, key=lambda t: t["CreatedAt"])
    second = [t for t in tasks if t is not first][0]
    # the replacement waits out the restart delay desired "ready", never beyond "ready"
    for tid, state, _m, _e, desired, _n in seen:
        if tid == second["ID"] and desired == "ready":
            assert ORDER.index(state) <= ORDER.index("ready"), state
    await asyncio.sleep(1.0)
    assert len(await _tasks(swarm, sid)) == 2  # MaxAttempts 1: no third task


async def test_a_single_node_swarm_has_one_ready_manager(swarm, new_service):
    (node,) = await _nodes(swarm)
    assert node["Spec"]["Role"] == "manager"
    assert node["Spec"]["Availability"] == "active"
    assert node["Status"]["State"] == "ready"
    assert node["ManagerStatus"]["Leader"] is True
    assert node["ManagerStatus"]["Reachability"] == "reachable"
    assert node["Description"]["Resources"]["NanoCPUs"] > 0
    assert (await _inspect_node(swarm, node["ID"]))["ID"] == node["ID"]
    info = await swarm.info()
    assert info["Swarm"]["NodeID"] == node["ID"]
    sid, _ = await new_service()
    task = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.05)
    assert task["NodeID"] == node["ID"]
    with pytest.raises(NotFound) as err:
        await _inspect_node(swarm, "ct-no-such-node")
    assert "node ct-no-such-node not found" in str(err.value)


async def test_service_on_a_missing_network(swarm, test_image, test_labels, unique_name):
    net = unique_name("absent-net")
    spec = _merge_task(service_spec(unique_name("nonet"), test_image, test_labels, ["true"]), Networks=[{"Target": net}])
    with pytest.raises(EngineError) as err:
        await swarm.create_service(spec)
    # a 500, not a 404: dockerspawner.engine.protocol.classify_500 decides what it stands for
    assert err.value.status == 500
    assert err.value.explanation == f"network {net} not found"
    assert await swarm.list_services(filters={"name": spec["Name"]}) == []


async def test_update_status_after_an_update(swarm, new_service):
    sid, _ = await new_service(UpdateConfig={"Monitor": 200_000_000})
    old = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.05)
    info = await swarm.inspect_service(sid)
    assert "UpdateStatus" not in info
    spec = info["Spec"]
    spec["TaskTemplate"]["ContainerSpec"]["Env"] = ["CT_SERVICE=2"]
    await swarm.update_service(sid, info["Version"]["Index"], spec)
    status = (await eventually(lambda: _update_status(swarm, sid), timeout=5))
    assert status["State"] == "updating" and status["Message"] == "update in progress", status
    assert status["StartedAt"]

    async def completed():
        s = await _update_status(swarm, sid)
        return s if s and s["State"] == "completed" else None

    done = await eventually(completed, timeout=30, interval=0.05)
    assert done["Message"] == "update completed"
    assert done["StartedAt"] == status["StartedAt"] and done["CompletedAt"] >= done["StartedAt"]
    tasks = {t["ID"]: t for t in await _tasks(swarm, sid)}
    assert tasks[old["ID"]]["Status"]["State"] == "shutdown"
    assert tasks[old["ID"]]["DesiredState"] == "shutdown"
    (new,) = [t for t in tasks.values() if t["ID"] != old["ID"]]
    assert new["Status"]["State"] == "running"
    assert "CT_SERVICE=2" in new["Spec"]["ContainerSpec"]["Env"]
    # an update that leaves the task template alone replaces no task and has no UpdateStatus
    info = await swarm.inspect_service(sid)
    info["Spec"]["Labels"] = {**info["Spec"]["Labels"], "ct.relabelled": "yes"}
    await swarm.update_service(sid, info["Version"]["Index"], info["Spec"])
    assert "UpdateStatus" not in await swarm.inspect_service(sid)
    assert len(await _tasks(swarm, sid)) == 2


async def _update_status(engine, sid: str) -> dict | None:
    return (await engine.inspect_service(sid)).get("UpdateStatus")


async def test_endpoint_virtual_ips_on_an_overlay_network(swarm, test_image, test_labels, unique_name):
    net_name = unique_name("ov")
    net_id = await swarm.create_network(net_name, driver="overlay", labels=test_labels)

    async def ipam():  # allocated a moment after create on the engine
        return (await swarm.inspect_network(net_id))["IPAM"]["Config"]

    subnet = (await eventually(ipam, timeout=10))[0]["Subnet"]
    vip = await swarm.create_service(
        _merge_task(service_spec(unique_name("vip"), test_image, test_labels, ["sleep", "300"], EndpointSpec={"Mode": "vip"}),
                    Networks=[{"Target": net_name}]))
    dnsrr = await swarm.create_service(
        _merge_task(service_spec(unique_name("dnsrr"), test_image, test_labels, ["sleep", "300"]),
                    Networks=[{"Target": net_name}]))

    async def vips():
        return (await swarm.inspect_service(vip))["Endpoint"].get("VirtualIPs")

    (entry,) = await eventually(vips, timeout=10)
    assert entry["NetworkID"] == net_id
    import ipaddress

    assert ipaddress.ip_interface(entry["Addr"]).ip in ipaddress.ip_network(subnet)
    assert (await swarm.inspect_service(vip))["Endpoint"]["Spec"] == {"Mode": "vip"}
    assert (await swarm.inspect_service(dnsrr))["Endpoint"] == {"Spec": {}}
    task = await eventually(lambda: _task_in(swarm, dnsrr, {"running"}), timeout=30, interval=0.05)
    (attachment,) = task["NetworksAttachments"]
    assert attachment["Network"]["ID"] == net_id
    assert ipaddress.ip_interface(attachment["Addresses"][0]).ip in ipaddress.ip_network(subnet)


@pytest.mark.parametrize("fixed", [False, True], ids=["random-port", "fixed-port"])
async def test_host_mode_published_port(swarm, test_image, test_labels, unique_name, fixed):
    port = dict(HOST_PORT, PublishedPort=_free_port()) if fixed else dict(HOST_PORT)
    sid = await swarm.create_service(
        service_spec(unique_name("hp"), test_image, test_labels, HTTPD_CMD, EndpointSpec={"Mode": "dnsrr", "Ports": [port]}))
    async def allocated():  # the engine's allocator fills the endpoint a moment after create
        endpoint = (await swarm.inspect_service(sid))["Endpoint"]
        return endpoint if endpoint.get("Ports") else None

    endpoint = await eventually(allocated, timeout=10)
    assert endpoint["Ports"] == [port]
    assert endpoint["Spec"] == {"Mode": "dnsrr", "Ports": [port]}
    task = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.05)
    ports = task["Status"]["PortStatus"]["Ports"]
    # one entry for the IPv4 binding, then one for IPv6; with a random port Docker 20.10 may
    # give them different host ports (seen: 32792 and 32793): the first is the one on 0.0.0.0
    assert len(ports) == 2 and all(dict(p, PublishedPort=0) == dict(HOST_PORT, PublishedPort=0) for p in ports)
    host_port = ports[0]["PublishedPort"]
    if fixed:
        assert {p["PublishedPort"] for p in ports} == {port["PublishedPort"]}
    status, body = await http_get(f"http://127.0.0.1:{host_port}/", timeout=15)
    assert status == 200 and body.strip() == HTTPD_BODY


async def test_an_ingress_port_is_the_services_not_the_tasks(swarm, test_image, test_labels, unique_name):
    """SwarmSpawner reads a host-mode port from the task and an ingress port from
    the service: the task's PortStatus lists host-mode ports only. (Nothing
    connects: this machine has no IPVS for the routing mesh.)"""
    ingress = {"Protocol": "tcp", "TargetPort": 8888}
    sid = await swarm.create_service(
        service_spec(unique_name("ing"), test_image, test_labels, HTTPD_CMD, EndpointSpec={"Ports": [ingress]}))
    task = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.05)
    assert task["Status"]["PortStatus"] == {}

    async def published():
        ports = (await swarm.inspect_service(sid))["Endpoint"].get("Ports") or []
        return ports if ports and ports[0].get("PublishedPort") else None

    (port,) = await eventually(published, timeout=10)
    assert dict(port, PublishedPort=0) == dict(ingress, PublishMode="ingress", PublishedPort=0)
    assert port["PublishedPort"] > 0


async def test_removing_a_service_leaves_its_tasks_desired_remove_until_stopped(swarm, new_service):
    sid, _ = await new_service()
    running = await eventually(lambda: _task_in(swarm, sid, {"running"}), timeout=30, interval=0.05)
    await swarm.remove_service(sid)

    async def mine():
        return [t for t in await swarm.list_tasks() if t["ServiceID"] == sid]

    (task,) = await mine()
    assert task["ID"] == running["ID"] and task["DesiredState"] == "remove"
    seen = {t["Status"]["State"] async for t in _until_gone(mine)}
    assert seen <= {"running", "shutdown"}
    with pytest.raises(NotFound):
        await _tasks(swarm, sid)


async def _until_gone(fetch, timeout: float = 20):
    import time as _time

    deadline = _time.monotonic() + timeout
    while True:
        tasks = await fetch()
        if not tasks:
            return
        for t in tasks:
            yield t
        assert _time.monotonic() < deadline, f"tasks still listed after {timeout}s: {tasks}"
        await asyncio.sleep(0.02)
