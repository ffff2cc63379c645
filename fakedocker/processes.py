"""Process mode: a container whose command exists on the host runs as a
local subprocess, so a test can drive a real ``jupyterhub-singleuser``.

The process gets the container's environment (with the host's ``PATH``),
its output becomes the container's logs and its exit the container's exit.
``jupyterhub-singleuser`` is told to listen on 127.0.0.1 at the container's
published host port, so the hub reaches it the way it reaches a container.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from .programs import START_SCRIPTS, is_singleuser_command

_IP_PORT_FLAGS = re.compile(r"^--((ServerApp|NotebookApp|SingleUserNotebookApp)\.)?(ip|port)(=.*)?$")


def host_path() -> str:
    """The host's PATH, then this interpreter's directory, so a virtualenv's
    console scripts (``jupyterhub-singleuser``) are found even when the venv
    is not activated."""
    return os.pathsep.join([os.environ.get("PATH", "/usr/bin:/bin"), os.path.dirname(sys.executable)])


def host_executable(name: str) -> str | None:
    return shutil.which(name, path=host_path())


def is_singleuser(argv: list[str]) -> bool:
    return is_singleuser_command(argv)


def host_command(argv: list[str]) -> list[str]:
    """The command to run on the host for a container's ``argv``: a
    docker-stacks start script runs itself where the host has it, else the
    ``jupyterhub-singleuser`` it would exec, with the same arguments."""
    if argv and posixpath.basename(argv[0]) in START_SCRIPTS and host_executable(argv[0]) is None:
        return ["jupyterhub-singleuser", *argv[1:]]
    return list(argv)


def rewrite_singleuser(
    argv: list[str], env: dict[str, str], host_port: int
) -> tuple[list[str], dict[str, str]]:
    """Make jupyterhub-singleuser listen on 127.0.0.1:``host_port``: drop
    ``--ip``/``--port`` options and point ``JUPYTERHUB_SERVICE_URL`` there."""
    out: list[str] = [argv[0]]
    skip = False
    for a in argv[1:]:
        if skip:
            skip = False
            continue
        m = _IP_PORT_FLAGS.match(a)
        if m:
            skip = m.group(4) is None
            continue
        out.append(a)
    env = dict(env)
    url = env.get("JUPYTERHUB_SERVICE_URL")
    if url:
        parts = urlsplit(url)
        env["JUPYTERHUB_SERVICE_URL"] = urlunsplit(
            (parts.scheme or "http", f"127.0.0.1:{host_port}", parts.path, parts.query, parts.fragment)
        )
    out += ["--ip=127.0.0.1", f"--port={host_port}"]
    return out, env


class LocalProcess:
    """One container's process on the host."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        on_output: Callable[[str, bytes], None],
    ) -> None:
        self.argv = argv
        self.env = env
        self.on_output = on_output
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    async def start(self) -> None:
        env = dict(self.env)
        env["PATH"] = host_path()
        self._tmp = tempfile.TemporaryDirectory(prefix="fakedocker-proc-")
        env.setdefault("HOME", self._tmp.name)
        executable = host_executable(self.argv[0]) or self.argv[0]
        self.proc = await asyncio.create_subprocess_exec(
            executable,
            *self.argv[1:],
            env=env,
            cwd=self._tmp.name,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._pump(self.proc.stdout, "stdout")),
            asyncio.ensure_future(self._pump(self.proc.stderr, "stderr")),
        ]

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            self.on_output(name, line)

    async def wait(self) -> int:
        """The exit code as the engine reports it (128 + signal when killed)."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        self._cleanup()
        return 128 - code if code < 0 else code

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    async def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.send(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        except asyncio.TimeoutError:
            self.send(signal.SIGKILL)
            await self.proc.wait()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        for r in self._readers:
            if not r.done():
                r.cancel()
