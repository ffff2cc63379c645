"""The pytest plugin and the package's layering."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from dockerspawner.engine.protocol import DockerEngine
from fakedocker import FakeDocker

PACKAGE = Path(__file__).resolve().parents[2] / "fakedocker"
ALLOWED_FROM_DOCKERSPAWNER = {
    "dockerspawner.engine.protocol",
    "dockerspawner.engine.wire",
    "dockerspawner.engine.replay",
    "dockerspawner.engine.labels",  # what a label filter means, one definition for both engines
}


async def test_fake_docker_fixture_is_fresh_and_empty(fake_docker):
    assert isinstance(fake_docker, FakeDocker)
    assert isinstance(fake_docker, DockerEngine)
    assert await fake_docker.list_containers() == []
    assert (await fake_docker.info())["Images"] == 0
    assert len(fake_docker.calls) == 2


async def test_factory_passes_options(fake_docker_factory):
    fake = fake_docker_factory(swarm=False)
    assert (await fake.info())["Swarm"]["LocalNodeState"] == "inactive"
    assert fake is not fake_docker_factory()


def test_every_protocol_method_is_implemented_with_its_signature():
    names = [n for n in vars(DockerEngine) if not n.startswith("_") and callable(getattr(DockerEngine, n))]
    assert "create_container" in names and "events" in names
    for name in names:
        ours = getattr(FakeDocker, name, None)
        assert callable(ours), name
        want = [(p.name, p.kind) for p in inspect.signature(getattr(DockerEngine, name)).parameters.values()]
        have = [(p.name, p.kind) for p in inspect.signature(ours).parameters.values()]
        assert have == want, name


def test_core_imports_no_spawner_module_and_no_docker_client():
    """DESIGN.md: the fake's core imports only the protocol and the wire
    helpers from dockerspawner, and never docker-py's client; only the
    pytest plugin may import spawners."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "pytest_plugin.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name == "docker" or name.startswith("docker."):
                    offenders.append((path.name, name))
                if name.startswith("dockerspawner") and name not in ALLOWED_FROM_DOCKERSPAWNER:
                    offenders.append((path.name, name))
    assert offenders == []


def test_loading_the_plugin_imports_neither_the_engine_nor_dockerspawner():
    code = (
        "import sys, fakedocker, fakedocker.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dockerspawner', 'jupyterhub', 'docker')"
        " or m == 'fakedocker.engine'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_exported_name_resolves():
    import fakedocker

    assert all(getattr(fakedocker, name) is not None for name in fakedocker.__all__)
    with pytest.raises(AttributeError):
        fakedocker.NoSuchThing  # noqa: B018


def test_docker_engine_is_fake_docker_by_default(docker_engine, fake_docker, pytestconfig):
    assert docker_engine is fake_docker
    assert pytestconfig.getoption("fakedocker_engine") == "fake"


def test_plugin_has_no_comment_addressed_to_a_person():
    text = (PACKAGE / "pytest_plugin.py").read_text()
    assert "Reserved for" not in text and "lead" not in text.lower()
