"""A registry the chaos engine pulls from, slowed down on demand.

The loopback registry is ``DOCKERSPAWNER_TEST_REGISTRY`` (127.0.0.1:5000,
started by ``.ci/setup``); when none answers, one of our own runs on a free
loopback port for the module (stopped by its PID). The chaos engine lives in
another network namespace, so it reaches the registry through
``ThrottledProxy``, an asyncio TCP relay listening only on this namespace's
end of the engine's link (``rig.HOST_ADDR``), whose registry-to-engine
direction can be throttled while a pull runs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REGISTRY_ROOT = Path("/tmp/cx-registry")
CHUNK = 16 * 1024


def answers(addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


class OwnRegistry:
    """Debian's ``docker-registry`` on 127.0.0.1, when no test registry answers."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.addr = ""

    def start(self, timeout: float = 20) -> str:
        if shutil.which("docker-registry") is None:
            raise RuntimeError("no registry answers and docker-registry is not installed (apt-get install docker-registry)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.addr = f"127.0.0.1:{port}"
        (REGISTRY_ROOT / "data").mkdir(parents=True, exist_ok=True)
        config = REGISTRY_ROOT / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {REGISTRY_ROOT / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.addr}\n"
        )
        with open(REGISTRY_ROOT / "registry.log", "ab") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not answers(self.addr):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"our registry on {self.addr} did not come up; see {REGISTRY_ROOT}/registry.log")
            time.sleep(0.1)
        return self.addr

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(REGISTRY_ROOT, ignore_errors=True)


def loopback_registry() -> str:
    """The address of the loopback test registry, or "" when none answers."""
    addr = os.environ.get("DOCKERSPAWNER_TEST_REGISTRY") or "127.0.0.1:5000"
    return addr if answers(addr) else ""


class ThrottledProxy:
    """A TCP relay from ``listen_ip`` to ``target``; ``rate`` (bytes/s, None:
    full speed) limits what flows back to the client, ``sent`` counts it."""

    def __init__(self, listen_ip: str, target: str) -> None:
        self.listen_ip = listen_ip
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.rate: float | None = None
        self.sent = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.listen_ip, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def addr(self) -> str:
        return f"{self.listen_ip}:{self.port}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, asyncio.TimeoutError):
            client_w.close()
            return
        pumps = [asyncio.ensure_future(self._pump(client_r, up_w, False)),
                 asyncio.ensure_future(self._pump(up_r, client_w, True))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for w in (client_w, up_w):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, down: bool) -> None:
        while True:
            rate = self.rate if down else None
            data = await reader.read(min(CHUNK, int(rate / 10)) if rate else 65536)
            if not data:
                return
            writer.write(data)
            await writer.drain()
            if down:
                self.sent += len(data)
                if rate:
                    await asyncio.sleep(len(data) / rate)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), 5)


def delete_image(addr: str, repo: str, tag: str) -> bool:
    """Delete ``repo:tag``'s manifest from the registry at ``addr`` (its blobs
    stay until the registry's garbage collection); False if that failed."""
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    try:
        head = urllib.request.Request(f"http://{addr}/v2/{repo}/manifests/{tag}", method="HEAD",
                                      headers={"Accept": accept})
        with urllib.request.urlopen(head, timeout=5) as resp:
            digest = resp.headers["Docker-Content-Digest"]
        delete = urllib.request.Request(f"http://{addr}/v2/{repo}/manifests/{digest}", method="DELETE")
        with urllib.request.urlopen(delete, timeout=5) as resp:
            return resp.status == 202
    except OSError:
        return False
