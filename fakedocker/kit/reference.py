"""The generated reference of fakedocker (``fakedocker/REFERENCE.md``).

Written from the code itself (signatures and docstrings of the protocol, the
fake's test helpers, the fixtures and the kit), so it cannot describe a method
that does not exist. Regenerate with ``python -m fakedocker.kit.reference
--write``; ``tests/kit/test_reference.py`` fails when the file is stale.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]
REFERENCE = PACKAGE / "REFERENCE.md"

#: Parameters naming an existing object: a call with an unknown one raises NotFound.
_REF_PARAMS = {"ref", "network", "container"}
_NAMED_LOOKUPS = {"inspect_volume", "remove_volume"}
_CREATES_NAMED = {"create_container", "create_network", "create_service"}


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _format_param(p: inspect.Parameter) -> str:
    text = p.name
    if p.kind is p.VAR_POSITIONAL:
        text = "*" + text
    elif p.kind is p.VAR_KEYWORD:
        text = "**" + text
    if p.annotation is not p.empty:
        text += f": {p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)}"
    if p.default is not p.empty:
        default = p.default.__name__ if isinstance(p.default, type) else repr(p.default)
        text += f" = {default}"
    return text


def _signature(name: str, fn: Any, *, drop_self: bool = True) -> str:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if drop_self and params and params[0].name == "self":
        params = params[1:]
    parts: list[str] = []
    star = False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_POSITIONAL:
            star = True
        parts.append(_format_param(p))
    ret = sig.return_annotation
    arrow = "" if ret is sig.empty else f" -> {ret if isinstance(ret, str) else inspect.formatannotation(ret)}"
    prefix = "await " if inspect.iscoroutinefunction(fn) else ""
    return f"{prefix}{name}({', '.join(parts)}){arrow}"


def method_errors(name: str, fn: Any) -> list[str]:
    """The protocol errors a method raises: what its docstring names, plus the
    rules every backend follows."""
    params = set(inspect.signature(fn).parameters)
    errors: list[str] = []
    if params & _REF_PARAMS or name in _NAMED_LOOKUPS:
        errors.append("`NotFound` when the object it names does not exist")
    if name in _CREATES_NAMED:
        errors.append("`Conflict` when the name is taken")
    for err in re.findall(r"``(NotFound|Conflict|InvalidSpec)``", _doc(fn)):
        if not any(e.startswith(f"`{err}`") for e in errors):
            errors.append(f"`{err}` (see above)")
    errors.append("`EngineUnavailable` when the engine does not answer (or `fake.down()`)")
    errors.append("`EngineError` for any other refusal, with the engine's status and message")
    return errors


def _section(title: str, entries: list[tuple[str, str]], intro: str = "") -> list[str]:
    out = [f"## {title}", ""]
    if intro:
        out += [intro, ""]
    for sig, doc in entries:
        out.append(f"### `{sig}`")
        out.append("")
        if doc:
            out += [doc, ""]
    return out


def _public_methods(cls: type, skip: set[str] = frozenset()) -> list[tuple[str, Any]]:
    out = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or name in skip:
            continue
        if inspect.isfunction(member):
            out.append((name, member))
        elif isinstance(inspect.getattr_static(cls, name), property):
            out.append((name, member))
    return out


def _fixtures() -> list[tuple[str, str]]:
    """Fixtures of the plugin, read from its source (the decorators of
    pytest and pytest-asyncio wrap functions differently per version)."""
    tree = ast.parse((PACKAGE / "pytest_plugin.py").read_text())
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if not any("fixture" in d for d in decorators):
            continue
        kind = "async fixture" if isinstance(node, ast.AsyncFunctionDef) else "fixture"
        doc = inspect.cleandoc(ast.get_docstring(node) or "")
        out.append((f"{node.name}  ({kind})", doc))
    return out


def render() -> str:
    from dockerspawner.engine import protocol

    from fakedocker.engine import FakeDocker
    from fakedocker.faults import Faults
    from fakedocker.images import Registry
    from fakedocker.kit import engines, hub, registry, spawners
    from fakedocker.recording import CallLog
    from fakedocker.swarm import Swarm

    lines = [
        "# fakedocker reference",
        "",
        "Generated from the code by `python -m fakedocker.kit.reference --write`;",
        "`tests/kit/test_reference.py` fails when it is out of date. The guide is `README.md`.",
        "",
    ]
    errors = [
        (f"{cls.__name__}({', '.join(list(inspect.signature(cls).parameters))})", _doc(cls))
        for cls in (protocol.EngineError, protocol.NotFound, protocol.Conflict, protocol.EngineUnavailable, protocol.InvalidSpec)
    ]
    lines += _section(
        "Errors",
        errors,
        "`from dockerspawner.engine import EngineError, NotFound, Conflict, EngineUnavailable, InvalidSpec`. "
        "`NotFound`, `Conflict`, `EngineUnavailable` and `InvalidSpec` are `EngineError`s.",
    )
    proto_names = [n for n in vars(protocol.DockerEngine) if not n.startswith("_") and callable(getattr(protocol.DockerEngine, n))]
    entries = []
    for name in proto_names:
        fn = getattr(protocol.DockerEngine, name)
        doc = _doc(fn)
        errs = "\n".join(f"- {e}" for e in method_errors(name, fn))
        entries.append((_signature(name, fn), (doc + "\n\n" if doc else "") + "Errors:\n\n" + errs))
    lines += _section(
        "Protocol methods (`DockerEngine`)",
        entries,
        f"The {len(proto_names)} methods `FakeDocker` and the docker-py backend implement, with the same "
        "signatures. Anything else on a `FakeDocker` is a test helper (next section). "
        "`pull_image` and `events` are async iterators (`async for`), not coroutines.",
    )
    helpers = [
        (_signature(f"fake.{n}", m) if inspect.isfunction(m) else f"fake.{n}", _doc(m))
        for n, m in _public_methods(FakeDocker, set(proto_names))
    ]
    lines += _section("FakeDocker test helpers", helpers, "`FakeDocker(**options)`: " + _doc(FakeDocker).split("\n\n", 1)[-1])
    for title, obj, cls in (
        ("Faults (`fake.faults`)", "fake.faults", Faults),
        ("Registry (`fake.registry`)", "fake.registry", Registry),
        ("Calls (`fake.calls`)", "fake.calls", CallLog),
        ("Swarm (`fake.swarm`)", "fake.swarm", Swarm),
    ):
        entries = [
            (_signature(f"{obj}.{n}", m) if inspect.isfunction(m) else f"{obj}.{n}", _doc(m))
            for n, m in _public_methods(cls)
            if not (cls is Faults and n in ("apply", "container_fault_for", "by_name"))
            and not (cls is Registry and n in ("lookup", "take_failure"))
            and not (cls is CallLog and n == "record")
        ]
        lines += _section(title, entries, _doc(cls))
    lines += _section(
        "Fixtures (pytest plugin `fakedocker`)",
        _fixtures(),
        "Installed with the package (entry point `pytest11`). The async ones are pytest-asyncio "
        "fixtures: they work in strict, auto and unconfigured mode; in strict mode mark your tests "
        "`@pytest.mark.asyncio`. Option: `--fakedocker-engine=fake|docker`.",
    )
    kit = [
        (_signature("make_spawner", spawners.SpawnerFactory.__call__), _doc(spawners.SpawnerFactory)),
        (_signature("start_spawner", spawners.start_spawner), _doc(spawners.start_spawner)),
        (_signature("stop_spawner", spawners.stop_spawner), _doc(spawners.stop_spawner)),
        (_signature("user_message", spawners.user_message), _doc(spawners.user_message)),
        (_signature("ensure_image", engines.ensure_image), _doc(engines.ensure_image)),
        (_signature("make_hub", hub.HubFactory.__call__), _doc(hub.HubFactory)),
        ("SpawnFailed(message, events)", _doc(hub.SpawnFailed)),
    ]
    kit += [(_signature(f"hub.{n}", m), _doc(m)) for n, m in _public_methods(hub.HubClient)]
    kit += [
        (_signature(f"fakedocker_registry.{n}", m), _doc(m))
        for n, m in _public_methods(registry.RealRegistry)
        if n != "forget"
    ]
    lines += _section(
        "Kit (`fakedocker.kit`)",
        kit,
        "`from fakedocker.kit import start_spawner, stop_spawner, user_message, ensure_image, SpawnFailed`. "
        "`make_spawner`, `make_hub` and `fakedocker_registry` are the fixtures; `hub` is what "
        "`await make_hub(...)` returns; `fakedocker_registry.host` is the registry's `host:port`.",
    )
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        REFERENCE.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
