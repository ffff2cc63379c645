"""Table tests of the swarm service spec builder: plan in, ServiceSpec body out."""

from __future__ import annotations

import json
from typing import Any

import docker
import pytest
from docker.types import ContainerSpec, EndpointSpec, Placement, Resources, RestartPolicy, TaskTemplate

from dockerspawner.naming import LABEL_SPEC_HASH
from dockerspawner.service_specs import (
    DEFAULT_RESTART_POLICY,
    ServicePlan,
    binds_to_mounts,
    service_spec,
    service_spec_hash,
    with_volume_driver,
)

OWNER = {"org.jupyterhub.user": "alice", "org.jupyterhub.server": ""}


def plan(**kw: Any) -> ServicePlan:
    base: dict[str, Any] = dict(
        name="jupyter-alice",
        image="quay.io/jupyterhub/singleuser:6.1",
        command=["jupyterhub-singleuser"],
        env={"JUPYTERHUB_API_TOKEN": "secret", "FOO": "bar"},
        labels=OWNER,
    )
    base.update(kw)
    return ServicePlan(**base)


def test_default_plan_is_one_replica_with_a_host_mode_port():
    body = service_spec(plan())
    assert body["Name"] == "jupyter-alice"
    assert body["Mode"] == {"Replicated": {"Replicas": 1}}
    cs = body["TaskTemplate"]["ContainerSpec"]
    assert cs["Image"] == "quay.io/jupyterhub/singleuser:6.1"
    assert cs["Args"] == ["jupyterhub-singleuser"]
    assert "Command" not in cs
    assert sorted(cs["Env"]) == ["FOO=bar", "JUPYTERHUB_API_TOKEN=secret"]
    assert "Mounts" not in cs and "Labels" not in cs
    assert body["TaskTemplate"]["RestartPolicy"] == DEFAULT_RESTART_POLICY
    assert "Networks" not in body["TaskTemplate"]
    assert body["EndpointSpec"] == {"Ports": [{"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"}]}
    assert body["Labels"] == {**OWNER, LABEL_SPEC_HASH: service_spec_hash(body)}
    json.dumps(body)  # plain data only


@pytest.mark.parametrize(
    "kw, endpoint, networks",
    [
        ({"use_internal_ip": True, "network_name": "jhub"}, {}, [{"Target": "jhub"}]),
        ({"use_internal_ip": True, "network_name": "jhub", "endpoint_mode": "dnsrr"}, {"Mode": "dnsrr"}, [{"Target": "jhub"}]),
        (
            {"port": 9999, "endpoint_mode": "dnsrr"},
            {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 9999, "PublishMode": "host"}]},
            [],
        ),
        (
            {"extra_endpoint_spec": {"ports": {18890: (8888, "tcp", "host")}}},
            {"Ports": [{"Protocol": "tcp", "TargetPort": 8888, "PublishedPort": 18890, "PublishMode": "host"}]},
            [],
        ),
    ],
)
def test_endpoint_and_networks(kw, endpoint, networks):
    body = service_spec(plan(**kw))
    assert body["EndpointSpec"] == endpoint
    assert body["TaskTemplate"].get("Networks", []) == networks


@pytest.mark.parametrize(
    "kw, resources",
    [
        ({}, {}),
        ({"mem_limit": 1 << 30}, {"Limits": {"MemoryBytes": 1 << 30}}),
        ({"cpu_limit": 1.5}, {"Limits": {"NanoCPUs": 1_500_000_000}}),
        ({"mem_guarantee": 512 << 20, "cpu_guarantee": 0.25}, {"Reservations": {"MemoryBytes": 512 << 20, "NanoCPUs": 250_000_000}}),
        (
            {"mem_limit": 2 << 30, "mem_guarantee": 1 << 30, "extra_resources_spec": {"mem_limit": 3 << 30}},
            {"Limits": {"MemoryBytes": 3 << 30}, "Reservations": {"MemoryBytes": 1 << 30}},
        ),
    ],
)
def test_limits_and_reservations(kw, resources):
    assert service_spec(plan(**kw))["TaskTemplate"].get("Resources", {}) == resources


def test_extras_in_docker_py_keywords():
    body = service_spec(
        plan(
            extra_container_spec={"user": "1000:100", "workdir": "/home/alice", "stop_grace_period": 10**9, "init": True},
            extra_placement_spec={"constraints": ["node.role==worker"], "preferences": [("spread", "node.labels.zone")]},
            extra_task_spec={"restart_policy": RestartPolicy("on-failure", max_attempts=2), "force_update": 3},
        )
    )
    tt = body["TaskTemplate"]
    assert tt["ContainerSpec"]["User"] == "1000:100"
    assert tt["ContainerSpec"]["Dir"] == "/home/alice"
    assert tt["ContainerSpec"]["StopGracePeriod"] == 10**9
    assert tt["ContainerSpec"]["Init"] is True
    assert tt["Placement"] == {
        "Constraints": ["node.role==worker"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
    }
    assert tt["RestartPolicy"] == {"Condition": "on-failure", "Delay": 0, "MaxAttempts": 2, "Window": 0}
    assert tt["ForceUpdate"] == 3


def test_extra_create_kwargs_cannot_take_over_the_owner_labels():
    body = service_spec(
        plan(extra_create_kwargs={"labels": {"org.jupyterhub.user": "mallory", "team": "a"}, "mode": "global"})
    )
    assert body["Labels"]["org.jupyterhub.user"] == "alice"
    assert body["Labels"]["team"] == "a"
    assert body["Mode"] == {"global": {}}


@pytest.mark.parametrize(
    "kw, names",
    [
        ({"extra_container_spec": {"imgae": "x"}}, ["extra_container_spec", "imgae"]),
        ({"extra_resources_spec": {"memory": 1}}, ["extra_resources_spec", "memory"]),
        ({"extra_placement_spec": {"constraint": []}}, ["extra_placement_spec", "constraint"]),
        ({"extra_task_spec": {"restart": "any"}}, ["extra_task_spec", "restart"]),
        ({"extra_endpoint_spec": {"mode": "dnsrr", "port": 1}}, ["extra_endpoint_spec", "port"]),
        ({"extra_create_kwargs": {"replicas": 2}}, ["extra_create_kwargs", "replicas"]),
        ({"extra_create_kwargs": {"mode": "sideways"}}, ["extra_create_kwargs", "mode"]),
    ],
)
def test_bad_extras_name_the_trait_and_the_key(kw, names):
    with pytest.raises(ValueError) as err:
        service_spec(plan(**kw))
    for name in names:
        assert name in str(err.value)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(
    "binds, mounts",
    [
        ({}, []),
        (
            {"/srv/data": {"bind": "/data", "mode": "ro"}},
            [{"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": True}],
        ),
        (
            {"jupyterhub-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"}},
            [{"Type": "volume", "Source": "jupyterhub-user-alice", "Target": "/home/jovyan/work", "ReadOnly": False}],
        ),
        (
            {"/home/alice": {"bind": "/home/alice", "mode": "rw", "propagation": "rslave"}},
            [{"Type": "bind", "Source": "/home/alice", "Target": "/home/alice", "ReadOnly": False, "BindOptions": {"Propagation": "rslave"}}],
        ),
    ],
)
def test_binds_to_mounts(binds, mounts):
    assert binds_to_mounts(binds) == mounts


def test_volume_driver_goes_to_volume_mounts_only():
    mounts = binds_to_mounts({"/srv/data": {"bind": "/data", "mode": "ro"}, "vol-alice": {"bind": "/work"}})
    mounts.append({"Type": "volume", "Source": "own", "Target": "/own", "VolumeOptions": {"DriverConfig": {"Name": "local"}}})
    body = service_spec(plan(mounts=mounts, volume_driver="rexray", volume_driver_options={"size": "10"}))
    got = body["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert "VolumeOptions" not in got[0]
    assert got[1]["VolumeOptions"] == {"DriverConfig": {"Name": "rexray", "Options": {"size": "10"}}}
    assert got[2]["VolumeOptions"] == {"DriverConfig": {"Name": "local"}}
    assert with_volume_driver(mounts, "") == mounts


def test_hash_ignores_the_per_start_token_but_not_the_image():
    a = service_spec(plan())
    b = service_spec(plan(env={"JUPYTERHUB_API_TOKEN": "other", "FOO": "bar"}))
    c = service_spec(plan(image="quay.io/jupyterhub/singleuser:6"))
    assert a["Labels"][LABEL_SPEC_HASH] == b["Labels"][LABEL_SPEC_HASH]
    assert a["Labels"][LABEL_SPEC_HASH] != c["Labels"][LABEL_SPEC_HASH]


# -- the same config gives the body dockerspawner 14 sent ---------------------------------------


def fourteen_body(p: ServicePlan) -> dict[str, Any]:
    """What 14's SwarmSpawner.create_object made docker-py post for the same
    config (its keyword choices, sent through docker-py's real create_service)."""
    container_kwargs = dict(image=p.image, env=dict(p.env), args=list(p.command or []), mounts=list(p.mounts))
    container_kwargs.update(p.extra_container_spec)
    resources_kwargs = dict(
        mem_limit=p.mem_limit,
        mem_reservation=p.mem_guarantee,
        cpu_limit=int(p.cpu_limit * 1e9) if p.cpu_limit else None,
        cpu_reservation=int(p.cpu_guarantee * 1e9) if p.cpu_guarantee else None,
    )
    resources_kwargs.update(p.extra_resources_spec)
    placement_kwargs: dict[str, Any] = dict(constraints=None, preferences=None, platforms=None)
    placement_kwargs.update(p.extra_placement_spec)
    task_kwargs: dict[str, Any] = dict(
        container_spec=ContainerSpec(**container_kwargs),
        resources=Resources(**resources_kwargs),
        networks=[p.network_name] if p.network_name else [],
        placement=Placement(**placement_kwargs),
    )
    task_kwargs.update(p.extra_task_spec)
    endpoint_kwargs: dict[str, Any] = {}
    if not p.use_internal_ip:
        endpoint_kwargs["ports"] = {None: (p.port, "tcp")}
    endpoint_kwargs.update(p.extra_endpoint_spec)
    create_kwargs = dict(task_template=TaskTemplate(**task_kwargs), endpoint_spec=EndpointSpec(**endpoint_kwargs), name=p.name)
    create_kwargs.update(p.extra_create_kwargs)

    sent: list[dict] = []
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    api._post_json = lambda url, data, **kw: sent.append(data)  # type: ignore[method-assign]
    api._result = lambda *a, **kw: None  # type: ignore[method-assign]
    api.create_service(**create_kwargs)
    return json.loads(json.dumps({k: v for k, v in sent[0].items() if v is not None}))


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


FOURTEEN_CONFIGS = [
    {},
    {"network_name": "jhub", "use_internal_ip": True},
    {"mem_limit": 1 << 30, "cpu_limit": 2.0, "mem_guarantee": 1 << 29, "cpu_guarantee": 0.5},
    {"mounts": [{"Type": "bind", "Source": "/srv/x", "Target": "/x", "ReadOnly": True}]},
    {"extra_container_spec": {"user": "0", "labels": {"a": "b"}}, "extra_placement_spec": {"constraints": ["node.role==worker"]}},
    {"extra_task_spec": {"restart_policy": {"Condition": "none"}}, "extra_resources_spec": {"cpu_limit": 10**9}},
    {"extra_endpoint_spec": {"mode": "dnsrr", "ports": {18890: (8888, "tcp", "host")}}, "extra_create_kwargs": {"mode": "global"}},
]


@pytest.mark.parametrize("config", FOURTEEN_CONFIGS, ids=range(len(FOURTEEN_CONFIGS)))
def test_same_fields_as_dockerspawner_14(config):
    p = plan(**config)
    ours, theirs = _strip(service_spec(p)), _strip(fourteen_body(p))
    # Our additions: owner labels and hash, and the defaults 14 left to swarm.
    assert ours.pop("Labels") == {**OWNER, LABEL_SPEC_HASH: service_spec(p)["Labels"][LABEL_SPEC_HASH]}
    assert ours.pop("Mode") == theirs.pop("Mode", {"Replicated": {"Replicas": 1}})
    if "RestartPolicy" not in theirs["TaskTemplate"]:
        assert ours["TaskTemplate"].pop("RestartPolicy") == DEFAULT_RESTART_POLICY
    # 14 published through the ingress mesh (no IPVS here); we publish in host mode.
    if "ports" not in p.extra_endpoint_spec and not p.use_internal_ip:
        assert ours["EndpointSpec"]["Ports"][0].pop("PublishMode") == "host"
    assert ours == theirs
