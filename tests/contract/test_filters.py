"""Contract: list filters are validated as the engine validates them (a typo
in a filter must fail on the fake too, not match everything or nothing)."""

from __future__ import annotations

import pytest

from dockerspawner.engine import EngineError

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("docker_only")]


def _lists(engine):
    return {
        "containers": lambda f: engine.list_containers(all=True, filters=f),
        "volumes": engine.list_volumes,
        "networks": lambda f: engine.list_networks(filters=f),
    }


@pytest.mark.parametrize("family", ["containers", "volumes", "networks"])
async def test_unknown_filter_key_is_invalid(engine, family):
    with pytest.raises(EngineError) as info:
        await _lists(engine)[family]({"bogus": "x"})
    assert info.value.status == 400
    assert "Invalid filter 'bogus'" in info.value.explanation


@pytest.mark.parametrize(
    "family, filters, message",
    [
        ("containers", {"status": "bogus"}, "Invalid filter 'status=bogus'"),
        ("containers", {"health": "bogus"}, "Unrecognised filter value for health: bogus"),
        ("volumes", {"dangling": "maybe"}, "Invalid filter 'dangling=[maybe]'"),
    ],
    ids=["status", "health", "dangling"],
)
async def test_bad_filter_value_is_invalid(engine, family, filters, message):
    with pytest.raises(EngineError) as info:
        await _lists(engine)[family](filters)
    assert info.value.status == 400
    assert message in info.value.explanation


async def test_every_documented_container_filter_key_is_accepted(engine, label_filters):
    for key, value in {
        "ancestor": "local/busybox:test",
        "before": "no-such-container",
        "expose": "8888",
        "exited": "0",
        "health": "none",
        "isolation": "default",
        "is-task": "false",
        "name": "x",
        "publish": "8888",
        "status": "removing",
        "volume": "x",
    }.items():
        if key == "before":
            continue  # a missing reference container is a 404 on the engine
        await engine.list_containers(all=True, filters={"label": label_filters, key: value})


async def test_label_filter_as_dict_is_sent_as_docker_py_sends_it(engine, make_container, test_labels):
    await make_container()
    run_label = "org.jupyterhub.test.run"
    as_dict = {"label": {run_label: test_labels[run_label]}}
    assert await engine.list_containers(all=True, filters=as_dict) == []
    assert await engine.list_volumes(as_dict) == []
    as_list = {"label": [f"{run_label}={test_labels[run_label]}"]}
    assert len(await engine.list_containers(all=True, filters=as_list)) == 1
