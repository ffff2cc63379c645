"""Table tests of the pure spec builders: config in, create arguments out."""

from __future__ import annotations

import pytest

from dockerspawner.engine.wire import create_body
from dockerspawner.naming import LABEL_SPEC_HASH
from dockerspawner.specs import (
    ContainerPlan,
    container_spec,
    deep_merge,
    engine_mount,
    render_templates,
    spec_hash,
    volume_binds,
)

NS = {"username": "alice", "servername": "", "prefix": "jupyter", "raw_username": "Alice"}


def plan(**kw) -> ContainerPlan:
    base = dict(
        name="jupyter-alice",
        image="quay.io/jupyterhub/singleuser:6.1",
        command=["jupyterhub-singleuser"],
        env={"JUPYTERHUB_API_TOKEN": "secret", "FOO": "bar"},
        labels={"org.jupyterhub.user": "alice"},
    )
    base.update(kw)
    return ContainerPlan(**base)


def test_default_plan_publishes_port_on_loopback():
    spec = container_spec(plan())
    assert spec["name"] == "jupyter-alice"
    assert spec["ports"] == [8888]
    assert spec["host_config"]["port_bindings"] == {8888: ("127.0.0.1",)}
    assert spec["host_config"]["network_mode"] == "bridge"
    assert spec["command"] == ["jupyterhub-singleuser"]
    assert spec["environment"]["FOO"] == "bar"
    assert LABEL_SPEC_HASH in spec["labels"]


@pytest.mark.parametrize(
    "network, internal, publishes",
    [("bridge", False, True), ("jupyterhub-net", True, False), ("host", False, False), ("mynet", False, True)],
)
def test_port_publishing_depends_on_network(network, internal, publishes):
    hc = container_spec(plan(network_name=network, use_internal_ip=internal))["host_config"]
    assert ("port_bindings" in hc) is publishes
    assert hc["network_mode"] == network


@pytest.mark.parametrize(
    "volumes, read_only, expected",
    [
        # the established docs' examples, after {username} was rendered
        ({"jupyterhub-user-alice": "/home/jovyan/work"}, {}, {"jupyterhub-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"}}),
        ({"/srv/data": {"bind": "/data", "mode": "ro"}}, {}, {"/srv/data": {"bind": "/data", "mode": "ro"}}),
        ({"/srv/x": {"bind": "/x", "mode": "Z"}}, {}, {"/srv/x": {"bind": "/x", "mode": "Z"}}),
        ({}, {"/srv/shared": "/shared"}, {"/srv/shared": {"bind": "/shared", "mode": "ro"}}),
        ({"/srv/shared": "/shared"}, {"/srv/shared": "/shared"}, {"/srv/shared": {"bind": "/shared", "mode": "ro"}}),
        (
            {"/mnt/p": {"bind": "/p", "mode": "rw", "propagation": "rslave"}},
            {},
            {"/mnt/p": {"bind": "/p", "mode": "rw", "propagation": "rslave"}},
        ),
    ],
)
def test_volume_binds(volumes, read_only, expected):
    assert volume_binds(volumes, read_only) == expected


def test_volume_dict_without_bind_is_a_clear_error():
    with pytest.raises(ValueError, match="'bind'"):
        volume_binds({"/x": {"mode": "ro"}})


def test_binds_reach_the_engine_body_and_mount_points():
    spec = container_spec(plan(binds=volume_binds({"vol-alice": "/home/jovyan/work"}, {"/srv/ro": "/ro"})))
    assert spec["volumes"] == ["/home/jovyan/work", "/ro"]
    _, body = create_body(spec)
    assert sorted(body["HostConfig"]["Binds"]) == ["/srv/ro:/ro:ro", "vol-alice:/home/jovyan/work:rw"]


@pytest.mark.parametrize(
    "mount, expected",
    [
        (
            {"type": "volume", "source": "data-alice", "target": "/data"},
            {"Type": "volume", "Source": "data-alice", "Target": "/data", "ReadOnly": False},
        ),
        (
            {"type": "bind", "source": "/srv/x", "target": "/x", "read_only": True, "propagation": "rshared"},
            {"Type": "bind", "Source": "/srv/x", "Target": "/x", "ReadOnly": True, "BindOptions": {"Propagation": "rshared"}},
        ),
        (
            {"type": "tmpfs", "target": "/scratch", "tmpfs_size": 1 << 20},
            {"Type": "tmpfs", "Target": "/scratch", "ReadOnly": False, "TmpfsOptions": {"SizeBytes": 1 << 20}},
        ),
        (
            {"source": "v", "target": "/v", "driver_config": {"name": "local", "options": {"o": "bind"}}, "no_copy": True},
            {"Type": "volume", "Source": "v", "Target": "/v", "ReadOnly": False,
             "VolumeOptions": {"NoCopy": True, "DriverConfig": {"Name": "local", "Options": {"o": "bind"}}}},
        ),
        ({"Type": "bind", "Source": "/a", "Target": "/b"}, {"Type": "bind", "Source": "/a", "Target": "/b"}),
    ],
)
def test_engine_mount(mount, expected):
    assert engine_mount(mount) == expected


def test_mount_with_unknown_key_names_it():
    with pytest.raises(ValueError, match="tagret"):
        engine_mount({"tagret": "/x", "target": "/y"})


def test_limits():
    hc = container_spec(plan(mem_limit=2 * 1024**3, cpu_limit=1.5))["host_config"]
    assert hc["mem_limit"] == 2 * 1024**3
    assert hc["cpu_period"] == 100_000 and hc["cpu_quota"] == 150_000
    _, body = create_body(container_spec(plan(mem_limit=512 * 1024**2, cpu_limit=0.5)))
    assert body["HostConfig"]["Memory"] == 512 * 1024**2
    assert body["HostConfig"]["CpuQuota"] == 50_000


def test_gpu_device_requests_from_extra_host_config():
    gpus = {"device_requests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}
    spec = container_spec(plan(extra_host_config=gpus))
    _, body = create_body(spec)
    assert body["HostConfig"]["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
    assert body["HostConfig"]["PortBindings"], "extra_host_config must not drop what the spawner built"


def test_extra_host_config_deep_merges_and_overrides():
    spec = container_spec(plan(extra_host_config={"port_bindings": {8888: ("0.0.0.0", 9000)}, "shm_size": "1G"}))
    hc = spec["host_config"]
    assert hc["port_bindings"] == {8888: ("0.0.0.0", 9000)}
    assert hc["shm_size"] == "1G" and hc["network_mode"] == "bridge"


def test_extra_create_kwargs_merge():
    spec = container_spec(plan(extra_create_kwargs={"user": "root", "working_dir": "/home/alice", "labels": {"team": "a"}}))
    assert spec["user"] == "root" and spec["working_dir"] == "/home/alice"
    assert spec["labels"]["team"] == "a" and spec["labels"]["org.jupyterhub.user"] == "alice"
    _, body = create_body(spec)
    assert body["User"] == "root"


def test_internal_hostname_sets_hostname():
    assert container_spec(plan(use_internal_hostname=True))["hostname"] == "jupyter-alice"


def test_deep_merge_is_not_in_place():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = deep_merge(base, {"a": {"b": 9}, "d": [2]})
    assert merged == {"a": {"b": 9, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_render_templates_recurses_and_reports_what_it_leaves():
    out = render_templates({"binds": {"/srv/{username}": {"bind": "/home/{raw_username}"}}, "n": 3}, NS)
    assert out == {"binds": {"/srv/alice": {"bind": "/home/Alice"}}, "n": 3}
    warnings: list[str] = []
    kept = render_templates(["/x/{usrname}", '{"json": 1}'], NS, warnings.append)
    assert kept == ["/x/{usrname}", '{"json": 1}']
    assert len(warnings) == 2 and "usrname" in warnings[0] and "known fields" in warnings[0]


def test_spec_hash_ignores_token_but_not_config():
    a = container_spec(plan())
    b = container_spec(plan(env={"JUPYTERHUB_API_TOKEN": "other", "FOO": "bar"}))
    c = container_spec(plan(env={"JUPYTERHUB_API_TOKEN": "secret", "FOO": "baz"}))
    d = container_spec(plan(image="other:1"))
    e = container_spec(plan(mem_limit=1 << 30))
    assert a["labels"][LABEL_SPEC_HASH] == b["labels"][LABEL_SPEC_HASH]
    assert len({a["labels"][LABEL_SPEC_HASH], c["labels"][LABEL_SPEC_HASH], d["labels"][LABEL_SPEC_HASH], e["labels"][LABEL_SPEC_HASH]}) == 4
    assert spec_hash(a) == a["labels"][LABEL_SPEC_HASH]
