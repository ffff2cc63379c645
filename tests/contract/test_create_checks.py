"""Contract: what the engine refuses at create and at start, and the state a
refused start leaves behind (a hook test on the fake must fail where the
engine fails)."""

from __future__ import annotations

import re

import pytest

from dockerspawner.engine import Conflict, EngineError, NotFound

from .helpers import eventually

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("docker_only")]

CREATE_REFUSALS = [
    pytest.param({"mem_limit": "4m"}, "Minimum memory limit allowed is 6MB", id="memory-below-6mb"),
    pytest.param(
        {"auto_remove": True, "restart_policy": {"Name": "always"}},
        "can't create 'AutoRemove' container with restart policy",
        id="auto-remove-with-restart",
    ),
    pytest.param({"restart_policy": {"Name": "bogus"}}, "invalid restart policy 'bogus'", id="unknown-restart"),
    pytest.param(
        {"restart_policy": {"Name": "always", "MaximumRetryCount": 3}},
        "maximum retry count cannot be used with restart policy 'always'",
        id="retry-count-with-always",
    ),
    pytest.param({"cpu_quota": 500}, "CPU cfs quota can not be less than 1ms (i.e. 1000)", id="cpu-quota-below-1ms"),
    pytest.param(
        {"nano_cpus": 10**9, "cpu_period": 100000},
        "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        id="nano-cpus-and-period",
    ),
    pytest.param(
        {"nano_cpus": 10**9, "cpu_quota": 50000},
        "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        id="nano-cpus-and-quota",
    ),
]


@pytest.mark.parametrize("host_config, message", CREATE_REFUSALS)
async def test_create_refuses_bad_host_config(engine, make_container, label_filters, host_config, message):
    with pytest.raises(EngineError) as info:
        await make_container(["true"], host_config=dict(host_config))
    assert info.value.status == 400
    assert message in info.value.explanation
    assert await engine.list_containers(all=True, filters={"label": label_filters}) == []


async def test_valid_limits_at_their_minimum_are_accepted(engine, make_container):
    cid = await make_container(
        ["true"], host_config={"mem_limit": 6 * 1024 * 1024, "cpu_quota": 1000, "cpu_period": 100000}
    )
    hc = (await engine.inspect_container(cid))["HostConfig"]
    assert (hc["Memory"], hc["CpuQuota"]) == (6 * 1024 * 1024, 1000)


def _assert_refused_start(state: dict, exit_code: int, error: str) -> None:
    assert state["Status"] == "created"
    assert state["Running"] is False
    assert state["ExitCode"] == exit_code
    assert error in state["Error"]
    assert state["StartedAt"] == "0001-01-01T00:00:00Z"


async def test_network_of_a_missing_container_fails_the_start(engine, make_container, unique_name):
    missing = unique_name("absent")
    cid = await make_container(["sleep", "300"], host_config={"network_mode": f"container:{missing}"})
    with pytest.raises(NotFound) as info:
        await engine.start_container(cid)
    assert info.value.status == 404
    assert f"No such container: {missing}" in info.value.explanation
    _assert_refused_start((await engine.inspect_container(cid))["State"], 128, missing)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["no-such-program", "--flag"], 'exec: "no-such-program": executable file not found in $PATH'),
        (["/bin/no-such-program"], 'exec: "/bin/no-such-program": stat /bin/no-such-program: no such file'),
    ],
    ids=["on-path", "absolute"],
)
async def test_unknown_executable_fails_the_start(engine, make_container, argv, says):
    cid = await make_container(argv, host_config={"init": False})
    with pytest.raises(EngineError) as info:
        await engine.start_container(cid)
    assert info.value.status == 400
    assert says in info.value.explanation
    _assert_refused_start((await engine.inspect_container(cid))["State"], 127, says)


async def test_unknown_executable_under_init_exits_127(engine, make_container):
    cid = await make_container(["no-such-program"], start=True)
    assert await engine.wait_container(cid, timeout=10) == 127
    # the engine sometimes loses the output of a container that lived a few
    # milliseconds; when it has any, it is tini's message (with tini's pid)
    said = r"\[FATAL tini \(\d+\)\] exec no-such-program failed: No such file or directory\n"
    assert re.fullmatch(f"({said})?", await engine.container_logs(cid))


async def test_gpu_request_without_a_device_driver_fails_the_start(engine, make_container):
    request = {"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}
    cid = await make_container(["true"], host_config={"device_requests": [request]})
    assert (await engine.inspect_container(cid))["HostConfig"]["DeviceRequests"][0]["Driver"] == "nvidia"
    with pytest.raises(EngineError) as info:
        await engine.start_container(cid)
    assert info.value.status == 500
    says = 'could not select device driver "nvidia" with capabilities: [[gpu]]'
    assert says in info.value.explanation
    _assert_refused_start((await engine.inspect_container(cid))["State"], 128, says)


async def test_gpu_request_without_driver_name_names_the_empty_driver(engine, make_container):
    request = {"Count": 1, "Capabilities": [["gpu", "utility"]]}
    cid = await make_container(["true"], host_config={"device_requests": [request]})
    with pytest.raises(EngineError) as info:
        await engine.start_container(cid)
    assert 'could not select device driver "" with capabilities: [[gpu utility]]' in info.value.explanation


async def test_remove_right_after_stop_of_auto_remove_container_is_conflict(engine, make_container):
    cid = await make_container(["sleep", "300"], start=True, host_config={"auto_remove": True, "init": True})
    await engine.stop_container(cid, timeout=0)
    with pytest.raises(Conflict) as info:
        await engine.remove_container(cid)
    assert info.value.status == 409
    assert f"removal of container {cid} is already in progress" in info.value.explanation
    await eventually(lambda: _removed(engine, cid), timeout=5)


async def _removed(engine, cid: str) -> bool:
    try:
        await engine.inspect_container(cid)
    except NotFound:
        return True
    return False
