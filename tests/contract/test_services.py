"""Contract: swarm services and their tasks."""

from __future__ import annotations

import re

import pytest

from dockerspawner.engine import Conflict, EngineError, NotFound

from .helpers import eventually

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
