"""The fake's swarm beyond one node: placement over several nodes, node down
and back, orphaned tasks, update failures, task history. What a single-node
engine can show is in tests/contract/test_services.py; what the real two-node
swarm showed for a killed worker (tests/swarm) is mirrored here."""

from __future__ import annotations

import asyncio
import time

import pytest
from fk_helpers import BUSYBOX
from hypothesis import given, settings
from hypothesis import strategies as st

from dockerspawner.engine import NotFound
from fakedocker.swarm_nodes import Demand, new_node, parse_constraints, schedule

HTTPD = ["httpd", "-f", "-p", "8888", "-h", "/var/www"]


def spec(name: str, command=("sleep", "300"), *, restart=None, **task) -> dict:
    tt = {
        "ContainerSpec": {"Image": BUSYBOX, "Command": list(command), "Init": True, "StopGracePeriod": 10**8},
        "RestartPolicy": restart or {"Condition": "none"},
    }
    tt.update(task)
    return {"Name": name, "TaskTemplate": tt, "EndpointSpec": {"Mode": "dnsrr"}}


async def until(fn, timeout: float = 5, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {last!r}")


def task_in(fake, sid: str, state: str, **match):
    async def find():
        for t in await fake.list_tasks(filters={"service": sid}):
            if t["Status"]["State"] == state and all(t.get(k) == v for k, v in match.items()):
                return t
        return None

    return find


def pending_reason(fake, sid: str):
    async def find():
        for t in await fake.list_tasks(filters={"service": sid}):
            if t["Status"]["State"] == "pending" and t["Status"].get("Err"):
                return t["Status"]["Err"]
        return None

    return find


async def test_constraint_places_the_task_on_the_labelled_worker(fake):
    worker = fake.swarm.add_node("wk1", labels={"zone": "a"})
    sid = await fake.create_service(spec("placed", Placement={"Constraints": ["node.labels.zone==A"]}))
    task = await until(task_in(fake, sid, "running"))
    assert task["NodeID"] == worker.id
    c = await fake.inspect_container(task["Status"]["ContainerStatus"]["ContainerID"])
    assert c["Config"]["Labels"]["com.docker.swarm.node.id"] == worker.id
    assert [t["ID"] for t in await fake.list_tasks(filters={"node": "wk1"})] == [task["ID"]]
    assert await fake.list_tasks(filters={"node": "self"}) == []


@pytest.mark.parametrize(
    "nodes, task, err",
    [
        ([{}, {}], {"Placement": {"Constraints": ["node.labels.x==y"]}}, "scheduling constraints not satisfied on 3 nodes"),
        (
            [{"availability": "drain"}],
            {"Placement": {"Constraints": ["node.role==worker"]}},
            "1 node not available for new tasks; scheduling constraints not satisfied on 1 node",
        ),
        (
            [{"memory_bytes": 1 << 20}, {"labels": {"x": "y"}, "memory_bytes": 1 << 20}],
            {"Placement": {"Constraints": ["node.labels.x==y"]}, "Resources": {"Reservations": {"MemoryBytes": 1 << 30}}},
            "insufficient resources on 2 nodes; scheduling constraints not satisfied on 1 node",
        ),
        ([{"availability": "pause"}, {"availability": "pause"}], {"Resources": {"Reservations": {"NanoCPUs": 10**12}}},
         "2 nodes not available for new tasks; insufficient resources on 1 node"),
        # most frequent reason first, whatever the order of the checks (as a 3-node swarm answers)
        ([{"availability": "drain"}, {}], {"Placement": {"Constraints": ["node.labels.x==y"]}},
         "scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks"),
    ],
    ids=["plural", "drained", "resources-first", "paused", "most-frequent-first"],
)
async def test_the_pending_reason_counts_each_node_once(fake, nodes, task, err):
    for i, kw in enumerate(nodes):
        fake.swarm.add_node(f"wk{i}", **kw)
    sid = await fake.create_service(spec("nowhere", **task))
    assert await until(pending_reason(fake, sid)) == f"no suitable node ({err})"


async def test_a_pending_task_is_placed_when_a_node_fits(fake):
    sid = await fake.create_service(spec("waits", Placement={"Constraints": ["node.labels.gpu==yes"]}))
    await until(pending_reason(fake, sid))
    node = fake.swarm.add_node("wk-gpu")
    await asyncio.sleep(0.05)
    assert (await fake.list_tasks(filters={"service": sid}))[0]["Status"]["State"] == "pending"
    fake.swarm.update_node(node.id, labels={"gpu": "yes"})
    task = await until(task_in(fake, sid, "running"))
    assert task["NodeID"] == node.id


async def test_reservations_are_released_when_a_task_ends(fake):
    half = {"Reservations": {"MemoryBytes": 5 << 30}}  # the default node has 8 GiB
    first = await fake.create_service(spec("big1", Resources=half))
    await until(task_in(fake, first, "running"))
    second = await fake.create_service(spec("big2", Resources=half))
    assert await until(pending_reason(fake, second)) == "no suitable node (insufficient resources on 1 node)"
    await fake.remove_service(first)
    await until(task_in(fake, second, "running"))


async def test_worker_down_then_back(fake):
    """As the real two-node swarm showed for `kill -9` of the worker's dockerd."""
    worker = fake.swarm.add_node("wk1")
    sid = await fake.create_service(
        spec("svc", HTTPD, restart={"Condition": "any", "Delay": 50_000_000},
             Placement={"Constraints": [f"node.id=={worker.id}"]})
    )
    old = await until(task_in(fake, sid, "running"))
    fake.swarm.node_down("wk1")
    node = await fake.inspect_node(worker.id)
    assert node["Status"] == {"State": "down", "Addr": "127.0.0.1", "Message": "heartbeat failure"}
    tasks = {t["ID"]: t for t in await fake.list_tasks(filters={"service": sid})}
    assert tasks[old["ID"]]["Status"]["State"] == "running"  # stale: the manager cannot know
    assert tasks[old["ID"]]["DesiredState"] == "shutdown"
    assert await until(pending_reason(fake, sid)) == (
        "no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 1 node)"
    )
    cid = old["Status"]["ContainerStatus"]["ContainerID"]
    assert (await fake.inspect_container(cid))["State"]["Running"] is True  # still serving
    fake.swarm.node_up("wk1")
    failed = await until(task_in(fake, sid, "failed"))
    assert failed["ID"] == old["ID"] and failed["Status"]["Err"] == "task: non-zero exit (143)"
    new = await until(task_in(fake, sid, "running"))
    assert new["ID"] != old["ID"] and new["NodeID"] == worker.id
    assert len(await fake.list_tasks(filters={"service": sid})) == 2


async def test_worker_down_moves_an_unconstrained_task_to_the_manager(fake):
    worker = fake.swarm.add_node("wk1")
    fake.swarm.update_node(fake.swarm.node_id, availability="pause")
    sid = await fake.create_service(spec("svc", restart={"Condition": "on-failure", "Delay": 0}))
    old = await until(task_in(fake, sid, "running"))
    assert old["NodeID"] == worker.id
    fake.swarm.update_node(fake.swarm.node_id, availability="active")
    fake.swarm.node_down(worker.id)
    new = await until(task_in(fake, sid, "running", DesiredState="running"))
    assert new["NodeID"] == fake.swarm.node_id


async def test_restart_none_is_not_replaced_when_its_node_dies(fake):
    worker = fake.swarm.add_node("wk1")
    sid = await fake.create_service(spec("svc", Placement={"Constraints": ["node.role==worker"]}))
    await until(task_in(fake, sid, "running"))
    fake.swarm.node_down(worker.id)
    await asyncio.sleep(0.05)
    (task,) = await fake.list_tasks(filters={"service": sid})
    assert (task["Status"]["State"], task["DesiredState"]) == ("running", "shutdown")


async def test_tasks_of_a_node_that_stays_down_become_orphaned(fake):
    worker = fake.swarm.add_node("wk1")
    sid = await fake.create_service(spec("svc", Placement={"Constraints": ["node.role==worker"]}))
    await until(task_in(fake, sid, "running"))
    with pytest.raises(ValueError):
        fake.swarm.orphan_tasks(worker.id)
    fake.swarm.node_down(worker.id)
    (tid,) = fake.swarm.orphan_tasks(worker.id)
    (task,) = await fake.list_tasks(filters={"service": sid})
    assert task["ID"] == tid and task["Status"]["State"] == "orphaned"
    assert task["Status"]["Message"] == "started"


async def test_nodes_list_and_inspect(fake):
    worker = fake.swarm.add_node("wk1", labels={"zone": "a"}, nano_cpus=4 * 10**9)
    nodes = await fake.list_nodes()
    assert {n["Spec"]["Role"] for n in nodes} == {"manager", "worker"}
    (w,) = await fake.list_nodes(filters={"role": "worker"})
    assert w["ID"] == worker.id and w["Spec"]["Labels"] == {"zone": "a"}
    assert w["Description"]["Resources"]["NanoCPUs"] == 4 * 10**9
    assert "ManagerStatus" not in w
    assert (await fake.inspect_node("self"))["ManagerStatus"]["Leader"] is True
    assert (await fake.inspect_node("wk1"))["ID"] == worker.id
    assert (await fake.info())["Swarm"]["Nodes"] == 2
    with pytest.raises(NotFound, match="node nope not found"):
        await fake.inspect_node("nope")


async def test_an_update_whose_new_task_fails_is_paused(fake):
    sid = await fake.create_service(spec("svc") | {"UpdateConfig": {"Monitor": 10**9}})
    await until(task_in(fake, sid, "running"))
    info = await fake.inspect_service(sid)
    info["Spec"]["TaskTemplate"]["ContainerSpec"]["Command"] = ["sh", "-c", "exit 4"]
    await fake.update_service(sid, info["Version"]["Index"], info["Spec"])
    failed = await until(task_in(fake, sid, "failed"))

    async def paused():
        status = (await fake.inspect_service(sid)).get("UpdateStatus") or {}
        return status if status.get("State") == "paused" else None

    status = await until(paused)
    assert status["Message"] == f"update paused due to failure or early termination of task {failed['ID']}"


async def test_task_history_keeps_five_tasks_per_slot(fake):
    sid = await fake.create_service(spec("flappy", ["true"], restart={"Condition": "any", "Delay": 0}))
    created: set[str] = set()

    async def many():
        tasks = await fake.list_tasks(filters={"service": sid})
        assert len(tasks) <= 5
        created.update(t["ID"] for t in tasks)
        return len(created) >= 8

    await until(many, timeout=10)


async def test_without_a_restart_policy_a_replacement_waits_five_seconds(fake):
    sid = await fake.create_service(
        {"Name": "dflt", "TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Command": ["true"]}}}
    )
    assert "RestartPolicy" not in (await fake.inspect_service(sid))["Spec"]["TaskTemplate"]
    await until(task_in(fake, sid, "complete"))
    await until(task_in(fake, sid, "ready", DesiredState="ready"))
    await asyncio.sleep(0.3)
    assert await task_in(fake, sid, "ready", DesiredState="ready")()


async def test_a_server_that_exits_on_a_down_node_is_reported_when_the_node_is_back(fake):
    worker = fake.swarm.add_node("wk1")
    sid = await fake.create_service(spec("svc", Placement={"Constraints": ["node.role==worker"]}))
    task = await until(task_in(fake, sid, "running"))
    fake.swarm.node_down(worker.id)
    fake.exit_container(task["Status"]["ContainerStatus"]["ContainerID"], 5)
    await asyncio.sleep(0.05)
    (stale,) = await fake.list_tasks(filters={"service": sid})
    assert stale["Status"]["State"] == "running"
    fake.swarm.node_up(worker.id)
    failed = await until(task_in(fake, sid, "failed"))
    assert failed["Status"]["Err"] == "task: non-zero exit (5)"


def _node(role: str, zone: str | None, availability: str, state: str, memory: int):
    node = new_node(f"n-{zone}", role=role, labels={"zone": zone} if zone else {}, availability=availability,
                    memory_bytes=memory)
    node.state = state
    return node


NODES = st.builds(
    _node,
    st.sampled_from(["manager", "worker"]),
    st.sampled_from(["a", "b", None]),
    st.sampled_from(["active", "pause", "drain"]),
    st.sampled_from(["ready", "down"]),
    st.sampled_from([1 << 20, 1 << 30]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(NODES, min_size=1, max_size=6),
    st.lists(st.sampled_from(["node.labels.zone==a", "node.role==worker", "node.labels.zone!=b"]), max_size=2),
    st.sampled_from([0, 1 << 25]),
)
def test_the_scheduler_picks_a_node_that_fits_or_accounts_for_every_node(nodes, constraints, memory):
    demand = Demand(parse_constraints(constraints), memory_bytes=memory)

    def fits(n) -> bool:
        return (n.state == "ready" and n.availability == "active" and n.memory_bytes >= memory
                and all(c.matches(n) for c in demand.constraints))

    node, why = schedule(nodes, demand, {})
    if node is not None:
        assert why == "" and fits(node)
        return
    assert not any(fits(n) for n in nodes)
    assert why.startswith("no suitable node (") and why.endswith(")")
    counts = [int(part.split(" node")[0].split()[-1]) for part in why[len("no suitable node ("):-1].split("; ")]
    assert sum(counts) == len(nodes)
    assert counts == sorted(counts, reverse=True)
