"""Contract: create bodies generated from valid configs, on every engine (issue 11, §1).

The same ten plans (hypothesis, derandomized, so fake and real get identical
ones) from ``properties.strategies.plans``: any unicode user and server names,
each escape scheme, derived names, confined volumes and binds, limits at or
above the engine's minimums. Each one must be created, and read back with the
name, labels, command and env it was given. Containers carry this run's labels;
the named volumes the engine makes for them are removed here.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from dockerspawner import specs
from dockerspawner.engine import NotFound

from properties.strategies import plans

pytestmark = pytest.mark.engine

SAMPLE = 10


def sample_plans(prefix: str, image: str, labels: dict[str, str]) -> list[specs.ContainerPlan]:
    drawn: list[specs.ContainerPlan] = []

    @settings(max_examples=SAMPLE, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(plans(prefix=prefix, image=image, labels=labels))
    def collect(plan: specs.ContainerPlan) -> None:
        drawn.append(plan)

    collect()
    return drawn


async def test_generated_bodies_are_created_as_given(engine, test_image, test_labels):
    prefix = f"ev-{test_labels['org.jupyterhub.test.run']}"
    drawn = sample_plans(prefix, test_image, test_labels)
    assert len({p.name for p in drawn}) == len(drawn) >= SAMPLE // 2
    failures = []
    for plan in drawn:
        spec = specs.container_spec(plan)
        volumes = [s for s in plan.binds if not s.startswith("/")]
        cid = None
        try:
            cid = await engine.create_container(spec)
            info = await engine.inspect_container(cid)
            assert info["Name"] == "/" + plan.name
            assert spec["labels"].items() <= info["Config"]["Labels"].items()  # + the image's labels
            assert info["Config"]["Cmd"] == list(plan.command)
            assert {f"{k}={v}" for k, v in plan.env.items()} <= set(info["Config"]["Env"])
        except Exception as e:  # collect, so one run shows every plan the engine refused
            failures.append(f"{plan.name[:70]!r}: {type(e).__name__}: {str(e)[:300]}")
        finally:
            if cid is not None:
                await engine.remove_container(cid, force=True)
            for volume in volumes:
                try:
                    await engine.remove_volume(volume, force=True)
                except NotFound:
                    pass
    assert not failures, "\n".join(failures)
