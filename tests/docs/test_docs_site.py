"""The docs: they build without a warning, the reference holds every trait, and the
troubleshooting page and the trait help cannot drift from the code.

The build goes to a temporary directory (nothing is written to the working tree)
and takes a few seconds.
"""

from __future__ import annotations

import ast
import html
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from traitlets import HasTraits

from dockerspawner import DockerSpawner, SwarmSpawner, SystemUserSpawner

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "dockerspawner"
SPAWNERS = (DockerSpawner, SwarmSpawner, SystemUserSpawner)
TROUBLESHOOTING = DOCS / "troubleshooting.md"


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML docs, built once with warnings as errors."""
    out = tmp_path_factory.mktemp("docs-html")
    before = _tree(ROOT / "docs")
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
         "-d", str(out / ".doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # no __pycache__ in docs/_ext
    )
    if "No module named sphinx" in run.stderr:
        pytest.fail("Sphinx is not installed: pip install -e '.[docs]' (sphinx, myst-parser)")
    assert run.returncode == 0 and not run.stderr.strip(), f"docs build failed:\n{run.stderr[-4000:]}"
    assert _tree(ROOT / "docs") == before, "the docs build wrote into the working tree"
    return out


def config_traits(cls: type[HasTraits]) -> list[str]:
    return sorted(cls.class_traits(config=True))


def own_traits(cls: type[HasTraits]) -> dict[str, object]:
    """The config traits dockerspawner defines (JupyterHub's own help is not ours to edit)."""
    out = {}
    for name, trait in cls.class_traits(config=True).items():
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if owner.__module__.split(".")[0] == "dockerspawner":
            out[name] = trait
    return out


def test_docs_build_without_warnings(built: Path) -> None:
    pages = {str(p.relative_to(built).with_suffix("")) for p in built.rglob("*.html")}
    expected = {
        "index", "install", "quickstart", "dockerspawner", "swarmspawner", "systemuserspawner",
        "reference", "persistence", "images", "resources", "networking", "internal-ssl",
        "progress", "troubleshooting", "fakedocker/index", "fakedocker/REFERENCE",
        "compatibility", "changelog",
    }
    assert expected <= pages, f"missing pages: {sorted(expected - pages)}"


@pytest.mark.parametrize("cls", SPAWNERS, ids=lambda c: c.__name__)
def test_reference_holds_every_trait(built: Path, cls: type) -> None:
    page = html.unescape((built / "reference.html").read_text())
    missing = [
        name for name in config_traits(cls)
        if f'id="{cls.__name__.lower()}-{name.replace("_", "-")}"' not in page
        or f"c.{cls.__name__}.{name}<" not in page
    ]
    assert not missing, f"{cls.__name__} traits missing from the reference: {missing}"


# -- every message a failed spawn shows is explained in the troubleshooting page -----------

def _pattern(node: ast.expr) -> str:
    """A regex for a message literal: its text, with each f-string field as a placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        parts = [node]
    elif isinstance(node, ast.JoinedStr):
        parts = node.values
    else:
        raise TypeError(type(node).__name__)
    regex = ""
    for part in parts:
        if isinstance(part, ast.Constant):
            regex += re.escape(re.sub(r"\s+", " ", part.value))
        else:
            regex += r"[^\n]+?"
    return regex


def _messages_in(func: ast.AST, arg: ast.expr, where: str) -> list[tuple[str, str]]:
    if isinstance(arg, ast.Name):  # a message chosen in branches: every value assigned to it
        values = [
            n.value for n in ast.walk(func)
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == arg.id for t in n.targets)
        ]
        assert values, f"{where}: cannot find the message {arg.id!r}"
        return [(where, _pattern(v)) for v in values]
    try:
        return [(where, _pattern(arg))]
    except TypeError:
        pytest.fail(f"{where}: a user message must be a literal or f-string, or a name assigned one")


def _user_message(call: ast.Call) -> ast.expr | None:
    """The message of SpawnError(message, ...) or web.HTTPError(400, message) (a bad request)."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name == "SpawnError" and call.args:
        return call.args[0]
    if name == "HTTPError" and len(call.args) >= 2 and getattr(call.args[0], "value", None) == 400:
        return call.args[1]
    return None


def user_messages() -> list[tuple[str, str]]:
    """(file:line, regex) for every user-facing error message in dockerspawner's code."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for call in ast.walk(func):
                message = _user_message(call) if isinstance(call, ast.Call) else None
                if message is not None:
                    found += _messages_in(func, message, f"{path.relative_to(ROOT)}:{call.lineno}")
    return sorted(set(found))


def test_the_code_has_user_messages() -> None:
    messages = user_messages()
    assert len(messages) > 30, messages  # the walk found them (a broken walk would pass everything)
    assert any(re.fullmatch(rx, "Image x:1 was not found.") for _, rx in messages)
    assert any(re.fullmatch(rx, "Your server exited while starting (exit code 3). Last log lines: boom") for _, rx in messages)


def test_every_user_message_is_in_troubleshooting() -> None:
    lines = [" ".join(line.split()) for line in TROUBLESHOOTING.read_text().splitlines()]
    missing = [
        f"{where}: {rx}" for where, rx in user_messages()
        if not any(re.search(rx, line) for line in lines)
    ]
    assert not missing, (
        "messages users see that docs/troubleshooting.md does not explain (write each on one line,"
        " f-string fields as {placeholders}):\n" + "\n".join(missing)
    )


# -- trait help an admin can act on -------------------------------------------------------

@pytest.mark.parametrize("cls", SPAWNERS, ids=lambda c: c.__name__)
def test_trait_help_is_full_sentences(cls: type) -> None:
    bad = {}
    for name, trait in own_traits(cls).items():
        text = " ".join((trait.help or "").split())
        if not text or not text[0].isupper() or not text.endswith("."):
            bad[name] = text
    assert not bad, f"{cls.__name__} trait help must be sentences (capital ... period): {bad}"
    assert len(own_traits(cls)) > 40


# -- what the hand-written pages say exists ---------------------------------------------------

def _pages() -> dict[str, str]:
    return {str(p.relative_to(DOCS)): p.read_text() for p in sorted(DOCS.rglob("*.md"))}


def test_settings_named_in_the_pages_exist() -> None:
    """``c.DockerSpawner.x = ...`` in a page names a real setting (a renamed trait shows here)."""
    classes = {cls.__name__: cls for cls in SPAWNERS}
    wrong = sorted({
        f"{page}: c.{cls}.{name}"
        for page, text in _pages().items()
        for cls, name in re.findall(r"\bc\.(DockerSpawner|SwarmSpawner|SystemUserSpawner)\.(\w+)", text)
        if name not in classes[cls].class_traits(config=True)
    })
    assert not wrong, f"settings the pages name that the spawners do not have: {wrong}"


def test_python_examples_in_the_pages_compile() -> None:
    broken, found = [], 0
    for page, text in _pages().items():
        blocks = re.findall(r"^( *)```python\n(.*?)^\1```", text, flags=re.S | re.M)
        found += len(blocks)
        for i, (_, block) in enumerate(blocks):
            try:
                compile(textwrap.dedent(block), f"{page} example {i + 1}", "exec")
            except SyntaxError as e:
                broken.append(f"{page} example {i + 1}: {e.msg} (line {e.lineno})")
    assert not broken, broken
    assert found == sum(t.count("```python") for t in _pages().values()) > 0  # every example was read
