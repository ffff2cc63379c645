"""The start's HTTP probe against real loopback servers: what counts as "answers"."""

from __future__ import annotations

import asyncio

import pytest

from dockerspawner.probe import answers_http


async def _server(respond):
    """A loopback TCP server handing each connection to ``respond(reader, writer)``."""
    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _status(line: bytes):
    async def respond(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request)
        writer.write(line)
        await writer.drain()
        writer.close()

    seen: list[bytes] = []
    return respond, seen


@pytest.mark.parametrize(
    "line, up",
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", True),
        (b"HTTP/1.1 404 Not Found\r\n\r\n", True),
        (b"HTTP/1.0 302 Found\r\n\r\n", True),
        (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", False),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", False),
        (b"SSH-2.0-OpenSSH_9.2\r\n", False),
        (b"", False),
    ],
)
async def test_a_status_below_500_counts_as_up(line, up):
    respond, seen = _status(line)
    server, port = await _server(respond)
    async with server:
        assert await answers_http("127.0.0.1", port, "/user/alice/api") is up
    assert seen and seen[0].startswith(b"GET /user/alice/api HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in seen[0]


async def test_an_escaped_path_is_sent_as_it_is_and_a_raw_one_is_escaped():
    respond, seen = _status(b"HTTP/1.1 200 OK\r\n\r\n")
    server, port = await _server(respond)
    async with server:
        assert await answers_http("127.0.0.1", port, "/user/al%20ice/api")
        assert await answers_http("127.0.0.1", port, "/user/bö b/api")
    assert seen[0].split(b" ")[1] == b"/user/al%20ice/api"
    assert seen[1].split(b" ")[1] == b"/user/b%C3%B6%20b/api"


async def test_nothing_listening_is_not_up():
    server, port = await _server(lambda r, w: None)
    server.close()
    await server.wait_closed()
    assert await answers_http("127.0.0.1", port, "/api") is False


async def test_a_server_that_accepts_and_never_answers_is_not_up_after_the_read_timeout():
    async def silent(reader, writer):
        await reader.read()  # until the probe gives up and closes
        writer.close()

    server, port = await _server(silent)
    async with server:
        t = asyncio.get_running_loop().time()
        assert await answers_http("127.0.0.1", port, "/api", read_timeout=0.2) is False
        assert asyncio.get_running_loop().time() - t < 3
