"""The fake answers in the shapes and words of Docker 20.10 (API 1.41), as
recorded on the real engine with busybox containers."""

from __future__ import annotations

import asyncio
import ipaddress
import re

import pytest
from fk_helpers import BUSYBOX

from dockerspawner.engine import Conflict, EngineError, NotFound

RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
INSPECT_KEYS = {
    "Id",
    "Created",
    "Path",
    "Args",
    "State",
    "Image",
    "ResolvConfPath",
    "HostnamePath",
    "HostsPath",
    "LogPath",
    "Name",
    "RestartCount",
    "Driver",
    "Platform",
    "MountLabel",
    "ProcessLabel",
    "AppArmorProfile",
    "ExecIDs",
    "HostConfig",
    "GraphDriver",
    "Mounts",
    "Config",
    "NetworkSettings",
}
STATE_KEYS = {
    "Status",
    "Running",
    "Paused",
    "Restarting",
    "OOMKilled",
    "Dead",
    "Pid",
    "ExitCode",
    "Error",
    "StartedAt",
    "FinishedAt",
}
LIST_KEYS = {
    "Id",
    "Names",
    "Image",
    "ImageID",
    "Command",
    "Created",
    "Ports",
    "Labels",
    "State",
    "Status",
    "HostConfig",
    "NetworkSettings",
    "Mounts",
}


async def test_inspect_through_the_lifecycle(fake, run):
    cid = await run(
        ["httpd", "-f", "-p", "8888", "-h", "/var/www"],
        start=False,
        name="shape-1",
        environment={"FOO": "bar"},
        labels={"a": "b"},
        ports=[8888],
        host_config={"port_bindings": {8888: ("127.0.0.1", None)}, "mem_limit": "64m"},
    )
    info = await fake.inspect_container(cid)
    assert set(info) == INSPECT_KEYS and set(info["State"]) == STATE_KEYS
    assert re.fullmatch(r"[0-9a-f]{64}", info["Id"]) and info["Name"] == "/shape-1"
    assert RFC3339_NANO.fullmatch(info["Created"])
    assert (info["Path"], info["Args"]) == ("httpd", ["-f", "-p", "8888", "-h", "/var/www"])
    assert info["State"]["StartedAt"] == "0001-01-01T00:00:00Z" and info["State"]["Status"] == "created"
    assert info["Image"] == (await fake.inspect_image(BUSYBOX))["Id"]
    cfg = info["Config"]
    assert (cfg["Hostname"], cfg["Env"], cfg["Labels"], cfg["Image"]) == (
        cid[:12],
        ["FOO=bar"],
        {"a": "b"},
        BUSYBOX,
    )
    assert cfg["ExposedPorts"] == {"8888/tcp": {}}
    hc = info["HostConfig"]
    assert hc["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert (hc["NetworkMode"], hc["Memory"], hc["MemorySwap"], hc["ShmSize"]) == (
        "default",
        67108864,
        134217728,
        67108864,
    )
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    ns = info["NetworkSettings"]
    assert ns["Ports"] == {} and ns["IPAddress"] == "" and ns["Networks"]["bridge"]["IPAddress"] == ""

    await fake.start_container(cid)
    info = await fake.inspect_container(cid)
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert RFC3339_NANO.fullmatch(info["State"]["StartedAt"])
    ns = info["NetworkSettings"]
    (binding,) = ns["Ports"]["8888/tcp"]
    assert binding["HostIp"] == "127.0.0.1" and binding["HostPort"].isdigit()
    bridge = ns["Networks"]["bridge"]
    # addresses are loopback ones (fakedocker/networks.py), so the host reaches them
    subnet = ipaddress.ip_network((await fake.inspect_network("bridge"))["IPAM"]["Config"][0]["Subnet"])
    assert subnet.subnet_of(ipaddress.ip_network("127.0.0.0/8"))
    assert ipaddress.ip_address(bridge["IPAddress"]) == subnet.network_address + 2
    assert bridge["Gateway"] == str(subnet.network_address + 1)
    assert ns["IPAddress"] == bridge["IPAddress"] and bridge["IPPrefixLen"] == subnet.prefixlen
    assert bridge["MacAddress"] == "02:42:" + ":".join(
        f"{int(x):02x}" for x in bridge["IPAddress"].split(".")
    )

    await fake.stop_container(cid, timeout=0)
    info = await fake.inspect_container(cid)
    assert (info["State"]["Status"], info["State"]["ExitCode"]) == ("exited", 137)
    assert (
        info["NetworkSettings"]["Ports"] == {}
        and info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    )
    assert info["NetworkSettings"]["Networks"]["bridge"]["NetworkID"]


async def test_list_entries_and_status_words(fake, run):
    created = await run(start=False, name="l-created")
    running = await run(name="l-running", ports=[8888], host_config={"port_bindings": {8888: None}})
    exited = await run(["sh", "-c", "exit 3"], name="l-exited")
    await fake.wait_container(exited)
    rows = {r["Names"][0]: r for r in await fake.list_containers(all=True)}
    assert set(rows["/l-running"]) == LIST_KEYS
    assert rows["/l-created"]["Status"] == "Created" and rows["/l-created"]["State"] == "created"
    assert rows["/l-running"]["Status"] == "Up Less than a second"
    assert rows["/l-exited"]["Status"] == "Exited (3) Less than a second ago"
    assert rows["/l-exited"]["Command"] == "sh -c 'exit 3'"
    assert isinstance(rows["/l-running"]["Created"], int)
    port = rows["/l-running"]["Ports"]
    assert [p["IP"] for p in port] == ["0.0.0.0", "::"] and port[0]["PublicPort"] == port[1]["PublicPort"]
    assert [r["Names"][0] for r in await fake.list_containers(all=False)] == ["/l-running"]
    assert [r["Id"] for r in await fake.list_containers(filters={"status": "created"})] == [created]
    assert {r["Id"] for r in await fake.list_containers(filters={"name": "l-r"})} == {running}


async def test_config_merges_the_image_config(fake):
    fake.add_image(
        "img:env",
        config={
            "Env": ["A=b", "PATH=/bin"],
            "Cmd": ["sleep", "10"],
            "Labels": {"img": "1", "l": "img"},
            "ExposedPorts": {"8888/tcp": {}},
            "WorkingDir": "/home/jovyan",
            "User": "jovyan",
        },
    )
    cid = await fake.create_container(
        {"image": "img:env", "name": "merge", "environment": ["X=1", "A=override"], "labels": {"l": "spec"}}
    )
    cfg = (await fake.inspect_container(cid))["Config"]
    assert cfg["Env"] == ["X=1", "A=override", "PATH=/bin"]
    assert cfg["Cmd"] == ["sleep", "10"] and cfg["Labels"] == {"img": "1", "l": "spec"}
    assert (cfg["WorkingDir"], cfg["User"], cfg["ExposedPorts"]) == (
        "/home/jovyan",
        "jovyan",
        {"8888/tcp": {}},
    )


async def test_mount_shapes(fake, run, tmp_path):
    cid = await run(
        start=False,
        host_config={
            "binds": {str(tmp_path): {"bind": "/hosttmp", "mode": "ro"}},
            "mounts": [
                {"Type": "volume", "Source": "fk-mvol", "Target": "/m1"},
                {"Type": "tmpfs", "Target": "/m2"},
            ],
        },
    )
    mounts = (await fake.inspect_container(cid))["Mounts"]
    assert mounts == [
        {
            "Type": "bind",
            "Source": str(tmp_path),
            "Destination": "/hosttmp",
            "Mode": "ro",
            "RW": False,
            "Propagation": "rprivate",
        },
        {
            "Type": "volume",
            "Name": "fk-mvol",
            "Source": "/var/lib/docker/volumes/fk-mvol/_data",
            "Destination": "/m1",
            "Driver": "local",
            "Mode": "z",
            "RW": True,
            "Propagation": "",
        },
        {"Type": "tmpfs", "Source": "", "Destination": "/m2", "Mode": "", "RW": True, "Propagation": ""},
    ]
    with pytest.raises(Conflict, match=r"remove fk-mvol: volume is in use - \[" + cid):
        await fake.remove_volume("fk-mvol")


async def test_error_messages(fake, run):
    cid = await run(name="taken")
    with pytest.raises(Conflict) as info:
        await run(name="taken")
    assert info.value.explanation == (
        f'Conflict. The container name "/taken" is already in use by container "{cid}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    with pytest.raises(Conflict) as info:
        await fake.remove_container(cid)
    assert info.value.explanation == (
        f"You cannot remove a running container {cid}. Stop the container before attempting removal or force remove"
    )
    stopped = await run(["true"], name="done")
    await fake.wait_container(stopped)
    with pytest.raises(
        Conflict, match=f"Cannot kill container: {stopped}: Container {stopped} is not running"
    ):
        await fake.kill_container(stopped)
    assert await _explained(NotFound, fake.inspect_container("nope")) == "No such container: nope"
    assert (
        await _explained(NotFound, fake.create_container({"image": "nope", "command": ["true"]}))
        == "No such image: nope:latest"
    )
    assert (
        await _explained(EngineError, fake.create_container({"image": BUSYBOX, "name": "nocmd"}))
        == "No command specified"
    )
    assert await _explained(
        EngineError, fake.create_container({"image": BUSYBOX, "name": "a b", "command": ["true"]})
    ) == ("Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    assert await _explained(NotFound, fake.inspect_volume("nope")) == "get nope: no such volume"
    assert await _explained(NotFound, fake.inspect_network("nope")) == "network nope not found"
    assert (
        await _explained(NotFound, fake.inspect_image("nope"))
        == "no such image: nope: No such image: nope:latest"
    )


async def _explained(kind: type[EngineError], call) -> str:
    with pytest.raises(kind) as info:
        await call
    assert info.value.status in (400, 404)
    return info.value.explanation


async def test_container_events_in_engine_order(fake, run):
    seen: list[tuple[str, dict]] = []

    async def watch():
        async for ev in fake.events(filters={"type": "container", "label": ["watch=1"]}):
            seen.append((ev["Action"], ev["Actor"]["Attributes"]))
            if ev["Action"] == "destroy":
                return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    await run(name="quiet")
    cid = await run(name="loud", labels={"watch": "1"})
    await fake.stop_container(cid, timeout=0)
    await fake.remove_container(cid)
    await asyncio.wait_for(watcher, 5)
    assert [a for a, _ in seen] == ["create", "start", "kill", "kill", "die", "stop", "destroy"]
    assert seen[0][1] == {"watch": "1", "image": BUSYBOX, "name": "loud"}
    assert [attrs.get("signal") for a, attrs in seen if a == "kill"] == ["15", "9"]
    assert [attrs.get("exitCode") for a, attrs in seen if a == "die"] == ["137"]


async def test_events_since_replays_history(fake, run):
    import time

    t0 = time.time()
    cid = await run(name="past")
    stream = fake.events(since=t0, filters={"container": "past"})
    first = await asyncio.wait_for(stream.__anext__(), 2)
    await stream.aclose()
    assert (first["Action"], first["id"], first["Type"]) == ("create", cid, "container")
    assert isinstance(first["time"], int) and first["timeNano"] // 1_000_000_000 == first["time"]


async def test_image_list_label_filter_needs_every_item(fake):
    """As dockerd's: every ``label`` item must hold, a bare key or key=value."""
    fake.add_image("local/labelled:1", config={"Labels": {"team": "a", "tier": "gpu"}})

    async def tags(*wanted: str) -> set[str]:
        return {t for i in await fake.list_images(filters={"label": list(wanted)}) for t in i["RepoTags"]}

    assert await tags("team") == {"local/labelled:1"}
    assert await tags("team=a", "tier") == {"local/labelled:1"}
    assert await tags("team=a", "tier=cpu") == set()
    assert await tags("team=b") == set()


async def test_pull_events_like_the_engine(fake):
    fake.registry.add(
        "127.0.0.1:5000/ct/pulled:v1", config={"Cmd": ["sleep", "300"]}, layers=[1_984_305, 2 * 1024 * 1024]
    )
    events = [ev async for ev in fake.pull_image("127.0.0.1:5000/ct/pulled:v1")]
    statuses = [ev.status for ev in events]
    assert statuses[0] == "Pulling from ct/pulled" and events[0].layer == "v1"
    assert statuses[1] == "Already exists"
    assert statuses[2] == "Pulling fs layer"
    body = statuses[3:-3]
    assert body[0] == "Downloading" and body.count("Verifying Checksum") == 1
    assert body[-1] == "Pull complete" and "Download complete" in body and "Extracting" in body
    assert statuses[-3].startswith("Digest: sha256:")
    assert statuses[-2] == "Status: Downloaded newer image for 127.0.0.1:5000/ct/pulled:v1"
    assert statuses[-1] == "complete"
    again = [ev.status for ev in [ev async for ev in fake.pull_image("127.0.0.1:5000/ct/pulled:v1")]]
    assert again[-2] == "Status: Image is up to date for 127.0.0.1:5000/ct/pulled:v1"
    info = await fake.inspect_image("127.0.0.1:5000/ct/pulled:v1")
    assert info["RepoDigests"] == ["127.0.0.1:5000/ct/pulled@" + statuses[-3].split(" ", 1)[1]]


async def test_concurrent_pulls_share_one_download(fake_docker_factory):
    fake = fake_docker_factory(pull_speed=5_000_000)
    fake.registry.add("reg.local/shared:1", layers=[500_000])
    a, b = await asyncio.gather(
        _drain(fake.pull_image("reg.local/shared:1")), _drain(fake.pull_image("reg.local/shared:1"))
    )
    assert [e.status for e in a] == [e.status for e in b]
    assert a[-1].image_id == b[-1].image_id
    assert sum(1 for ev in fake.bus.history if ev["Type"] == "image" and ev["Action"] == "pull") == 1


async def _drain(stream) -> list:
    return [ev async for ev in stream]


async def test_networks_allocate_distinct_addresses(fake, run):
    nid = await fake.create_network("fk-net", labels={"x": "1"})
    ids = [
        await run(
            name=f"n-{i}",
            host_config={"network_mode": "fk-net", "init": True},
            networking_config={"EndpointsConfig": {"fk-net": {"Aliases": ["alias"]}}},
        )
        for i in range(3)
    ]
    info = await fake.inspect_network(nid)
    subnet = info["IPAM"]["Config"][0]["Subnet"]
    net = ipaddress.ip_network(subnet)
    assert net.subnet_of(ipaddress.ip_network("127.0.0.0/8"))
    assert info["IPAM"]["Config"][0]["Gateway"] == str(net.network_address + 1)
    addrs = [info["Containers"][cid]["IPv4Address"] for cid in ids]
    assert addrs == [f"{net.network_address + i}/{net.prefixlen}" for i in (2, 3, 4)]
    ep = (await fake.inspect_container(ids[0]))["NetworkSettings"]["Networks"]["fk-net"]
    assert ep["Aliases"] == ["alias", ids[0][:12]] and ep["NetworkID"] == nid
    with pytest.raises(EngineError) as err:
        await fake.remove_network("fk-net")
    assert err.value.status == 403 and "has active endpoints" in err.value.explanation
    with pytest.raises(Conflict, match="network with name fk-net already exists"):
        await fake.create_network("fk-net")
    with pytest.raises(EngineError, match="bridge is a pre-defined network and cannot be removed"):
        await fake.remove_network("bridge")


async def test_unknown_user_fails_the_start_like_the_engine(fake, run):
    cid = await run(start=False, user="nosuchuser")
    with pytest.raises(EngineError) as info:
        await fake.start_container(cid)
    assert info.value.status == 500
    assert info.value.explanation == "unable to find user nosuchuser: no matching entries in passwd file"
    state = (await fake.inspect_container(cid))["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == ("created", 128, info.value.explanation)
    ok = await run(name="named-user", user="jovyan")
    assert (await fake.exec_run(ok, ["id", "-u"])).stdout == b"1000\n"
