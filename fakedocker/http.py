"""Published ports answer HTTP for the simulated servers behind them.

One asyncio server per published binding plays docker-proxy: it accepts on
the host port and hands the request to whatever the container's program
listens with on the private port; with nobody listening inside it closes the
connection at once, as docker-proxy does when the backend refuses.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
READ_TIMEOUT = 5.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return cls(status, json.dumps(data).encode(), h)


Handler = Callable[[Request], Awaitable[Response]]


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    length = int(headers.get("content-length") or 0)
    if 0 < length <= MAX_BODY:
        try:
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            return None
    return Request(parts[0].upper(), parts[1], headers, body)


def _encode(resp: Response, head_only: bool) -> bytes:
    try:
        reason = HTTPStatus(resp.status).phrase
    except ValueError:
        reason = "Unknown"
    headers = {"Date": formatdate(usegmt=True), "Server": "fakedocker"}
    headers.update(resp.headers)
    headers["Content-Length"] = str(len(resp.body))
    headers["Connection"] = "close"
    out = f"HTTP/1.1 {resp.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return out.encode("latin-1") + b"\r\n" + (b"" if head_only else resp.body)


def _forget(sock: socket.socket) -> None:
    """Unregister a socket from the loop before it is closed (a start
    cancelled half-way leaves it registered with no server to undo that)."""
    fd = sock.fileno()
    if fd >= 0:
        try:
            asyncio.get_running_loop().remove_reader(fd)
        except RuntimeError:
            pass


class PortProxy:
    """The listener of one published port."""

    def __init__(self, sock: socket.socket, lookup: Callable[[], Handler | None]) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._lookup = lookup
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task] = set()
        self._closed = False
        self._starting = False

    async def start(self) -> None:
        if self._closed:
            return
        self._starting = True
        try:
            server = await asyncio.start_server(self._serve, sock=self.sock, limit=MAX_HEAD)
        except BaseException:
            self._starting = False
            if self._closed:
                _forget(self.sock)
                self.sock.close()
            raise
        self._starting = False
        if self._closed:
            # close() came while the loop was taking the socket: only the
            # server may close it now, or the loop keeps watching a dead fd
            # number and ignores the next socket that reuses it
            server.close()
        else:
            self._server = server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            handler = self._lookup()
            if handler is None:
                return
            req = await _read_request(reader)
            if req is None:
                return
            try:
                resp = await handler(req)
            except Exception as e:  # noqa: BLE001 - a server error, as a real server would answer
                resp = Response(500, f"fakedocker responder failed: {e}".encode())
            writer.write(_encode(resp, req.method == "HEAD"))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._conns.discard(task)

    @property
    def connections(self) -> list[asyncio.Task]:
        return list(self._conns)

    def close(self) -> None:
        """Stop listening at once (the port is free again) and drop open
        connections."""
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if not self._starting:
            _forget(self.sock)
            self.sock.close()
        for task in list(self._conns):
            task.cancel()
