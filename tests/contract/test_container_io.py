"""Contract: talking to a container (logs, exec, archives, published ports)."""

from __future__ import annotations

import pytest

from dockerspawner.engine import Conflict, ExecResult, NotFound

from .helpers import HTTPD_BODY, HTTPD_CMD, eventually, http_get, make_tar

pytestmark = pytest.mark.engine

OUT_ERR = ["sh", "-c", "echo out; echo err >&2; exit 3"]


async def test_logs_hold_stdout_and_stderr(engine, make_container):
    cid = await make_container(OUT_ERR, start=True)
    await engine.wait_container(cid, timeout=10)
    logs = await engine.container_logs(cid)
    assert isinstance(logs, str)
    # The two streams are not ordered relative to each other.
    assert sorted(logs.splitlines()) == ["err", "out"]


async def test_logs_stdout_or_stderr_only(engine, make_container):
    cid = await make_container(OUT_ERR, start=True)
    await engine.wait_container(cid, timeout=10)
    assert await engine.container_logs(cid, stderr=False) == "out\n"
    assert await engine.container_logs(cid, stdout=False) == "err\n"


async def test_logs_tail(engine, make_container):
    cid = await make_container(["sh", "-c", "echo one; echo two; echo three"], start=True)
    await engine.wait_container(cid, timeout=10)
    assert await engine.container_logs(cid, tail=1) == "three\n"
    assert await engine.container_logs(cid, tail=2) == "two\nthree\n"
    assert await engine.container_logs(cid, tail=10) == "one\ntwo\nthree\n"


async def test_logs_of_running_container(engine, make_container):
    cid = await make_container(["sh", "-c", "echo ready; sleep 300"], start=True)
    assert await eventually(lambda: engine.container_logs(cid), timeout=10) == "ready\n"


async def test_logs_missing_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.container_logs(unique_name("absent"))


async def test_exec_separates_stdout_stderr_and_exit_code(engine, make_container):
    cid = await make_container(start=True)
    result = await engine.exec_run(cid, OUT_ERR)
    assert isinstance(result, ExecResult)
    assert result.exit_code == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"


async def test_exec_success_and_failure(engine, make_container):
    cid = await make_container(start=True)
    assert (await engine.exec_run(cid, ["true"])).exit_code == 0
    assert (await engine.exec_run(cid, ["false"])).exit_code == 1


async def test_exec_as_user(engine, make_container):
    cid = await make_container(start=True)
    assert (await engine.exec_run(cid, ["id", "-u"])).stdout == b"0\n"
    assert (await engine.exec_run(cid, ["id", "-u"], user="nobody")).stdout == b"65534\n"


async def test_exec_in_stopped_container_is_conflict(engine, make_container):
    cid = await make_container(["true"], start=True)
    await engine.wait_container(cid, timeout=10)
    with pytest.raises(Conflict) as info:
        await engine.exec_run(cid, ["true"])
    assert "running" in str(info.value).lower()


async def test_exec_in_created_container_is_conflict(engine, make_container):
    cid = await make_container()
    with pytest.raises(Conflict):
        await engine.exec_run(cid, ["true"])


async def test_exec_missing_container_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.exec_run(unique_name("absent"), ["true"])


async def test_put_archive_then_read_back(engine, make_container):
    cid = await make_container(start=True)
    await engine.put_archive(cid, "/tmp", make_tar({"hello.txt": b"from the hub\n"}))
    result = await engine.exec_run(cid, ["cat", "/tmp/hello.txt"])
    assert result.exit_code == 0
    assert result.stdout == b"from the hub\n"


async def test_put_archive_before_start_is_seen_by_the_command(engine, make_container):
    cid = await make_container(["cat", "/etc/ct-greeting"])
    await engine.put_archive(cid, "/etc", make_tar({"ct-greeting": b"hello before start\n"}))
    await engine.start_container(cid)
    assert await engine.wait_container(cid, timeout=10) == 0
    assert await engine.container_logs(cid) == "hello before start\n"


async def test_put_archive_missing_path_is_not_found(engine, make_container):
    cid = await make_container(start=True)
    if engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): the missing directory is created
        await engine.put_archive(cid, "/no/such/dir", make_tar({"x": b"x"}))
        result = await engine.exec_run(cid, ["cat", "/no/such/dir/x"])
        assert (result.exit_code, result.stdout) == (0, b"x")
        return
    with pytest.raises(NotFound):
        await engine.put_archive(cid, "/no/such/dir", make_tar({"x": b"x"}))


async def test_put_archive_missing_container_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.put_archive(unique_name("absent"), "/tmp", make_tar({"x": b"x"}))


async def test_port_published_on_loopback(engine, make_container):
    cid = await make_container(
        HTTPD_CMD, ports=[8888], host_config={"port_bindings": {8888: ("127.0.0.1", None)}}, start=True
    )
    bindings = await engine.port(cid, 8888)
    assert len(bindings) == 1
    assert bindings[0]["HostIp"] == "127.0.0.1"
    assert 0 < int(bindings[0]["HostPort"]) < 65536
    ports = (await engine.inspect_container(cid))["NetworkSettings"]["Ports"]
    assert ports["8888/tcp"] == bindings
    assert await engine.port(cid, "8888/tcp") == bindings


async def test_port_not_published_is_empty(engine, make_container):
    cid = await make_container(ports=[8888], start=True)
    assert await engine.port(cid, 8888) == []
    assert await engine.port(cid, 9999) == []


async def test_list_shows_published_port(engine, make_container, label_filters):
    cid = await make_container(
        HTTPD_CMD, ports=[8888], host_config={"port_bindings": {8888: ("127.0.0.1", None)}}, start=True
    )
    host_port = int((await engine.port(cid, 8888))[0]["HostPort"])
    [entry] = [c for c in await engine.list_containers(filters={"label": label_filters}) if c["Id"] == cid]
    assert {"IP": "127.0.0.1", "PrivatePort": 8888, "PublicPort": host_port, "Type": "tcp"} in entry["Ports"]


async def test_http_to_published_port_answers(engine, make_container):
    cid = await make_container(
        HTTPD_CMD, ports=[8888], host_config={"port_bindings": {8888: ("127.0.0.1", None)}}, start=True
    )
    host_port = (await engine.port(cid, 8888))[0]["HostPort"]
    status, body = await http_get(f"http://127.0.0.1:{host_port}/index.html", timeout=15)
    assert status == 200
    assert body.strip() == HTTPD_BODY


async def test_port_of_missing_container_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.port(unique_name("absent"), 8888)
