"""``sh -c``: a small POSIX shell for the scripts single-user images run.

It understands what entrypoint wrappers are made of: simple commands joined
by ``;`` ``&&`` ``||`` ``|`` ``&`` and newlines; ``while``/``until``, ``if``,
``for`` and ``{ ...; }``; functions ``name() { ...; }``; ``$VAR``, ``${VAR}``,
``$?``, ``$!``, ``$$``, ``$1``..``$9``, ``$#``, ``$@`` and ``$((arithmetic))``;
redirects; ``trap`` (handlers for signals and EXIT) with ``wait``, so that
``trap 'exit 0' TERM; server & wait`` stops as it does on the engine.

What it does not run (see fakedocker/README.md): command substitution
``$(...)`` and backticks, subshells ``( ... )``, ``case``, here-documents,
globbing, and stdin (``|`` runs its commands one after the other; a pipe's
right side reads nothing).

Signals follow busybox ``sh``: a trapped signal runs its handler when the
running foreground command ends, at once during ``wait``; PID 1 ignores a
signal it has no trap for (unless run under init, which is the engine's
business, see ``lifecycle._term_code``).
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import operator
import re
import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .fs import Meta, norm

if TYPE_CHECKING:
    from .programs import Proc

SIGNALS = {
    name[3:]: int(value)
    for name, value in _signal.Signals.__members__.items()
    if name.startswith("SIG") and not name.startswith("SIG_")
}
KEYWORDS = frozenset({"while", "until", "do", "done", "if", "then", "elif", "else", "fi", "for", "in", "{", "}", "!"})
SEPARATORS = (";", "\n", "&")
_pids = itertools.count(100)


class ShellExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ShellSyntaxError(Exception):
    pass


OPERATORS = (";", "&&", "||", "|", "&", "\n")


@dataclass
class Word:
    """A shell word: (text, expand) segments; single quotes do not expand."""

    parts: list[tuple[str, bool]] = field(default_factory=list)
    fd: int | None = None  # a ``2>`` style redirect prefix

    def add(self, text: str, expand: bool) -> None:
        self.parts.append((text, expand))

    @property
    def literal(self) -> str | None:
        """The word's text when it is one unquoted part (keywords, names)."""
        if len(self.parts) == 1 and self.parts[0][1]:
            return self.parts[0][0]
        return None

    def expand(self, env: dict[str, str], status: int, special: dict[str, str] | None = None) -> str:
        special = special or {}
        out = []
        for text, expand in self.parts:
            if not expand:
                out.append(text)
                continue

            def var(m: re.Match) -> str:
                name = m.group(1) or m.group(2) or m.group(3)
                if name == "?":
                    return str(status)
                if name in special:
                    return special[name]
                if name == "$":
                    return "1"
                return env.get(name, "")

            text = re.sub(r"\$\(\((.*?)\)\)", lambda m: str(arithmetic(m.group(1), env)), text)
            out.append(
                re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$([?$!#@*0-9])", var, text)
            )
        return "".join(out)


_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def arithmetic(expr: str, env: dict[str, str]) -> int:
    """``$(( ))``: integers, variables, + - * / % and comparisons."""
    text = re.sub(r"\$?([A-Za-z_][A-Za-z0-9_]*)", lambda m: env.get(m.group(1), "0") or "0", expr)
    text = text.replace("/", "//")

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return int(_ARITH[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _ARITH:
            return int(_ARITH[type(node.ops[0])](ev(node.left), ev(node.comparators[0])))
        raise ValueError(expr)

    try:
        return ev(ast.parse(text.strip() or "0", mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError):
        return 0


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
        elif c == "$" and script.startswith("$((", i):
            end = script.find("))", i)
            end = n if end < 0 else end + 2
            word = word or Word()
            word.add(script[i:end], True)
            i = end
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
            if c == ">" and word is not None and word.literal in ("1", "2"):
                fd = int(word.parts[0][0])
                word = None
            flush()
            two = script[i : i + 2]
            if two in ("&&", "||", ">>", ">&"):
                op, i = two, i + 2
            else:
                op, i = c, i + 1
            tokens.append(f"{fd}{op}" if fd is not None else op)
        else:
            word = word or Word()
            j = i
            while j < n and script[j] not in " \t'\"\\;&|\n<>" and not script.startswith("$((", j):
                j += 1
            word.add(script[i:j], True)
            i = j
    flush()
    return tokens


# -- parsing ---------------------------------------------------------------------------------

@dataclass
class Simple:
    tokens: list[Word | str]


@dataclass
class Seq:
    """Commands in order; ``background`` ones run as jobs."""

    items: list[tuple[Any, bool]] = field(default_factory=list)


@dataclass
class AndOr:
    items: list[tuple[str, Any]]  # (";" for the first, "&&" or "||", node)


@dataclass
class Pipeline:
    commands: list[Any]
    negate: bool = False


@dataclass
class Loop:
    cond: Seq
    body: Seq
    until: bool = False


@dataclass
class If:
    branches: list[tuple[Seq, Seq]]
    otherwise: Seq | None = None


@dataclass
class For:
    var: str
    words: list[Word]
    body: Seq


@dataclass
class Group:
    body: Seq


@dataclass
class Function:
    name: str
    body: Any


class Parser:
    def __init__(self, tokens: list[Word | str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Word | str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self) -> str | None:
        tok = self.peek()
        return tok.literal if isinstance(tok, Word) and tok.literal in KEYWORDS else None

    def expect(self, kw: str) -> None:
        if self.keyword() != kw:
            found = self.peek()
            shown = found if isinstance(found, str) or found is None else "".join(p for p, _ in found.parts)
            raise ShellSyntaxError(f"unexpected {shown!r} (expecting {kw!r})")
        self.i += 1

    def skip_newlines(self) -> None:
        while self.peek() in ("\n", ";"):
            self.i += 1

    def parse_list(self, until: frozenset[str] = frozenset()) -> Seq:
        seq = Seq()
        while True:
            while self.peek() in ("\n", ";"):
                self.i += 1
            if self.peek() is None or self.keyword() in until:
                return seq
            node = self.parse_and_or()
            background = self.peek() == "&"
            if self.peek() in SEPARATORS:
                self.i += 1
            elif self.peek() is not None and self.keyword() not in until:
                raise ShellSyntaxError(f"unexpected {self.peek()!r}")
            seq.items.append((node, background))

    def parse_and_or(self) -> AndOr:
        items: list[tuple[str, Any]] = [(";", self.parse_pipeline())]
        while self.peek() in ("&&", "||"):
            op = self.peek()
            self.i += 1
            self.skip_newlines()
            items.append((op, self.parse_pipeline()))  # type: ignore[arg-type]
        return AndOr(items)

    def parse_pipeline(self) -> Pipeline:
        negate = False
        if self.keyword() == "!":
            negate = True
            self.i += 1
        commands = [self.parse_command()]
        while self.peek() == "|":
            self.i += 1
            self.skip_newlines()
            commands.append(self.parse_command())
        return Pipeline(commands, negate)

    def parse_command(self) -> Any:
        kw = self.keyword()
        if kw in ("while", "until"):
            self.i += 1
            cond = self.parse_list(frozenset({"do"}))
            self.expect("do")
            body = self.parse_list(frozenset({"done"}))
            self.expect("done")
            return Loop(cond, body, until=kw == "until")
        if kw == "if":
            self.i += 1
            branches = []
            while True:
                cond = self.parse_list(frozenset({"then"}))
                self.expect("then")
                body = self.parse_list(frozenset({"elif", "else", "fi"}))
                branches.append((cond, body))
                nxt = self.keyword()
                self.i += 1
                if nxt == "elif":
                    continue
                if nxt == "else":
                    otherwise = self.parse_list(frozenset({"fi"}))
                    self.expect("fi")
                    return If(branches, otherwise)
                if nxt == "fi":
                    return If(branches)
                raise ShellSyntaxError("unexpected end of file (expecting 'fi')")
        if kw == "for":
            self.i += 1
            name = self.peek()
            if not isinstance(name, Word) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.literal or ""):
                raise ShellSyntaxError("bad for loop variable")
            self.i += 1
            words: list[Word] = []
            if self.keyword() == "in":
                self.i += 1
                while isinstance(self.peek(), Word) and self.keyword() != "do":
                    words.append(self.peek())  # type: ignore[arg-type]
                    self.i += 1
            self.skip_newlines()
            self.expect("do")
            body = self.parse_list(frozenset({"done"}))
            self.expect("done")
            return For(name.literal, words, body)
        if kw == "{":
            self.i += 1
            body = self.parse_list(frozenset({"}"}))
            self.expect("}")
            return Group(body)
        tok = self.peek()
        if isinstance(tok, Word) and tok.literal and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\(\))?", tok.literal):
            name = tok.literal
            nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if name.endswith("()") or (isinstance(nxt, Word) and nxt.literal == "()"):
                self.i += 1 if name.endswith("()") else 2
                self.skip_newlines()
                return Function(name.removesuffix("()"), self.parse_command())
        start = self.i
        while self.peek() is not None and self.peek() not in OPERATORS:
            tok = self.peek()
            self.i += 1
            if isinstance(tok, str) and self.peek() is not None:
                self.i += 1  # the redirect's target
        if self.i == start:
            raise ShellSyntaxError(f"unexpected {self.peek()!r}")
        return Simple(self.tokens[start : self.i])


def parse(script: str) -> Seq:
    parser = Parser(tokenize(script))
    seq = parser.parse_list()
    if parser.peek() is not None:
        raise ShellSyntaxError(f"unexpected {parser.peek()!r}")
    return seq


# -- running -----------------------------------------------------------------------------------

class Shell:
    """One shell process: its variables, functions, traps and jobs."""

    def __init__(self, proc: Proc, params: list[str] | None = None, pid1: bool = True) -> None:
        self.proc = proc
        self.params = list(params or [])
        self.status = 0
        self.functions: dict[str, Any] = {}
        self.traps: dict[int, str] = {}
        self.pending: list[int] = []
        self.signalled = asyncio.Event()
        self.jobs: dict[int, asyncio.Task] = {}
        self.last_job = ""
        self.pid1 = pid1

    # signals
    def on_signal(self, sig: int) -> bool:
        """The signal policy the engine calls: True when the shell handles it."""
        if sig not in self.traps:
            return False
        if self.traps[sig]:
            self.pending.append(sig)
            self.signalled.set()
        return True

    async def run_traps(self) -> None:
        while self.pending:
            sig = self.pending.pop(0)
            if not self.pending:
                self.signalled.clear()
            action = self.traps.get(sig)
            if action:
                await self.run_seq(parse(action))

    def special(self) -> dict[str, str]:
        names = {str(i + 1): p for i, p in enumerate(self.params[:9])}
        names.update({"#": str(len(self.params)), "@": " ".join(self.params), "*": " ".join(self.params)})
        names["!"] = self.last_job
        names["0"] = "sh"
        return names

    async def run_seq(self, seq: Seq) -> int:
        for node, background in seq.items:
            if background:
                self.start_job(node)
                self.status = 0
            else:
                self.status = await self.run_node(node)
            await self.run_traps()
            await asyncio.sleep(0)
        return self.status

    def start_job(self, node: Any) -> None:
        child = Shell(replace(self.proc, env=dict(self.proc.env), on_sigterm=[None]), self.params, pid1=False)
        child.functions = dict(self.functions)
        pid = next(_pids)
        self.jobs[pid] = asyncio.ensure_future(child.run_node(node))
        self.last_job = str(pid)

    async def run_node(self, node: Any) -> int:
        if isinstance(node, AndOr):
            status = self.status
            for op, item in node.items:
                if (op == "&&" and status != 0) or (op == "||" and status == 0):
                    continue
                status = await self.run_node(item)
                self.status = status
            return status
        if isinstance(node, Pipeline):
            status = 0
            for cmd in node.commands:
                status = await self.run_node(cmd)
            return (0 if status else 1) if node.negate else status
        if isinstance(node, Simple):
            return await self.run_simple(node.tokens)
        if isinstance(node, Loop):
            status = 0
            while True:
                cond = await self.run_seq(node.cond)
                if (cond == 0) == node.until:
                    return status
                status = await self.run_seq(node.body)
                await asyncio.sleep(0)
        if isinstance(node, If):
            for cond, body in node.branches:
                if await self.run_seq(cond) == 0:
                    return await self.run_seq(body)
            return await self.run_seq(node.otherwise) if node.otherwise else 0
        if isinstance(node, For):
            status = 0
            values = [w.expand(self.proc.env, self.status, self.special()) for w in node.words]
            for value in " ".join(values).split() if values else self.params:
                self.proc.env[node.var] = value
                status = await self.run_seq(node.body)
            return status
        if isinstance(node, Group):
            return await self.run_seq(node.body)
        if isinstance(node, Function):
            self.functions[node.name] = node.body
            return 0
        raise ShellSyntaxError(f"cannot run {type(node).__name__}")

    async def run_simple(self, tokens: list[Word | str]) -> int:
        proc = self.proc
        special = self.special()
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
                redirects.append((tok, target.expand(proc.env, self.status, special)))
                i += 2
                continue
            argv.append(tok.expand(proc.env, self.status, special))
            i += 1
        assigns = {}
        while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
            k, v = argv.pop(0).split("=", 1)
            assigns[k] = v
        if not argv:
            proc.env.update(assigns)
            return 0

        uid, gid, _ = proc.ids()
        files: dict[str, bytearray] = {}
        appends: set[str] = set()
        out, err = proc.out, proc.err

        def to_file(path: str, append: bool) -> Callable[[bytes], None] | str:
            full = norm(path, proc.cwd)
            if full == "/dev/null":
                return lambda data: None
            if proc.fs.is_dir(full):
                return f"sh: can't create {path}: Is a directory\n"
            reason = proc.fs.denied(full, uid, gid)
            if reason:
                return f"sh: can't create {path}: {reason}\n"
            buf = files.setdefault(full, bytearray())
            if append:
                appends.add(full)
            return buf.extend

        for op, target in redirects:
            sink: Callable[[bytes], None] | str | None = None
            if op in (">&", "1>&") and target == "2":
                out = proc.err
            elif op == "2>&" and target == "1":
                err = out
            elif op in (">", "1>", ">>", "1>>"):
                sink = out = to_file(target, op.endswith(">>"))  # type: ignore[assignment]
            elif op in ("2>", "2>>"):
                sink = err = to_file(target, op.endswith(">>"))  # type: ignore[assignment]
            if isinstance(sink, str):
                proc.error(sink)
                return 1
        sub = replace(proc, argv=argv, env={**proc.env, **assigns}, out=out, err=err)
        try:
            code = await self.builtin_or_program(sub)
        finally:
            for path, data in files.items():
                old = (proc.fs.read(path) or b"") if path in appends else b""
                new = proc.fs.read(path) is None
                proc.fs.write(path, old + bytes(data), Meta(uid, gid, 0o644) if new else None)
        return code

    async def builtin_or_program(self, sub: Proc) -> int:
        shell = self.proc
        name = sub.argv[0]
        if name in self.functions:
            inner = Shell(shell, sub.argv[1:], pid1=self.pid1)
            inner.functions, inner.traps, inner.pending, inner.signalled, inner.jobs = (
                self.functions, self.traps, self.pending, self.signalled, self.jobs,
            )
            return await inner.run_node(self.functions[name])
        if name == "exit":
            arg = sub.argv[1] if len(sub.argv) > 1 else str(self.status)
            raise ShellExit(int(arg) & 0xFF if arg.lstrip("-").isdigit() else 2)
        if name == "trap":
            return self.trap(sub)
        if name == "wait":
            return await self.wait(sub.argv[1:])
        if name in (":", "set", "umask", "ulimit"):
            return 0
        if name == "shift":
            self.params = self.params[1:]
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
        programs = shell.programs
        if programs is None:
            from .programs import Programs

            programs = shell.programs = Programs()
        if name == "exec":
            if len(sub.argv) == 1:
                return 0
            exec_proc = replace(sub, argv=sub.argv[1:])
            program, _ = programs.resolve(exec_proc.argv)
            if program is not None:
                shell.on_sigterm[0] = program.on_sigterm
            raise ShellExit(await run_program(exec_proc))
        return await run_program(sub)

    def trap(self, sub: Proc) -> int:
        args = sub.argv[1:]
        if not args:
            return 0
        action, names = (None, args) if args[0] == "-" and len(args) == 1 else (args[0], args[1:])
        for raw in names:
            sig = 0 if raw.upper() in ("EXIT", "0") else SIGNALS.get(raw.upper().removeprefix("SIG"))
            if sig is None and raw.isdigit():
                sig = int(raw)
            if sig is None:
                sub.error(f"trap: {raw}: invalid signal specification\n")
                return 1
            if action in (None, "-"):
                self.traps.pop(sig, None)
            else:
                self.traps[sig] = action
        if self.pid1 and any(s for s in self.traps):
            self.proc.on_sigterm[0] = self.on_signal
        return 0

    async def wait(self, ids: list[str]) -> int:
        """Jobs' end, or a trapped signal first (then 128 + its number)."""
        wanted = [self.jobs[int(i)] for i in ids if i.isdigit() and int(i) in self.jobs] if ids else list(self.jobs.values())
        if not wanted:
            return 0 if not ids else 127
        signalled = asyncio.ensure_future(self.signalled.wait())
        try:
            done, _ = await asyncio.wait({*wanted, signalled}, return_when=asyncio.FIRST_COMPLETED)
            while signalled not in done and not all(t.done() for t in wanted):
                done, _ = await asyncio.wait({*wanted, signalled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signalled.cancel()
        if self.pending:
            return 128 + self.pending[0]
        last = wanted[-1]
        try:
            return last.result()
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - a job that broke
            return 1

    async def finish(self, code: int) -> int:
        """Run the EXIT trap; its ``exit`` decides the status."""
        action = self.traps.pop(0, None)
        if action:
            self.status = code
            try:
                await self.run_seq(parse(action))
            except ShellExit as e:
                return e.code
        return code

    def cancel_jobs(self) -> None:
        for task in self.jobs.values():
            task.cancel()


async def sh(proc: Proc) -> int:
    args = proc.argv[1:]
    while args and args[0].startswith("-") and args[0] != "-c":
        args = args[1:]
    if not args or args[0] != "-c":
        return 0  # no script and no stdin: the shell reads EOF and exits
    if len(args) < 2:
        proc.error("sh: -c requires an argument\n")
        return 2
    return await run_script(proc, args[1], args[3:])


async def run_script(proc: Proc, script: str, params: list[str] | None = None) -> int:
    try:
        seq = parse(script)
    except ShellSyntaxError as e:
        proc.error(f"sh: syntax error: {e}\n")
        return 2
    shell = Shell(proc, params)
    try:
        try:
            code = await shell.run_seq(seq)
        except ShellExit as e:
            code = e.code
        return await shell.finish(code)
    finally:
        shell.cancel_jobs()


async def run_program(proc: Proc) -> int:
    """Run ``proc.argv`` with the simulator; unknown programs in a shell are
    "not found" (127)."""
    programs = proc.programs
    if programs is None:
        from .programs import Programs

        programs = Programs()
    program, argv = programs.resolve(proc.argv)
    if program is None:
        proc.error(f"sh: {proc.argv[0]}: not found\n")
        return 127
    return await program.run(replace(proc, argv=argv))
