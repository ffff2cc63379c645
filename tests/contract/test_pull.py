"""Contract: pulling images from a registry, with progress."""

from __future__ import annotations

import asyncio
import re

import pytest

from dockerspawner.engine import NotFound, PullEvent
from dockerspawner.progress import PullProgress

pytestmark = pytest.mark.engine


async def _pull(engine, ref: str) -> list[PullEvent]:
    return [ev async for ev in engine.pull_image(ref)]


async def test_pull_ends_with_one_complete_event_matching_inspect(engine, registry_image):
    events = await _pull(engine, registry_image.ref)
    assert events, "no events"
    assert all(isinstance(ev, PullEvent) for ev in events)
    complete = [ev for ev in events if ev.status == "complete"]
    assert complete == [events[-1]], [ev.status for ev in events]
    info = await engine.inspect_image(registry_image.ref)
    assert events[-1].image_id == info["Id"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", info["Id"])


async def test_pull_reports_layers(engine, registry_image):
    events = await _pull(engine, registry_image.ref)
    layers = {ev.layer for ev in events[:-1] if ev.layer and re.fullmatch(r"[0-9a-f]{12,64}", ev.layer)}
    assert layers, [(ev.status, ev.layer) for ev in events]
    assert any(ev.status for ev in events[:-1])


async def test_pull_reports_byte_progress(engine, registry_image):
    events = await _pull(engine, registry_image.ref)
    progress = [ev for ev in events if ev.current is not None and ev.total]
    if engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): no byte counts, only a layer's
        # start and end; the spawn's bar advances by finished layers instead
        assert progress == []
        assert {"Pulling fs layer", "Download complete"} <= {ev.status for ev in events}
        bar = PullProgress()
        for ev in events:
            bar.update(ev)
        assert bar.percent == 100
        return
    assert progress, [(ev.status, ev.layer, ev.current, ev.total) for ev in events]
    for ev in progress:
        assert ev.layer
        assert 0 <= ev.current <= ev.total
    assert max(ev.total for ev in progress) >= 1024 * 1024


async def test_pulled_image_has_registry_config(engine, registry_image):
    await _pull(engine, registry_image.ref)
    info = await engine.inspect_image(registry_image.ref)
    config = info["Config"]
    expected = registry_image.config
    assert config["Cmd"] == expected["Cmd"]
    assert "CT_IMAGE=pulled" in config["Env"]
    assert set(expected["ExposedPorts"]) <= set(config.get("ExposedPorts") or {})
    assert expected["Labels"].items() <= (config.get("Labels") or {}).items()


async def test_pull_without_tag_pulls_latest(engine, registry_image):
    events = await _pull(engine, registry_image.repo)
    info = await engine.inspect_image(f"{registry_image.repo}:latest")
    assert events[-1].status == "complete"
    assert events[-1].image_id == info["Id"]


async def test_pull_present_image_completes_with_same_id(engine, registry_image):
    first = await _pull(engine, registry_image.ref)
    second = await _pull(engine, registry_image.ref)
    assert second[-1].status == "complete"
    assert second[-1].image_id == first[-1].image_id


async def test_pull_missing_tag_is_not_found(engine, registry_image):
    with pytest.raises(NotFound):
        await _pull(engine, registry_image.missing_tag_ref)
    with pytest.raises(NotFound):
        await engine.inspect_image(registry_image.missing_tag_ref)


async def test_pull_missing_repository_is_not_found(engine, registry_image):
    with pytest.raises(NotFound):
        await _pull(engine, registry_image.missing_repo_ref)


async def test_concurrent_pulls_of_one_ref_both_complete(engine, registry_image):
    a, b = await asyncio.wait_for(
        asyncio.gather(_pull(engine, registry_image.ref), _pull(engine, registry_image.ref)), 60
    )
    info = await engine.inspect_image(registry_image.ref)
    assert a[-1].status == b[-1].status == "complete"
    assert a[-1].image_id == b[-1].image_id == info["Id"]


async def test_pulled_image_runs(engine, registry_image, make_container):
    await _pull(engine, registry_image.ref)
    cid = await make_container(None, image=registry_image.ref, start=True)
    state = (await engine.inspect_container(cid))["State"]
    assert state["Running"] is True
    assert (await engine.inspect_container(cid))["Config"]["Cmd"] == ["sleep", "300"]
