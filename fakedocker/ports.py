"""Host ports for published container ports.

Every binding is a real listening socket on 127.0.0.1 (never another
interface, whatever ``HostIp`` says), so a port the fake hands out is free
and stays unique across fakes, test processes and everything else on the
machine until the container stops.
"""

from __future__ import annotations

import errno
import random
import socket
import threading

from dockerspawner.engine.protocol import EngineError

#: Ports reserved by any FakeDocker of this process, also while no socket
#: holds them (process mode hands the port to a child that binds it itself).
_reserved: set[int] = set()
_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    """Where the engine takes host ports from: the kernel's ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 49153, 60999


class PortAllocator:
    """Finds free ports in ``port_range``, starting at a random offset so
    parallel test processes rarely probe the same ports."""

    def __init__(self, port_range: tuple[int, int] | None = None) -> None:
        self.lo, self.hi = port_range or _ephemeral_range()
        self._cursor = random.randint(self.lo, self.hi)
        self.mine: set[int] = set()

    def bind(self, port: int | None, *, endpoint: str, container_id: str) -> socket.socket:
        """A listening socket on 127.0.0.1:``port`` (a free one when None).

        Raises the engine's 500 when a requested port is taken.
        """
        if port:
            with _lock:
                taken = port in _reserved
            sock = None if taken else _try_listen(port)
            if sock is None:
                raise EngineError(
                    f"driver failed programming external connectivity on endpoint {endpoint} "
                    f"({container_id}): Error starting userland proxy: listen tcp4 127.0.0.1:{port}: "
                    "bind: address already in use",
                    500,
                )
            self._reserve(port)
            return sock
        span = self.hi - self.lo + 1
        for _ in range(min(span, 2000)):
            candidate = self._cursor
            self._cursor = self.lo if self._cursor >= self.hi else self._cursor + 1
            with _lock:
                if candidate in _reserved:
                    continue
            sock = _try_listen(candidate)
            if sock is not None:
                self._reserve(candidate)
                return sock
        raise EngineError("failed to allocate a host port: no free port in the fake's range", 500)

    def reserve_free(self, *, endpoint: str, container_id: str) -> int:
        """A free port for a local process to bind itself."""
        sock = self.bind(None, endpoint=endpoint, container_id=container_id)
        port = sock.getsockname()[1]
        sock.close()
        return port

    def _reserve(self, port: int) -> None:
        with _lock:
            _reserved.add(port)
        self.mine.add(port)

    def release(self, port: int) -> None:
        with _lock:
            _reserved.discard(port)
        self.mine.discard(port)

    def release_all(self) -> None:
        for port in list(self.mine):
            self.release(port)


def _try_listen(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Linux never lets two sockets listen on one port, even with SO_REUSEADDR;
    # it only stops old TIME_WAIT connections from blocking a released port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
        return sock
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            return None
        raise
