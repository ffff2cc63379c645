"""Contract: user-defined networks."""

from __future__ import annotations

import re

import pytest

from dockerspawner.engine import Conflict, NotFound

pytestmark = pytest.mark.engine

IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")


async def test_create_and_inspect_network(engine, unique_name, test_labels):
    name = unique_name("net")
    nid = await engine.create_network(name, driver="bridge", labels=test_labels)
    assert re.fullmatch(r"[0-9a-f]{12,64}", nid)
    info = await engine.inspect_network(name)
    assert info["Id"] == nid
    assert info["Name"] == name
    assert info["Driver"] == "bridge"
    assert info["Labels"] == test_labels
    assert info["Internal"] is False
    assert (await engine.inspect_network(nid))["Name"] == name


async def test_internal_network(engine, unique_name, test_labels):
    name = unique_name("internal")
    await engine.create_network(name, labels=test_labels, internal=True)
    assert (await engine.inspect_network(name))["Internal"] is True


async def test_create_duplicate_network_is_conflict(engine, unique_name, test_labels):
    name = unique_name("dup")
    await engine.create_network(name, labels=test_labels)
    with pytest.raises(Conflict):
        await engine.create_network(name, labels=test_labels)


async def test_list_networks_by_name_and_label(engine, unique_name, test_labels, label_filters):
    a = unique_name("a")
    b = unique_name("b")
    await engine.create_network(a, labels={**test_labels, "ct.pick": "a"})
    await engine.create_network(b, labels=test_labels)
    assert [n["Name"] for n in await engine.list_networks(names=[a])] == [a]
    assert {n["Name"] for n in await engine.list_networks(filters={"label": label_filters})} == {a, b}
    picked = await engine.list_networks(filters={"label": label_filters + ["ct.pick=a"]})
    assert [n["Name"] for n in picked] == [a]


async def test_missing_network_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.inspect_network(unique_name("absent"))
    with pytest.raises(NotFound):
        await engine.remove_network(unique_name("absent"))


async def test_remove_network(engine, unique_name, test_labels):
    name = unique_name("rm")
    await engine.create_network(name, labels=test_labels)
    await engine.remove_network(name)
    with pytest.raises(NotFound):
        await engine.inspect_network(name)


async def test_container_on_network_gets_address(engine, unique_name, test_labels, make_container):
    name = unique_name("mode")
    await engine.create_network(name, labels=test_labels)
    cid = await make_container(host_config={"network_mode": name}, start=True)
    info = await engine.inspect_container(cid)
    # Podman difference (docs/compatibility.md): NetworkMode reads "bridge" on any bridge network
    assert info["HostConfig"]["NetworkMode"] == ("bridge" if engine.engine_kind == "podman" else name)
    networks = info["NetworkSettings"]["Networks"]
    assert list(networks) == [name]
    assert IPV4.fullmatch(networks[name]["IPAddress"])
    # Podman difference (docs/compatibility.md): NetworkID holds the network's name
    want_id = name if engine.engine_kind == "podman" else (await engine.inspect_network(name))["Id"]
    assert networks[name]["NetworkID"] == want_id


async def test_networking_config_aliases(engine, unique_name, test_labels, make_container):
    name = unique_name("alias")
    await engine.create_network(name, labels=test_labels)
    cid = await make_container(
        host_config={"network_mode": name},
        networking_config={"EndpointsConfig": {name: {"Aliases": ["ct-alias"]}}},
        start=True,
    )
    endpoint = (await engine.inspect_container(cid))["NetworkSettings"]["Networks"][name]
    assert "ct-alias" in endpoint["Aliases"]
    assert IPV4.fullmatch(endpoint["IPAddress"])


async def test_connect_and_disconnect(engine, unique_name, test_labels, make_container):
    name = unique_name("conn")
    nid = await engine.create_network(name, labels=test_labels)
    cid = await make_container(start=True)
    await engine.connect_network(name, cid, aliases=["ct-joined"])
    networks = (await engine.inspect_container(cid))["NetworkSettings"]["Networks"]
    assert name in networks and len(networks) == 2
    assert IPV4.fullmatch(networks[name]["IPAddress"])
    assert "ct-joined" in networks[name]["Aliases"]
    assert cid in (await engine.inspect_network(nid))["Containers"]
    await engine.disconnect_network(name, cid)
    assert name not in (await engine.inspect_container(cid))["NetworkSettings"]["Networks"]
    assert cid not in ((await engine.inspect_network(nid)).get("Containers") or {})


async def test_connect_missing_network_is_not_found(engine, unique_name, make_container):
    cid = await make_container(start=True)
    with pytest.raises(NotFound):
        await engine.connect_network(unique_name("absent"), cid)


async def test_connect_missing_container_is_not_found(engine, unique_name, test_labels):
    name = unique_name("noc")
    await engine.create_network(name, labels=test_labels)
    with pytest.raises(NotFound):
        await engine.connect_network(name, unique_name("absent"))


async def test_container_on_missing_network_cannot_run(engine, unique_name, make_container):
    # Docker creates the container and fails at start; either step may refuse.
    with pytest.raises(NotFound):
        cid = await make_container(host_config={"network_mode": unique_name("absent")})
        await engine.start_container(cid)
