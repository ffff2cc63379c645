"""Differences from the real engine that the fake keeps on purpose
(fakedocker/README.md, "Known differences"). Each test pins one, so a change
of behaviour is a decision, not an accident."""

from __future__ import annotations

import asyncio
import io
import socket
import tarfile
import time

from fk_helpers import http_get, published
from fk_helpers import HTTPD_PAGE


async def test_1_image_command_the_simulator_does_not_know_runs_and_exits_143_on_sigterm(fake, run):
    fake.add_image("example.org/notebook:1", config={"Cmd": ["my-entrypoint.sh"]})
    cid = await run(None, image="example.org/notebook:1")
    assert (await fake.inspect_container(cid))["State"]["Running"] is True
    t0 = time.monotonic()
    await fake.stop_container(cid, timeout=5)
    assert time.monotonic() - t0 < 0.5
    assert (await fake.inspect_container(cid))["State"]["ExitCode"] == 143


async def test_1_unknown_commands_run_restores_running_any_command(fake_docker_factory):
    fake = fake_docker_factory(unknown_commands="run")
    fake.add_image("example.org/plain:1")
    cid = await fake.create_container({"image": "example.org/plain:1", "command": ["start-notebook.sh"]})
    await fake.start_container(cid)
    assert (await fake.inspect_container(cid))["State"]["Running"] is True


async def test_2_ports_listen_on_loopback_only_whatever_host_ip_says(fake, run):
    cid = await run(["httpd", "-f", "-p", "8888", "-h", "/var/www"], **published(ip=""))
    bindings = await fake.port(cid, 8888)
    assert [b["HostIp"] for b in bindings] == ["0.0.0.0", "::"]
    port = int(bindings[0]["HostPort"])
    assert (await http_get(f"http://127.0.0.1:{port}/"))[0] == 200
    outside = _non_loopback_address()
    if outside:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((outside, port)) != 0


async def test_3_singleuser_answers_any_path_under_its_prefix_without_a_hub(fake, run):
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/a/", "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api"}
    cid = await run(["jupyterhub-singleuser"], environment=env, **published())
    port = (await fake.port(cid, 8888))[0]["HostPort"]
    status, _, _ = await http_get(f"http://127.0.0.1:{port}/user/a/api/kernels")
    assert status == 200
    assert (await fake.inspect_container(cid))["State"]["Running"] is True


async def test_4_bind_mounts_read_the_host_but_never_write_it(fake, run, tmp_path):
    (tmp_path / "in.txt").write_text("from host\n")
    cid = await run(host_config={"binds": [f"{tmp_path}:/data"], "init": True})
    r = await fake.exec_run(
        cid, ["sh", "-c", "cat /data/in.txt; echo new > /data/out.txt; cat /data/out.txt"]
    )
    assert r.stdout == b"from host\nnew\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


async def test_5_swarm_ingress_ports_are_the_first_tasks_host_port(fake):
    spec = {
        "Name": "kd-svc",
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "local/busybox:test",
                "Command": ["httpd", "-f", "-p", "8888", "-h", "/var/www"],
                "Init": True,
            }
        },
        "EndpointSpec": {"Ports": [{"Protocol": "tcp", "TargetPort": 8888}]},
    }
    sid = await fake.create_service(spec)
    deadline = time.monotonic() + 5
    task = None
    while time.monotonic() < deadline:
        (task,) = await fake.list_tasks(filters={"service": sid})
        if task["Status"]["State"] == "running":
            break
        await asyncio.sleep(0.01)
    assert task is not None and task["Status"]["State"] == "running"
    assert task["Status"]["PortStatus"] == {}  # as on the engine: ingress ports are the service's
    (port,) = (await fake.inspect_service(sid))["Endpoint"]["Ports"]
    assert port["PublishMode"] == "ingress" and port["TargetPort"] == 8888
    assert (await http_get(f"http://127.0.0.1:{port['PublishedPort']}/"))[0] == 200


async def test_6_image_ids_are_synthetic_but_stable(fake_docker_factory):
    a, b = fake_docker_factory(), fake_docker_factory()
    config = {"Cmd": ["sleep", "1"]}
    assert a.add_image("x:1", config=config, layers=[10]) == b.add_image("y:2", config=config, layers=[10])
    assert a.add_image("x:2", config=config, layers=[11]) != b.add_image("y:2", config=config, layers=[10])


async def test_7_host_network_containers_publish_nothing(fake, run):
    cid = await run(
        ["httpd", "-f", "-p", "8888", "-h", "/var/www"],
        ports=[8888],
        host_config={"network_mode": "host", "init": True},
    )
    info = await fake.inspect_container(cid)
    assert info["NetworkSettings"]["Ports"] == {}
    assert await fake.port(cid, 8888) == []
    assert list(info["NetworkSettings"]["Networks"]) == ["host"]
    answer = await http_get("http://127.0.0.1:8888/")
    assert isinstance(answer, OSError) or answer[2] != HTTPD_PAGE


async def test_8_only_writes_are_permission_checked(fake, run):
    cid = await run(host_config={"init": True})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("secret")
        info.size, info.mode = 7, 0o600  # root's, unreadable for others on the engine
        tar.addfile(info, io.BytesIO(b"s3cret\n"))
    await fake.put_archive(cid, "/root", buf.getvalue())
    r = await fake.exec_run(cid, ["cat", "/root/secret"], user="1000")
    assert (r.exit_code, r.stdout) == (0, b"s3cret\n")
    w = await fake.exec_run(cid, ["sh", "-c", "echo x > /root/secret"], user="1000")
    assert w.exit_code == 1 and b"Permission denied" in w.stderr


async def test_9_shell_runs_no_command_substitution_and_no_stdin(fake, run):
    cid = await run(["sh", "-c", "echo $(echo hi); echo piped | true"])
    assert await fake.wait_container(cid, timeout=5) == 0
    assert await fake.container_logs(cid) == "$(echo hi)\npiped\n"  # the engine prints "hi\n"
