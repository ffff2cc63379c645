"""Contract: which ports a container publishes, and how HostConfig records it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.engine

LOOPBACK = ("127.0.0.1", None)


async def test_binding_of_an_unexposed_port_is_not_published(engine, make_container):
    cid = await make_container(
        ports=[8888], host_config={"port_bindings": {8888: LOOPBACK, 9999: LOOPBACK}}, start=True
    )
    info = await engine.inspect_container(cid)
    assert set(info["HostConfig"]["PortBindings"]) == {"8888/tcp", "9999/tcp"}
    if engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): a bound port is published, exposed or not
        assert set(info["NetworkSettings"]["Ports"]) == {"8888/tcp", "9999/tcp"}
        assert len(await engine.port(cid, 9999)) == 1
        return
    assert set(info["NetworkSettings"]["Ports"]) == {"8888/tcp"}
    assert await engine.port(cid, 9999) == []
    assert len(await engine.port(cid, 8888)) == 1
    (entry,) = [c for c in await engine.list_containers(filters={"id": [cid]})]
    assert [p["PrivatePort"] for p in entry["Ports"]] == [8888]


@pytest.mark.parametrize("udp", [(9998, "udp"), "9998/udp"], ids=["tuple", "string"])
async def test_udp_port_key_is_normalised(engine, make_container, udp):
    cid = await make_container(
        ports=[8888, udp], host_config={"port_bindings": {"9998/udp": LOOPBACK, 8888: LOOPBACK}}, start=True
    )
    info = await engine.inspect_container(cid)
    assert set(info["HostConfig"]["PortBindings"]) == {"8888/tcp", "9998/udp"}
    assert set(info["NetworkSettings"]["Ports"]) == {"8888/tcp", "9998/udp"}
    (entry,) = await engine.list_containers(filters={"id": [cid]})
    listed = sorted((p["PrivatePort"], p["Type"], "PublicPort" in p) for p in entry["Ports"])
    assert await engine.port(cid, 9998) == []
    if isinstance(udp, tuple):
        assert set(info["Config"]["ExposedPorts"]) == {"8888/tcp", "9998/udp"}
        (binding,) = await engine.port(cid, 9998, "udp")
        assert binding["HostIp"] == "127.0.0.1" and binding["HostPort"].isdigit()
        assert listed == [(8888, "tcp", True), (9998, "udp", True)]
    elif engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): "9998/udp/tcp" is read as 9998/udp
        assert set(info["Config"]["ExposedPorts"]) == {"8888/tcp", "9998/udp"}
    else:
        # docker-py appends "/tcp" to a string port; the engine exposes that
        # as 9998/udp but finds no binding under the key it was given.
        assert set(info["Config"]["ExposedPorts"]) == {"8888/tcp", "9998/udp/tcp"}
        assert info["NetworkSettings"]["Ports"]["9998/udp"] is None
        assert await engine.port(cid, 9998, "udp") == []
        assert listed == [(8888, "tcp", True), (9998, "udp", False)]


@pytest.mark.parametrize("network_mode", [None, "host"], ids=["default", "host"])
async def test_without_bindings_port_bindings_is_null(engine, make_container, network_mode):
    host_config = {"network_mode": network_mode} if network_mode else {}
    cid = await make_container(ports=[8888] if not network_mode else None, host_config=host_config)
    bindings = (await engine.inspect_container(cid))["HostConfig"]["PortBindings"]
    if engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): a map, with the exposed ports unbound
        assert bindings == ({} if network_mode else {"8888/tcp": None})
        return
    assert bindings is None
