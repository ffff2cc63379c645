"""The container programs the fake simulates.

A container's command runs as a coroutine here instead of a process: the
busybox applets the tests use (``sleep``, ``sh -c``, ``echo``, ``cat``,
``id``, ``httpd`` ...), and ``jupyterhub-singleuser`` as an HTTP responder.
Each program declares what SIGTERM does to it as PID 1, because that is
what decides how long a ``stop`` takes on the real engine.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import posixpath
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .fs import ContainerFS, Meta, norm
from .http import Handler, Request, Response
from .shell import ShellExit, Word, run_program, run_script, sh, tokenize

__all__ = ["IGNORE", "Proc", "Program", "Programs", "ShellExit", "Word", "run_program", "run_script", "tokenize"]

#: SIGTERM policy "ignore": what PID 1 without a handler does (busybox
#: applets); a stop then waits for its timeout and kills.
IGNORE = None


@dataclass
class Proc:
    """What a running program sees: its argv, environment and container."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    user: str
    fs: ContainerFS
    out: Callable[[bytes], None]
    err: Callable[[bytes], None]
    hostname: str = ""
    listen: Callable[[int, Handler], None] = lambda port, handler: None
    programs: Programs | None = None
    #: Exit code on SIGTERM, or IGNORE; programs (and ``exec``) may change it.
    on_sigterm: list = field(default_factory=lambda: [IGNORE])

    def write(self, text: str) -> None:
        self.out(text.encode())

    def error(self, text: str) -> None:
        self.err(text.encode())

    def passwd(self) -> list[list[str]]:
        data = self.fs.read("/etc/passwd") or b""
        return [
            line.split(":") for line in data.decode(errors="replace").splitlines() if line.count(":") >= 3
        ]

    def ids(self) -> tuple[int, int, str]:
        """(uid, gid, name) of ``user`` (``name``, ``uid``, ``uid:gid``)."""
        name, _, group = (self.user or "root").partition(":")
        entries = self.passwd()
        if name.isdigit():
            uid = int(name)
            gid = next((int(e[3]) for e in entries if e[2] == name and e[3].isdigit()), uid if uid else 0)
            uname = next((e[0] for e in entries if e[2] == name), "")
        else:
            entry = next((e for e in entries if e[0] == name), None)
            uid = int(entry[2]) if entry else 0
            gid = int(entry[3]) if entry else 0
            uname = name
        if group.isdigit():
            gid = int(group)
        return uid, gid, uname


ProgramFn = Callable[[Proc], Awaitable[int]]


@dataclass
class Program:
    run: ProgramFn
    #: Exit code when SIGTERM arrives, or IGNORE (PID 1 without a handler).
    on_sigterm: int | None = IGNORE


class Programs:
    """The table of simulated programs (``fake.programs``); downstream tests
    may register their own: ``fake.programs.register("start.sh", fn, on_sigterm=0)``."""

    def __init__(self) -> None:
        self.table: dict[str, Program] = dict(BUILTINS)

    def register(self, name: str, fn: ProgramFn, *, on_sigterm: int | None = 143) -> None:
        self.table[name] = Program(fn, on_sigterm)

    def resolve(self, argv: list[str]) -> tuple[Program | None, list[str]]:
        if not argv:
            return None, argv
        name = posixpath.basename(argv[0])
        if name == "busybox" and len(argv) > 1:
            argv = argv[1:]
            name = posixpath.basename(argv[0])
        if name in self.table:
            return self.table[name], argv
        if is_singleuser_command(argv):
            return self.table["jupyterhub-singleuser"], argv
        return None, argv


async def run_forever(proc: Proc) -> int:
    """Any program the fake does not know: it runs until it is stopped."""
    await asyncio.Event().wait()
    return 0


# -- busybox applets ------------------------------------------------------------------


async def _true(proc: Proc) -> int:
    return 0


async def _false(proc: Proc) -> int:
    return 1


async def _echo(proc: Proc) -> int:
    args = proc.argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = "e" in args[0] or escapes
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text = text.encode().decode("unicode_escape")
    proc.write(text + ("\n" if newline else ""))
    return 0


def _format_once(fmt: str, args: list[str]) -> tuple[str, int]:
    """One pass of printf's FORMAT over ``args``; returns text and args used."""
    used = 0

    def sub(m: re.Match) -> str:
        nonlocal used
        if m.group(0) == "%%":
            return "%"
        value = args[used] if used < len(args) else ""
        used += 1
        return str(int(value or 0)) if m.group(0) == "%d" else value

    return re.sub(r"%%|%s|%d", sub, fmt), used


async def _printf(proc: Proc) -> int:
    if len(proc.argv) < 2:
        proc.error("printf: usage: printf FORMAT [ARG]...\n")
        return 1
    fmt = proc.argv[1].encode().decode("unicode_escape")
    args = proc.argv[2:]
    out = []
    while True:
        pieces, used = _format_once(fmt, args)
        out.append(pieces)
        args = args[used:]
        if not args or not used:
            break
    proc.write("".join(out))
    return 0


def _seconds(text: str) -> float | None:
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", text)
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


async def _sleep(proc: Proc) -> int:
    if len(proc.argv) < 2:
        proc.error("sleep: missing operand\n")
        return 1
    if proc.argv[1] == "infinity":
        return await run_forever(proc)
    total = 0.0
    for arg in proc.argv[1:]:
        secs = _seconds(arg)
        if secs is None:
            proc.error(f"sleep: invalid number '{arg}'\n")
            return 1
        total += secs
    await asyncio.sleep(total)
    return 0


async def _cat(proc: Proc) -> int:
    status = 0
    for arg in proc.argv[1:]:
        path = norm(arg, proc.cwd)
        data = proc.fs.read(path)
        if data is None:
            if proc.fs.is_dir(path):
                proc.error("cat: read error: Is a directory\n")
            else:
                proc.error(f"cat: can't open '{arg}': No such file or directory\n")
            status = 1
            continue
        proc.out(data)
    return status


async def _id(proc: Proc) -> int:
    uid, gid, name = proc.ids()
    flags = "".join(a[1:] for a in proc.argv[1:] if a.startswith("-"))
    if "u" in flags:
        proc.write((name if "n" in flags else str(uid)) + "\n")
    elif "g" in flags:
        proc.write(str(gid) + "\n")
    else:
        label = f"({name})" if name else ""
        proc.write(f"uid={uid}{label} gid={gid} groups={gid}\n")
    return 0


async def _whoami(proc: Proc) -> int:
    uid, _, name = proc.ids()
    if not name:
        proc.error(f"whoami: unknown uid {uid}\n")
        return 1
    proc.write(name + "\n")
    return 0


async def _pwd(proc: Proc) -> int:
    proc.write(proc.cwd + "\n")
    return 0


async def _hostname(proc: Proc) -> int:
    proc.write(proc.hostname + "\n")
    return 0


async def _printenv(proc: Proc) -> int:
    if len(proc.argv) == 1:
        proc.write("".join(f"{k}={v}\n" for k, v in proc.env.items()))
        return 0
    status = 0
    for name in proc.argv[1:]:
        if name in proc.env:
            proc.write(proc.env[name] + "\n")
        else:
            status = 1
    return status


async def _env(proc: Proc) -> int:
    proc.write("".join(f"{k}={v}\n" for k, v in proc.env.items()))
    return 0


async def _ls(proc: Proc) -> int:
    paths = [a for a in proc.argv[1:] if not a.startswith("-")] or ["."]
    status = 0
    for arg in paths:
        path = norm(arg, proc.cwd)
        if proc.fs.is_dir(path):
            names = proc.fs.listdir(path)
            proc.write("".join(n + "\n" for n in names))
        elif proc.fs.read(path) is not None:
            proc.write(arg + "\n")
        else:
            proc.error(f"ls: {arg}: No such file or directory\n")
            status = 1
    return status


async def _mkdir(proc: Proc) -> int:
    uid, gid, _ = proc.ids()
    status = 0
    for arg in proc.argv[1:]:
        if arg.startswith("-"):
            continue
        path = norm(arg, proc.cwd)
        reason = None if proc.fs.is_dir(path) and "-p" in proc.argv else proc.fs.denied(path, uid, gid)
        if proc.fs.exists(path) and "-p" not in proc.argv:
            reason = "File exists"
        if reason:
            proc.error(f"mkdir: can't create directory '{arg}': {reason}\n")
            status = 1
            continue
        proc.fs.mkdir(path, Meta(uid, gid, 0o755))
    return status


async def _touch(proc: Proc) -> int:
    uid, gid, _ = proc.ids()
    status = 0
    for arg in proc.argv[1:]:
        path = norm(arg, proc.cwd)
        reason = proc.fs.denied(path, uid, gid)
        if reason:
            proc.error(f"touch: {arg}: {reason}\n")
            status = 1
        elif proc.fs.read(path) is None:
            proc.fs.write(path, b"", Meta(uid, gid, 0o644))
    return status


async def _test(proc: Proc) -> int:
    args = proc.argv[1:]
    if posixpath.basename(proc.argv[0]) == "[":
        if not args or args[-1] != "]":
            proc.error("[: missing ]\n")
            return 2
        args = args[:-1]
    negate = False
    if args and args[0] == "!":
        negate, args = True, args[1:]
    result = False
    if len(args) == 1:
        result = args[0] != ""
    elif len(args) == 2:
        op, arg = args
        path = norm(arg, proc.cwd)
        result = {
            "-f": lambda: proc.fs.read(path) is not None,
            "-d": lambda: proc.fs.is_dir(path),
            "-e": lambda: proc.fs.exists(path),
            "-z": lambda: arg == "",
            "-n": lambda: arg != "",
        }.get(op, lambda: False)()
    elif len(args) == 3:
        a, op, b = args
        if op in ("=", "=="):
            result = a == b
        elif op == "!=":
            result = a != b
        elif op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            try:
                x, y = int(a), int(b)
            except ValueError:
                proc.error(f"test: invalid number '{a if not a.lstrip('-').isdigit() else b}'\n")
                return 2
            result = {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y, "-gt": x > y, "-ge": x >= y}[
                op
            ]
    return 0 if result != negate else 1


# -- httpd -----------------------------------------------------------------------------

_NOT_FOUND = (
    b"<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD>\n"
    b"<BODY><H1>404 Not Found</H1>\nThe requested URL was not found\n</BODY></HTML>\n"
)


async def _httpd(proc: Proc) -> int:
    """busybox ``httpd``: serves files of ``-h DIR`` on ``-p [IP:]PORT``.

    Without ``-f`` it daemonizes: PID 1 exits 0 at once, as on the engine.
    """
    args = proc.argv[1:]
    foreground, port, home = False, 80, proc.cwd
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-f":
            foreground = True
        elif a in ("-p", "-h", "-u", "-c", "-r") and i + 1 < len(args):
            value = args[i + 1]
            if a == "-p":
                port = int(value.rsplit(":", 1)[-1])
            elif a == "-h":
                home = norm(value, proc.cwd)
            i += 1
        elif a.startswith("-") and "f" in a[1:] and not a.startswith("--"):
            foreground = True
        i += 1
    if not foreground:
        return 0

    async def serve(req: Request) -> Response:
        path = norm(req.path.split("?", 1)[0], "/")
        target = norm(path.lstrip("/"), home)
        if proc.fs.is_dir(target):
            target = posixpath.join(target, "index.html")
        data = proc.fs.read(target)
        if req.method not in ("GET", "HEAD", "POST"):
            return Response(501, b"<HTML><HEAD><TITLE>501 Not Implemented</TITLE></HEAD>\n")
        if data is None:
            return Response(404, _NOT_FOUND, {"Content-Type": "text/html"})
        ctype = "text/html" if target.endswith((".html", ".htm")) else "application/octet-stream"
        if target.endswith(".txt"):
            ctype = "text/plain"
        return Response(200, data, {"Content-Type": ctype})

    proc.listen(port, serve)
    return await run_forever(proc)


# -- jupyterhub-singleuser -------------------------------------------------------------------

#: docker-stacks' start scripts: they end in ``exec jupyterhub-singleuser "$@"``
#: when the hub started the container (JUPYTERHUB_API_TOKEN is set).
START_SCRIPTS = frozenset(
    {"start-notebook.sh", "start-singleuser.sh", "start-notebook.py", "start-singleuser.py"}
)


def is_singleuser_command(argv: list[str]) -> bool:
    """Whether a container command starts a single-user server:
    ``jupyterhub-singleuser`` (any path or prefix) or a docker-stacks start script."""
    if not argv:
        return False
    name = posixpath.basename(argv[0])
    return name.endswith("jupyterhub-singleuser") or name in START_SCRIPTS



def _jupyterhub_version() -> str:
    try:
        return importlib.metadata.version("jupyterhub")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def _log_time() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def singleuser_address(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    """Where jupyterhub-singleuser listens: ``--ip``/``--port`` if given,
    else the host and port of ``JUPYTERHUB_SERVICE_URL``, else 0.0.0.0:8888."""
    ip, port = "", 0
    url = env.get("JUPYTERHUB_SERVICE_URL")
    if url:
        parts = urlsplit(url)
        ip = parts.hostname or ""
        port = parts.port or 0
    for i, a in enumerate(argv):
        for flag in (
            "--ip",
            "--port",
            "--ServerApp.ip",
            "--ServerApp.port",
            "--NotebookApp.ip",
            "--NotebookApp.port",
        ):
            if a.startswith(flag + "="):
                value = a.split("=", 1)[1]
            elif a == flag and i + 1 < len(argv):
                value = argv[i + 1]
            else:
                continue
            if flag.endswith("ip"):
                ip = value
            else:
                port = int(value)
    return ip or "0.0.0.0", port or 8888


async def _singleuser(proc: Proc) -> int:
    """Answers like a single-user server under ``JUPYTERHUB_SERVICE_PREFIX``
    (200 JSON, ``X-JupyterHub-Version``), so a hub's readiness check passes."""
    version = _jupyterhub_version()
    prefix = proc.env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    if not prefix.endswith("/"):
        prefix += "/"
    ip, port = singleuser_address(proc.argv, proc.env)
    started = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    headers = {"X-JupyterHub-Version": version}

    async def serve(req: Request) -> Response:
        path = req.path.split("?", 1)[0]
        if not (path + "/").startswith(prefix):
            return Response.json({"message": "Not Found", "reason": None}, 404, headers)
        rest = path[len(prefix) :] if path.startswith(prefix) else ""
        if rest.rstrip("/") == "api":
            return Response.json({"version": "2.0.0"}, headers=headers)
        if rest.rstrip("/") == "api/status":
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            return Response.json(
                {"started": started, "last_activity": now, "connections": 0, "kernels": 0},
                headers=headers,
            )
        return Response.json({"server": "fakedocker jupyterhub-singleuser", "path": path}, headers=headers)

    log = proc.error
    log(
        f"[I {_log_time()} JupyterHubSingleUser] Starting jupyterhub single-user server extension version {version}\n"
    )
    log(f"[I {_log_time()} ServerApp] Jupyter Server (fakedocker) is running at:\n")
    log(f"[I {_log_time()} ServerApp] http://{ip}:{port}{prefix}\n")
    proc.listen(port, serve)
    try:
        return await run_forever(proc)
    except asyncio.CancelledError:
        log(f"[C {_log_time()} ServerApp] received signal 15, stopping\n")
        raise


BUILTINS: dict[str, Program] = {
    "true": Program(_true),
    "false": Program(_false),
    "echo": Program(_echo),
    "printf": Program(_printf),
    "sleep": Program(_sleep),
    "cat": Program(_cat),
    "id": Program(_id),
    "whoami": Program(_whoami),
    "pwd": Program(_pwd),
    "hostname": Program(_hostname),
    "printenv": Program(_printenv),
    "env": Program(_env),
    "ls": Program(_ls),
    "mkdir": Program(_mkdir),
    "touch": Program(_touch),
    "test": Program(_test),
    "[": Program(_test),
    "sh": Program(sh),
    "ash": Program(sh),
    "bash": Program(sh),
    "httpd": Program(_httpd),
    "jupyterhub-singleuser": Program(_singleuser, on_sigterm=0),
}

#: Names whose simulation stands in for a busybox applet; process mode never
#: runs these on the host, whatever the host has on its PATH.
APPLETS = frozenset(BUILTINS) - {"jupyterhub-singleuser"}
