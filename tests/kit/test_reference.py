"""fakedocker/REFERENCE.md is generated from the code and kept current."""

from __future__ import annotations

import re

from dockerspawner.engine.protocol import DockerEngine
from fakedocker.kit import reference


def test_reference_is_current():
    assert reference.REFERENCE.read_text() == reference.render(), (
        "fakedocker/REFERENCE.md is stale: python -m fakedocker.kit.reference --write"
    )


def test_reference_lists_exactly_the_protocol_methods():
    text = reference.REFERENCE.read_text()
    part = text.split("## Protocol methods", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^### `(?:await )?(\w+)\(", part, flags=re.M)
    wanted = [n for n in vars(DockerEngine) if not n.startswith("_") and callable(getattr(DockerEngine, n))]
    assert listed == wanted
    assert "list_images" not in listed and "list_containers(*, all: bool = True" in part


def test_every_protocol_method_names_its_errors():
    part = reference.REFERENCE.read_text().split("## Protocol methods", 1)[1].split("\n## ", 1)[0]
    for block in part.split("\n### ")[1:]:
        assert "Errors:\n\n- " in block and "`EngineUnavailable`" in block, block[:80]
    inspect_block = [b for b in part.split("\n### ") if b.startswith("`await inspect_container(")][0]
    assert "`NotFound` when the object it names does not exist" in inspect_block
