"""Contract: container create, inspect, list and lifecycle."""

from __future__ import annotations

import re

import pytest

from dockerspawner.engine import Conflict, InvalidSpec, NotFound

from .helpers import eventually, same_image_ref

pytestmark = pytest.mark.engine

CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
ZERO_TIME = "0001-01-01T00:00:00Z"


async def test_create_returns_id_and_inspect_shape(engine, make_container, unique_name, test_image):
    name = unique_name("shape")
    cid = await make_container(name=name)
    assert CONTAINER_ID.fullmatch(cid)
    info = await engine.inspect_container(cid)
    assert info["Id"] == cid
    assert info["Name"] == "/" + name
    assert isinstance(info["Created"], str) and info["Created"][:2] == "20"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", info["Image"])
    assert info["Image"] == (await engine.inspect_image(test_image))["Id"]
    state = info["State"]
    for key in ("Status", "Running", "ExitCode", "Error", "OOMKilled", "StartedAt", "FinishedAt"):
        assert key in state, key
    config = info["Config"]
    for key in ("Image", "Env", "Cmd", "Labels"):
        assert key in config, key
    assert same_image_ref(config["Image"], test_image)
    assert isinstance(info["HostConfig"], dict)
    assert "Ports" in info["NetworkSettings"] and "Networks" in info["NetworkSettings"]
    assert isinstance(info["Mounts"], list)


async def test_created_container_is_not_running(engine, make_container):
    state = (await engine.inspect_container(await make_container()))["State"]
    assert state["Status"] == "created"
    assert state["Running"] is False
    assert state["ExitCode"] == 0
    assert state["StartedAt"] == ZERO_TIME


async def test_inspect_by_name_with_and_without_slash_and_short_id(engine, make_container, unique_name):
    name = unique_name("ref")
    cid = await make_container(name=name)
    assert (await engine.inspect_container(name))["Id"] == cid
    assert (await engine.inspect_container("/" + name))["Id"] == cid
    assert (await engine.inspect_container(cid[:12]))["Id"] == cid


async def test_inspect_missing_container_is_not_found(engine, unique_name):
    with pytest.raises(NotFound) as info:
        await engine.inspect_container(unique_name("absent"))
    assert info.value.status == 404
    assert "no such container" in str(info.value).lower()


async def test_create_stores_command_env_labels(engine, make_container):
    cid = await make_container(
        ["sh", "-c", "echo hi; sleep 300"],
        environment={"FOO": "bar", "JUPYTERHUB_API_TOKEN": "t"},
        labels={"ct.role": "user", "ct.empty": ""},
        working_dir="/tmp",
        user="nobody",
        hostname="ct-host",
    )
    config = (await engine.inspect_container(cid))["Config"]
    assert config["Cmd"] == ["sh", "-c", "echo hi; sleep 300"]
    assert {"FOO=bar", "JUPYTERHUB_API_TOKEN=t"} <= set(config["Env"])
    assert config["Labels"]["ct.role"] == "user"
    assert config["Labels"]["ct.empty"] == ""
    assert config["Labels"]["org.jupyterhub.test"] == "contract"
    assert config["WorkingDir"] == "/tmp"
    assert config["User"] == "nobody"
    assert config["Hostname"] == "ct-host"


async def test_create_env_as_list_and_command_as_string(engine, make_container):
    cid = await make_container("sleep 300", environment=["A=1", "B=two words"])
    config = (await engine.inspect_container(cid))["Config"]
    assert config["Cmd"] == ["sleep", "300"]
    assert {"A=1", "B=two words"} <= set(config["Env"])


async def test_create_name_conflict_names_the_holder(engine, make_container, unique_name):
    name = unique_name("taken")
    holder = await make_container(name=name)
    with pytest.raises(Conflict) as info:
        await make_container(name=name)
    assert holder in str(info.value)


async def test_create_with_missing_image_is_not_found(engine, make_container, unique_name):
    with pytest.raises(NotFound) as info:
        await make_container(image=f"local/{unique_name('absent')}:nope")
    assert "no such image" in str(info.value).lower()


async def test_create_with_unknown_host_config_key_is_invalid(engine, make_container):
    with pytest.raises(InvalidSpec) as info:
        await make_container(host_config={"no_such_option": 1})
    assert "no_such_option" in str(info.value)


async def test_create_without_image_is_invalid(engine, unique_name):
    with pytest.raises(InvalidSpec):
        await engine.create_container({"name": unique_name("noimage"), "command": ["true"]})


async def test_host_config_limits_and_flags(engine, make_container):
    cid = await make_container(
        host_config={
            "mem_limit": "64m",
            "cpu_period": 100000,
            "cpu_quota": 50000,
            "init": True,
            "auto_remove": False,
        }
    )
    hc = (await engine.inspect_container(cid))["HostConfig"]
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["CpuPeriod"] == 100000
    assert hc["CpuQuota"] == 50000
    assert hc["Init"] is True
    assert hc["AutoRemove"] is False


async def test_port_bindings_in_host_config(engine, make_container):
    cid = await make_container(ports=[8888], host_config={"port_bindings": {8888: ("127.0.0.1", None)}})
    info = await engine.inspect_container(cid)
    assert "8888/tcp" in info["Config"]["ExposedPorts"]
    bindings = info["HostConfig"]["PortBindings"]["8888/tcp"]
    assert bindings[0]["HostIp"] == "127.0.0.1"
    # Docker picks the host port at start (HostPort ""), Podman at create.
    assert bindings[0]["HostPort"] in ("", "0", None) or bindings[0]["HostPort"].isdigit()


async def test_volume_bind_becomes_a_mount(engine, make_container, unique_name, test_labels):
    vol = unique_name("vol")
    await engine.create_volume(vol, labels=test_labels)
    cid = await make_container(host_config={"binds": {vol: {"bind": "/data", "mode": "rw"}}})
    info = await engine.inspect_container(cid)
    assert any(b.startswith(f"{vol}:/data") for b in info["HostConfig"]["Binds"])
    mounts = [m for m in info["Mounts"] if m["Destination"] == "/data"]
    assert mounts and mounts[0]["Type"] == "volume"
    assert mounts[0]["Name"] == vol
    assert mounts[0]["RW"] is True


async def test_mounts_entry_becomes_a_mount(engine, make_container, unique_name, test_labels):
    vol = unique_name("mnt")
    await engine.create_volume(vol, labels=test_labels)
    cid = await make_container(
        host_config={"mounts": [{"Type": "volume", "Source": vol, "Target": "/home/jovyan", "ReadOnly": True}]}
    )
    await engine.start_container(cid)
    info = await engine.inspect_container(cid)
    mounts = [m for m in info["Mounts"] if m["Destination"] == "/home/jovyan"]
    assert mounts and mounts[0]["Name"] == vol
    assert mounts[0]["RW"] is False


async def test_start_runs_the_container(engine, make_container):
    cid = await make_container(start=True)
    state = (await engine.inspect_container(cid))["State"]
    assert state["Status"] == "running"
    assert state["Running"] is True
    assert state["StartedAt"] != ZERO_TIME
    assert state["Pid"] > 0


async def test_start_twice_is_fine(engine, make_container):
    cid = await make_container(start=True)
    await engine.start_container(cid)
    assert (await engine.inspect_container(cid))["State"]["Running"] is True


async def test_start_missing_or_removed_is_not_found(engine, make_container, unique_name):
    with pytest.raises(NotFound):
        await engine.start_container(unique_name("absent"))
    cid = await make_container()
    await engine.remove_container(cid)
    with pytest.raises(NotFound):
        await engine.start_container(cid)


async def test_default_network_gives_an_address(engine, make_container):
    cid = await make_container(start=True)
    networks = (await engine.inspect_container(cid))["NetworkSettings"]["Networks"]
    assert networks
    for net in networks.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", net["IPAddress"]), net


async def test_command_exit_code_and_state(engine, make_container):
    cid = await make_container(["sh", "-c", "echo out; echo err >&2; exit 3"], start=True)
    assert await engine.wait_container(cid, timeout=10) == 3
    state = (await engine.inspect_container(cid))["State"]
    assert state["Status"] == "exited"
    assert state["Running"] is False
    assert state["ExitCode"] == 3
    assert state["FinishedAt"] != ZERO_TIME
    assert state["OOMKilled"] is False


async def test_true_and_false_exit_codes(engine, make_container):
    t = await make_container(["true"], start=True)
    f = await make_container(["false"], start=True)
    assert await engine.wait_container(t, timeout=10) == 0
    assert await engine.wait_container(f, timeout=10) == 1


async def test_wait_on_exited_container_returns_again(engine, make_container):
    cid = await make_container(["sh", "-c", "exit 7"], start=True)
    assert await engine.wait_container(cid, timeout=10) == 7
    assert await engine.wait_container(cid, timeout=10) == 7


async def test_wait_timeout_on_running_container(engine, make_container):
    from dockerspawner.engine import EngineUnavailable

    cid = await make_container(start=True)
    with pytest.raises(EngineUnavailable):
        await engine.wait_container(cid, timeout=0.5)
    assert (await engine.inspect_container(cid))["State"]["Running"] is True


async def test_wait_missing_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.wait_container(unique_name("absent"), timeout=5)


async def test_stop_running_container(engine, make_container):
    cid = await make_container(start=True)
    await engine.stop_container(cid, timeout=1)
    state = (await engine.inspect_container(cid))["State"]
    assert state["Status"] == "exited"
    assert state["Running"] is False
    # SIGTERM through the init process, or SIGKILL after the timeout.
    assert state["ExitCode"] in (143, 137)


async def test_stop_exited_or_created_container_is_fine(engine, make_container):
    cid = await make_container(["true"], start=True)
    await engine.wait_container(cid, timeout=10)
    await engine.stop_container(cid, timeout=1)
    assert (await engine.inspect_container(cid))["State"]["ExitCode"] == 0
    created = await make_container()
    await engine.stop_container(created, timeout=1)
    assert (await engine.inspect_container(created))["State"]["Status"] == "created"


async def test_stop_missing_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.stop_container(unique_name("absent"), timeout=1)


async def test_restart_after_stop(engine, make_container):
    cid = await make_container(start=True)
    await engine.stop_container(cid, timeout=1)
    await engine.start_container(cid)
    assert (await engine.inspect_container(cid))["State"]["Running"] is True


async def test_kill_running_container(engine, make_container):
    cid = await make_container(start=True)
    await engine.kill_container(cid)
    assert await engine.wait_container(cid, timeout=10) == 137
    assert (await engine.inspect_container(cid))["State"]["Status"] == "exited"


async def test_kill_not_running_is_conflict(engine, make_container):
    cid = await make_container()
    with pytest.raises(Conflict) as info:
        await engine.kill_container(cid)
    assert "running" in str(info.value).lower()


async def test_remove_running_without_force_is_conflict(engine, make_container):
    cid = await make_container(start=True)
    with pytest.raises(Conflict):
        await engine.remove_container(cid)
    assert (await engine.inspect_container(cid))["State"]["Running"] is True


async def test_remove_force_removes_running(engine, make_container):
    cid = await make_container(start=True)
    await engine.remove_container(cid, force=True)
    with pytest.raises(NotFound):
        await engine.inspect_container(cid)


async def test_remove_stopped_and_missing(engine, make_container):
    cid = await make_container()
    await engine.remove_container(cid)
    with pytest.raises(NotFound):
        await engine.inspect_container(cid)
    with pytest.raises(NotFound):
        await engine.remove_container(cid)


async def test_remove_with_volumes_removes_anonymous_volume(engine, make_container):
    cid = await make_container(host_config={"mounts": [{"Type": "volume", "Target": "/anon"}]})
    mounts = [m for m in (await engine.inspect_container(cid))["Mounts"] if m["Destination"] == "/anon"]
    assert mounts and mounts[0]["Type"] == "volume"
    anon = mounts[0]["Name"]
    assert (await engine.inspect_volume(anon))["Name"] == anon
    await engine.remove_container(cid, volumes=True)
    with pytest.raises(NotFound):
        await engine.inspect_volume(anon)


async def test_remove_without_volumes_keeps_anonymous_volume(engine, make_container):
    cid = await make_container(host_config={"mounts": [{"Type": "volume", "Target": "/anon"}]})
    anon = next(m for m in (await engine.inspect_container(cid))["Mounts"] if m["Destination"] == "/anon")["Name"]
    await engine.remove_container(cid)
    try:
        assert (await engine.inspect_volume(anon))["Name"] == anon
    finally:
        await engine.remove_volume(anon)


async def test_auto_remove_after_exit(engine, make_container):
    cid = await make_container(["true"], host_config={"auto_remove": True})
    assert (await engine.inspect_container(cid))["HostConfig"]["AutoRemove"] is True
    await engine.start_container(cid)

    async def gone() -> bool:
        try:
            await engine.inspect_container(cid)
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=10)


async def test_list_running_only_by_default_flag(engine, make_container, label_filters):
    running = await make_container(start=True)
    created = await make_container()
    some = {c["Id"] for c in await engine.list_containers(all=False, filters={"label": label_filters})}
    every = {c["Id"] for c in await engine.list_containers(all=True, filters={"label": label_filters})}
    assert running in some and created not in some
    assert {running, created} <= every


async def test_list_entry_shape(engine, make_container, label_filters, unique_name, test_image):
    name = unique_name("ls")
    cid = await make_container(name=name, labels={"ct.kind": "shape"}, start=True)
    [entry] = await engine.list_containers(filters={"label": label_filters + ["ct.kind=shape"]})
    assert entry["Id"] == cid
    assert entry["Names"] == ["/" + name]
    assert same_image_ref(entry["Image"], test_image)
    assert entry["State"] == "running"
    assert entry["Status"].startswith("Up")
    assert entry["Labels"]["ct.kind"] == "shape"
    assert isinstance(entry["Ports"], list)
    assert isinstance(entry["Created"], int)


async def test_list_filters_label_name_status_id(engine, make_container, label_filters, unique_name):
    a_name = unique_name("a")
    a = await make_container(name=a_name, labels={"ct.pick": "a"}, start=True)
    b = await make_container(["true"], labels={"ct.pick": "b"}, start=True)
    await engine.wait_container(b, timeout=10)

    async def ids(**filters) -> set[str]:
        f = {"label": label_filters, **filters}
        return {c["Id"] for c in await engine.list_containers(all=True, filters=f)}

    assert await ids(label=label_filters + ["ct.pick=a"]) == {a}
    assert await ids(label=label_filters + ["ct.pick"]) == {a, b}
    assert await ids(name=a_name) == {a}
    assert await ids(status="exited") == {b}
    assert await ids(status="running") == {a}
    assert await ids(id=b) == {b}
    assert await ids(label=label_filters + ["ct.pick=none"]) == set()
