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
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .fs import ContainerFS, norm
from .http import Handler, Request, Response

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
    for arg in proc.argv[1:]:
        if not arg.startswith("-"):
            proc.fs.mkdir(norm(arg, proc.cwd))
    return 0


async def _touch(proc: Proc) -> int:
    for arg in proc.argv[1:]:
        path = norm(arg, proc.cwd)
        if proc.fs.read(path) is None:
            proc.fs.write(path, b"")
    return 0


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


# -- sh -----------------------------------------------------------------------------------


class ShellExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


OPERATORS = (";", "&&", "||", "|", "&", "\n")


@dataclass
class Word:
    """A shell word: (text, expand) segments; single quotes do not expand."""

    parts: list[tuple[str, bool]] = field(default_factory=list)
    fd: int | None = None  # a ``2>`` style redirect prefix

    def add(self, text: str, expand: bool) -> None:
        self.parts.append((text, expand))

    def expand(self, env: dict[str, str], status: int) -> str:
        out = []
        for text, expand in self.parts:
            if not expand:
                out.append(text)
                continue

            def var(m: re.Match) -> str:
                name = m.group(1) or m.group(2) or m.group(3)
                if name == "?":
                    return str(status)
                if name == "$":
                    return "1"
                return env.get(name, "")

            out.append(
                re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$([?$])", var, text)
            )
        return "".join(out)


def tokenize(script: str) -> list[Word | str]:
    """Words and operators (``;`` ``&&`` ``||`` ``|`` ``&`` newline and the
    redirects ``>`` ``>>`` ``>&`` ``<``)."""
    tokens: list[Word | str] = []
    word: Word | None = None
    i, n = 0, len(script)

    def flush() -> None:
        nonlocal word
        if word is not None:
            tokens.append(word)
            word = None

    while i < n:
        c = script[i]
        if c in " \t":
            flush()
            i += 1
        elif c == "\\" and i + 1 < n:
            if script[i + 1] != "\n":
                word = word or Word()
                word.add(script[i + 1], False)
            i += 2
        elif c == "'":
            end = script.find("'", i + 1)
            end = n if end < 0 else end
            word = word or Word()
            word.add(script[i + 1 : end], False)
            i = end + 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and script[j] != '"':
                if script[j] == "\\" and j + 1 < n and script[j + 1] in '"\\$`':
                    buf.append(script[j + 1])
                    j += 2
                    continue
                buf.append(script[j])
                j += 1
            word = word or Word()
            word.add("".join(buf), True)
            i = j + 1
        elif c == "#" and word is None:
            while i < n and script[i] != "\n":
                i += 1
        elif c in ";&|\n<>":
            fd = None
            if (
                c == ">"
                and word is not None
                and len(word.parts) == 1
                and word.parts[0][0] in ("1", "2")
                and word.parts[0][1]
            ):
                fd = int(word.parts[0][0])
                word = None
            flush()
            two = script[i : i + 2]
            if two in ("&&", "||", ">>", ">&"):
                op, i = two, i + 2
            else:
                op, i = c, i + 1
            if fd is not None:
                tokens.append(f"{fd}{op}")
            else:
                tokens.append(op)
        else:
            word = word or Word()
            j = i
            while j < n and script[j] not in " \t'\"\\;&|\n<>":
                j += 1
            word.add(script[i:j], True)
            i = j
    flush()
    return tokens


async def _sh(proc: Proc) -> int:
    args = proc.argv[1:]
    while args and args[0].startswith("-") and args[0] != "-c":
        args = args[1:]
    if not args or args[0] != "-c":
        return 0  # no script and no stdin: the shell reads EOF and exits
    if len(args) < 2:
        proc.error("sh: -c requires an argument\n")
        return 2
    try:
        return await run_script(proc, args[1])
    except ShellExit as e:
        return e.code


async def run_script(proc: Proc, script: str) -> int:
    tokens = tokenize(script)
    commands: list[tuple[str, list[Word | str]]] = []
    current: list[Word | str] = []
    joiner = ";"
    for tok in tokens:
        if isinstance(tok, str) and tok in OPERATORS:
            commands.append((joiner, current))
            current, joiner = [], tok
        else:
            current.append(tok)
    commands.append((joiner, current))
    status = 0
    for joiner, command in commands:
        if not command:
            continue
        if joiner == "&&" and status != 0:
            continue
        if joiner == "||" and status == 0:
            continue
        status = await _run_simple(proc, command, status)
    return status


async def _run_simple(proc: Proc, tokens: list[Word | str], status: int) -> int:
    argv: list[str] = []
    redirects: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, str):
            target = tokens[i + 1] if i + 1 < len(tokens) else None
            if not isinstance(target, Word):
                proc.error(f"sh: syntax error: unexpected {tok!r}\n")
                return 2
            redirects.append((tok, target.expand(proc.env, status)))
            i += 2
            continue
        argv.append(tok.expand(proc.env, status))
        i += 1
    assigns = {}
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        k, v = argv.pop(0).split("=", 1)
        assigns[k] = v
    if not argv:
        proc.env.update(assigns)
        return 0

    files: dict[str, bytearray] = {}
    appends: set[str] = set()
    out, err = proc.out, proc.err

    def to_file(path: str, append: bool) -> Callable[[bytes], None]:
        full = norm(path, proc.cwd)
        if full == "/dev/null":
            return lambda data: None
        buf = files.setdefault(full, bytearray())
        if append:
            appends.add(full)
        return buf.extend

    for op, target in redirects:
        if op in (">&", "1>&") and target == "2":
            out = proc.err
        elif op == "2>&" and target == "1":
            err = out
        elif op in (">", "1>", ">>", "1>>"):
            out = to_file(target, op.endswith(">>"))
        elif op in ("2>", "2>>"):
            err = to_file(target, op.endswith(">>"))
        elif op == "<":
            continue
    sub = replace(proc, argv=argv, env={**proc.env, **assigns}, out=out, err=err)
    try:
        code = await _builtin_or_program(sub, proc)
    finally:
        for path, data in files.items():
            old = (proc.fs.read(path) or b"") if path in appends else b""
            proc.fs.write(path, old + bytes(data))
    return code


async def _builtin_or_program(sub: Proc, shell: Proc) -> int:
    name = sub.argv[0]
    if name == "exit":
        raise ShellExit(
            int(sub.argv[1]) & 0xFF if len(sub.argv) > 1 and sub.argv[1].lstrip("-").isdigit() else 0
        )
    if name in (":", "wait", "set", "trap", "umask", "ulimit"):
        return 0
    if name == "cd":
        target = norm(sub.argv[1] if len(sub.argv) > 1 else sub.env.get("HOME", "/"), shell.cwd)
        if not shell.fs.is_dir(target):
            sub.error(
                f"sh: cd: can't cd to {sub.argv[1] if len(sub.argv) > 1 else target}: No such file or directory\n"
            )
            return 2
        shell.cwd = target
        return 0
    if name == "export":
        for a in sub.argv[1:]:
            if "=" in a:
                k, v = a.split("=", 1)
                shell.env[k] = v
        return 0
    if name == "exec":
        if len(sub.argv) == 1:
            return 0
        exec_proc = replace(sub, argv=sub.argv[1:])
        program, _ = (shell.programs or Programs()).resolve(exec_proc.argv)
        if program is not None:
            shell.on_sigterm[0] = program.on_sigterm
        raise ShellExit(await run_program(exec_proc))
    program, argv = (shell.programs or Programs()).resolve(sub.argv)
    if program is None:
        sub.error(f"sh: {name}: not found\n")
        return 127
    return await program.run(replace(sub, argv=argv))


async def run_program(proc: Proc) -> int:
    """Run ``proc.argv`` with the simulator; unknown programs in a shell are
    "not found" (127)."""
    program, argv = (proc.programs or Programs()).resolve(proc.argv)
    if program is None:
        proc.error(f"sh: {proc.argv[0]}: not found\n")
        return 127
    return await program.run(replace(proc, argv=argv))


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
    "sh": Program(_sh),
    "ash": Program(_sh),
    "bash": Program(_sh),
    "httpd": Program(_httpd),
    "jupyterhub-singleuser": Program(_singleuser, on_sigterm=0),
}

#: Names whose simulation stands in for a busybox applet; process mode never
#: runs these on the host, whatever the host has on its PATH.
APPLETS = frozenset(BUILTINS) - {"jupyterhub-singleuser"}
