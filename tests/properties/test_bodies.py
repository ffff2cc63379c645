"""Any config that passes validation yields a create body the engine takes (issue 11, §1).

``specs.container_spec`` -> ``engine.wire.create_body`` never raises for a plan
from :func:`strategies.plans`, and fakedocker creates the container with the
name, labels, env and command it was given. A sample of the same plans goes to
the real engine in ``tests/contract/test_generated_bodies.py``.
"""

from __future__ import annotations

import asyncio

from hypothesis import given

from dockerspawner import naming, specs
from dockerspawner.engine import wire
from fakedocker import FakeDocker

from .budget import examples
from .strategies import plans

IMAGE = "local/busybox:test"


@examples(150)
@given(plans(prefix="jupyter", image=IMAGE))
def test_valid_configs_make_bodies_fakedocker_accepts(plan):
    spec = specs.container_spec(plan)
    name, body = wire.create_body(spec)
    assert name == plan.name and body["Labels"][naming.LABEL_USER] == plan.labels[naming.LABEL_USER]

    async def create() -> dict:
        fake = FakeDocker()
        fake.add_image(IMAGE, config={"Cmd": None})
        try:
            return await fake.inspect_container(await fake.create_container(spec))
        finally:
            await fake.close()

    info = asyncio.run(create())
    assert info["Name"] == "/" + plan.name
    assert info["Config"]["Labels"] == spec["labels"]
    assert info["Config"]["Cmd"] == list(plan.command)
    assert sorted(info["Config"]["Env"]) == sorted(f"{k}={v}" for k, v in plan.env.items())
