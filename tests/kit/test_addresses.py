"""Container addresses the host reaches, and docker-stacks start scripts."""

from __future__ import annotations

import ipaddress
import os
import stat

import pytest
from tornado.httpclient import AsyncHTTPClient

from fakedocker.kit import start_spawner
from fakedocker.networks import Networks
from fakedocker.processes import host_command
from fakedocker.programs import is_singleuser_command

IMAGE = "quay.io/jupyterhub/singleuser:test"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


async def get(url: str) -> int:
    """The HTTP status, or 0 when nothing listens."""
    try:
        resp = await AsyncHTTPClient().fetch(url, raise_error=False, request_timeout=5)
    except ConnectionRefusedError:
        return 0
    return resp.code


def test_every_network_gets_its_own_loopback_subnet():
    nets = Networks()
    subnets = [n.subnet for n in nets.by_id.values() if n.subnet is not None]
    for i in range(5):
        subnets.append(nets.create(f"kit-n{i}", driver=None, labels=None, internal=False,
                                   attachable=False, swarm_active=True).subnet)
    subnets.append(nets.create("kit-ov", driver="overlay", labels=None, internal=False,
                               attachable=True, swarm_active=True).subnet)
    assert all(s.subnet_of(LOOPBACK) for s in subnets)
    assert len(set(subnets)) == len(subnets)


@pytest.mark.parametrize("network", ["bridge", "kit-users"])
async def test_use_internal_ip_reaches_the_server(make_spawner, fake_docker, network):
    fake_docker.add_image(IMAGE, config={"Cmd": ["start-notebook.sh"]})
    if network != "bridge":
        await fake_docker.create_network(network)
    spawner = make_spawner("alice", image=IMAGE, network_name=network, use_internal_ip=True)
    url = await start_spawner(spawner)
    info = await fake_docker.inspect_container(spawner.object_id)
    ip = info["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert url == f"http://{ip}:8888" and ipaddress.ip_address(ip) in LOOPBACK
    assert await get(f"{url}/user/alice/api") == 200
    await spawner.stop()
    assert await get(f"{url}/user/alice/api") == 0  # nothing listens once it stopped


@pytest.mark.parametrize(
    "argv, singleuser",
    [(["start-notebook.sh"], True), (["/usr/local/bin/start-singleuser.sh", "--x"], True),
     (["start-notebook.py"], True), (["start-singleuser.py"], True), (["/opt/conda/bin/jupyterhub-singleuser"], True),
     (["start.sh"], False), (["start-notebook"], False), (["sh", "-c", "start-notebook.sh"], False), ([], False)],
)
def test_start_scripts_count_as_singleuser(argv, singleuser):
    assert is_singleuser_command(argv) is singleuser


async def test_start_script_answers_on_the_published_port(fake_docker):
    fake_docker.add_image(IMAGE, config={"Cmd": ["start-singleuser.py"]})
    cid = await fake_docker.create_container({
        "image": IMAGE, "name": "kit-su", "ports": [8888],
        "host_config": {"port_bindings": {8888: ("127.0.0.1", None)}},
        "environment": {"JUPYTERHUB_SERVICE_PREFIX": "/user/x/"},
    })
    await fake_docker.start_container(cid)
    (binding,) = await fake_docker.port(cid, 8888)
    assert await get(f"http://127.0.0.1:{binding['HostPort']}/user/x/api") == 200


def test_host_command_runs_the_script_only_where_the_host_has_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    assert host_command(["start-notebook.sh", "--a"]) == ["jupyterhub-singleuser", "--a"]
    script = tmp_path / "start-notebook.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    assert host_command(["start-notebook.sh", "--a"]) == ["start-notebook.sh", "--a"]
    assert host_command(["sleep", "1"]) == ["sleep", "1"]


async def test_process_mode_runs_a_host_start_script(fake_docker_factory, tmp_path, monkeypatch):
    script = tmp_path / "start-singleuser.sh"
    script.write_text('#!/bin/sh\necho "real script $JUPYTERHUB_USER $*"\nexit 7\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    fake = fake_docker_factory(processes={"jupyterhub-singleuser"})
    fake.add_image(IMAGE, config={"Cmd": ["start-singleuser.sh"]})
    cid = await fake.create_container({"image": IMAGE, "name": "kit-proc", "environment": {"JUPYTERHUB_USER": "zoe"}})
    await fake.start_container(cid)
    assert await fake.wait_container(cid, timeout=20) == 7
    assert "real script zoe --ip=127.0.0.1" in await fake.container_logs(cid)
