"""Published ports answer HTTP for simulated servers, and only while running."""

from __future__ import annotations

import asyncio
import json

import pytest
from fk_helpers import http_get, make_tar, published

from dockerspawner.engine import EngineError
from fk_helpers import HTTPD_PAGE

HTTPD = ["httpd", "-f", "-p", "8888", "-h", "/var/www"]


async def _url(fake, cid: str, path: str = "/", port: int = 8888) -> str:
    (binding,) = await fake.port(cid, port)
    assert binding["HostIp"] == "127.0.0.1"
    return f"http://127.0.0.1:{binding['HostPort']}{path}"


async def test_httpd_serves_image_and_archive_files(fake, run):
    cid = await run(HTTPD, **published())
    status, _, body = await http_get(await _url(fake, cid))
    assert (status, body) == (200, HTTPD_PAGE)
    await fake.put_archive(cid, "/var/www", make_tar({"hello.txt": b"from the test\n"}))
    status, _, body = await http_get(await _url(fake, cid, "/hello.txt"))
    assert (status, body) == (200, b"from the test\n")
    status, _, body = await http_get(await _url(fake, cid, "/nope.html"))
    assert status == 404 and b"404 Not Found" in body


async def test_port_is_closed_after_stop(fake, run):
    cid = await run(HTTPD, **published())
    url = await _url(fake, cid)
    assert (await http_get(url))[0] == 200
    await fake.stop_container(cid, timeout=1)
    assert isinstance(await http_get(url), OSError)
    assert await fake.port(cid, 8888) == []


async def test_published_port_without_listener_drops_connections(fake, run):
    cid = await run(["sleep", "300"], **published())
    result = await http_get(await _url(fake, cid))
    assert isinstance(result, OSError)


def _singleuser_env(prefix: str = "/user/alice/") -> dict[str, str]:
    return {
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:8888{prefix}",
        "JUPYTERHUB_API_TOKEN": "secret",
    }


async def test_singleuser_answers_like_a_server_under_its_prefix(fake, run):
    import jupyterhub

    cid = await run(["jupyterhub-singleuser"], environment=_singleuser_env(), **published())
    status, headers, body = await http_get(await _url(fake, cid, "/user/alice/"))
    assert status == 200
    assert headers["X-JupyterHub-Version"] == jupyterhub.__version__
    assert json.loads(body)
    status, _, body = await http_get(await _url(fake, cid, "/user/alice/api"))
    assert status == 200 and "version" in json.loads(body)
    status, _, body = await http_get(await _url(fake, cid, "/user/alice/api/status"))
    assert status == 200 and {"started", "last_activity"} <= set(json.loads(body))
    status, _, _ = await http_get(await _url(fake, cid, "/user/bob/"))
    assert status == 404


async def test_singleuser_listens_on_the_port_of_its_service_url(fake, run):
    env = _singleuser_env()
    env["JUPYTERHUB_SERVICE_URL"] = "http://0.0.0.0:9999/user/alice/"
    cid = await run(["/opt/venv/bin/jupyterhub-singleuser"], environment=env, **published(9999))
    assert (await http_get(await _url(fake, cid, "/user/alice/api", port=9999)))[0] == 200


async def test_singleuser_stops_on_sigterm_with_exit_0_and_logs_it(fake, run):
    cid = await run(
        ["jupyterhub-singleuser"],
        environment=_singleuser_env(),
        ports=[8888],
        host_config={"port_bindings": {8888: ("127.0.0.1", None)}},
    )
    await asyncio.wait_for(fake.stop_container(cid, timeout=30), 2)
    assert (await fake.inspect_container(cid))["State"]["ExitCode"] == 0
    logs = await fake.container_logs(cid)
    assert "received signal 15, stopping" in logs.splitlines()[-1]


async def test_each_running_container_gets_its_own_port(fake, run):
    ids = await asyncio.gather(*(run(HTTPD, name=f"many-{i}", **published()) for i in range(20)))
    ports = {(await fake.port(cid, 8888))[0]["HostPort"] for cid in ids}
    assert len(ports) == 20
    urls = [await _url(fake, cid) for cid in ids[:5]]
    answers = await asyncio.gather(*(http_get(url) for url in urls))
    assert all(a[0] == 200 for a in answers)


async def test_requested_host_port_in_use_fails_the_start(fake, run):
    cid = await run(HTTPD, **published())
    taken = int((await fake.port(cid, 8888))[0]["HostPort"])
    other = await run(
        HTTPD,
        name="second",
        start=False,
        ports=[8888],
        host_config={"port_bindings": {8888: ("127.0.0.1", taken)}},
    )
    with pytest.raises(EngineError) as info:
        await fake.start_container(other)
    assert info.value.status == 500 and "address already in use" in info.value.explanation
    state = (await fake.inspect_container(other))["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 128)


async def _echo_once_on_a_fresh_socket() -> bytes:
    """A new listening socket (it takes the lowest free fd number) answers a client."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        answer = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return answer
    finally:
        server.close()


@pytest.mark.parametrize("cancel_start", [False, True])
async def test_a_port_closed_while_it_starts_leaves_the_loop_sound(cancel_start):
    """A container that exits as it starts closes its published port while
    the loop is still taking the socket; a socket closed under the loop left
    its fd number registered, and the next socket given that number (a hub's
    API connection in a kit test) was never read."""
    import socket as _socket

    from fakedocker.http import PortProxy

    sock = _socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    proxy = PortProxy(sock, lambda: None)
    starting = asyncio.ensure_future(proxy.start())
    await asyncio.sleep(0)  # start_server has registered the socket and yields once
    if cancel_start:
        starting.cancel()
    proxy.close()
    await asyncio.gather(starting, return_exceptions=True)
    assert sock.fileno() == -1, "the published port stays open"
    assert await _echo_once_on_a_fresh_socket() == b"ping\n"
