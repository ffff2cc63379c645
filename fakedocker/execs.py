"""Exec and archives: ``exec_run`` (simulated, or scripted with
``fake.script_exec``) and ``put_archive``, as a mixin of ``FakeDocker``.

An exec resolves its user and working directory as the runtime does (a
missing one exits 126 with the OCI message) and shows up as the engine
shows it: in ``ExecIDs`` while it runs, and as ``exec_*`` events.
"""

from __future__ import annotations

import asyncio
import fnmatch
import shlex
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from dockerspawner.engine.protocol import Conflict, EngineError, ExecResult, NotFound

from ._util import error_500, new_id
from .containers import Container
from .fs import norm
from .programs import Proc, Programs


@dataclass
class ExecScript:
    """A scripted exec answer (``fake.script_exec``)."""

    container: str
    cmd: str | list[str] | Callable[[list[str]], bool]
    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    remaining: int | None = None

    def matches(self, container: Container, argv: list[str]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if not (
            fnmatch.fnmatchcase(container.bare_name, self.container)
            or container.id.startswith(self.container)
        ):
            return False
        if callable(self.cmd):
            return bool(self.cmd(argv))
        if isinstance(self.cmd, list):
            return list(self.cmd) == argv
        return fnmatch.fnmatchcase(" ".join(argv), self.cmd)


class ExecAPI:
    """Exec and archive calls of the protocol (mixed into ``FakeDocker``)."""

    exec_scripts: list[ExecScript]
    programs: Programs

    async def exec_run(
        self,
        ref: str,
        cmd: list[str] | str,
        *,
        user: str | None = None,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ExecResult:
        await self._enter("exec_run", ref=ref, cmd=cmd, user=user, workdir=workdir, environment=environment)
        c = self._container(ref)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        if not argv:
            raise EngineError("No exec command specified", 400)
        code, out, err = await self._exec_with_events(c, argv, user, workdir, environment)
        return ExecResult(exit_code=code, stdout=out, stderr=err)

    async def _exec_with_events(
        self,
        c: Container,
        argv: list[str],
        user: str | None = None,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> tuple[int, bytes, bytes]:
        """One exec as the engine shows it (ExecIDs, exec_* events); health
        probes are execs too."""
        exec_id = new_id()
        c.exec_ids.append(exec_id)
        shown = f"{argv[0]} {' '.join(argv[1:])}"
        self.bus.publish("container", f"exec_create: {shown}", c.id, c.event_attributes(execID=exec_id))
        self.bus.publish("container", f"exec_start: {shown}", c.id, c.event_attributes(execID=exec_id))
        try:
            code, out, err = await self._exec(c, argv, user, workdir, environment)
        finally:
            if exec_id in c.exec_ids:
                c.exec_ids.remove(exec_id)
        self.bus.publish(
            "container", "exec_die", c.id, c.event_attributes(execID=exec_id, exitCode=str(code))
        )
        return code, out, err

    async def _exec(
        self,
        c: Container,
        argv: list[str],
        user: str | None,
        workdir: str | None,
        environment: dict[str, str] | None,
    ) -> tuple[int, bytes, bytes]:
        for script in self.exec_scripts:
            if script.matches(c, argv):
                if script.remaining is not None:
                    script.remaining -= 1
                return script.exit_code, script.stdout, script.stderr
        user = user or c.config.get("User") or ""
        cwd = norm(workdir or c.config.get("WorkingDir") or "/")
        refused = self._check_user(c, user)
        if refused:
            return 126, f"{refused}\r\n".encode(), b""
        if not c.fs.is_dir(cwd):
            msg = (
                "OCI runtime exec failed: exec failed: unable to start container process: "
                f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory: unknown\r\n'
            )
            return 126, msg.encode(), b""
        program, argv = self.programs.resolve(argv)
        if program is None:
            msg = (
                f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{argv[0]}": '
                "executable file not found in $PATH: unknown\r\n"
            )
            return 126, msg.encode(), b""
        out, err = bytearray(), bytearray()
        proc = Proc(
            argv=argv,
            env=self._runtime_env(c, user, environment),
            cwd=cwd,
            user=user,
            fs=c.fs,
            out=out.extend,
            err=err.extend,
            hostname=c.config.get("Hostname") or c.short_id,
            listen=lambda port, handler: self._listen(c, port, handler),
            programs=self.programs,
        )
        run = asyncio.ensure_future(program.run(proc))
        died = asyncio.ensure_future(c.exited.wait())
        try:
            done, _ = await asyncio.wait({run, died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            died.cancel()
        if run in done:
            try:
                code = run.result()
            except Exception as e:  # noqa: BLE001 - a broken simulated program
                err.extend(f"fakedocker: {argv[0]} failed: {e}\n".encode())
                code = 1
        else:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            code = 137
        return code & 0xFF, bytes(out), bytes(err)

    async def put_archive(self, ref: str, path: str, data: bytes) -> None:
        await self._enter("put_archive", ref=ref, path=path, size=len(data))
        c = self._container(ref)
        dest = norm(path)
        if not c.fs.is_dir(dest):
            if c.fs.read(dest) is not None:
                raise EngineError("extraction point is not a directory", 400)
            raise NotFound(f"Could not find the file {path} in container {c.id}")
        read_only = c.fs.read_only_at(dest)
        if read_only:
            raise error_500(read_only)
        try:
            c.fs.extract(dest, data)
        except tarfile.TarError as e:
            raise EngineError(f"Error processing tar file: {e}", 500) from None
        self.bus.publish("container", "extract-to-dir", c.id, c.event_attributes())
