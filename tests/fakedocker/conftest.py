"""Fixtures for the fake's own tests (``fake_docker`` comes from its pytest plugin)."""

from __future__ import annotations

from typing import Any

import pytest
from fk_helpers import BUSYBOX


@pytest.fixture
def fake(fake_docker):
    """A fake with the busybox image the contract suite uses."""
    fake_docker.add_image(BUSYBOX, config={"Cmd": None, "Entrypoint": None, "Env": None, "Labels": None})
    return fake_docker


@pytest.fixture
def run(fake):
    """``await run(command, **spec)`` -> id of a started container."""
    counter = iter(range(1, 10_000))

    async def make(command: Any = ("sleep", "300"), *, start: bool = True, **spec: Any) -> str:
        spec.setdefault("image", BUSYBOX)
        spec.setdefault("name", f"fk-test-{next(counter)}")
        if command is not None:
            spec["command"] = list(command)
        cid = await fake.create_container(spec)
        if start:
            await fake.start_container(cid)
        return cid

    return make
