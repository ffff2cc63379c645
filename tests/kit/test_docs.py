"""The guide's examples are the downstream project's tests, verbatim, and the
guide ships with the package."""

from __future__ import annotations

import re
from pathlib import Path

import fakedocker

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "fakedocker" / "README.md"
DOWNSTREAM_TESTS = REPO / "tests" / "downstream" / "tests"


def test_worked_examples_are_verbatim_downstream_tests():
    section = GUIDE.read_text().split("#### A worked example", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    sources = "\n".join(p.read_text() for p in sorted(DOWNSTREAM_TESTS.glob("test_*.py")))
    examples = [b for b in blocks if b.startswith("async def test_")]
    assert len(examples) == 2
    for block in examples:
        assert block in sources, block.splitlines()[0]


def test_guide_is_the_package_docstring_and_names_every_fixture():
    assert fakedocker.__doc__.startswith(GUIDE.read_text())
    for name in ("fake_docker", "fake_docker_factory", "docker_engine", "make_spawner", "make_hub"):
        assert f"`{name}" in fakedocker.__doc__, name


def test_package_data_and_typing_markers_are_configured():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'fakedocker = ["py.typed", "README.md", "REFERENCE.md"]' in pyproject
    assert 'dockerspawner = ["py.typed"]' in pyproject
    assert (REPO / "fakedocker" / "py.typed").exists() and (REPO / "dockerspawner" / "py.typed").exists()
