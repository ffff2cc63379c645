"""Contract: local images (inspect, tag, remove)."""

from __future__ import annotations

import re

import pytest

from dockerspawner.engine import Conflict, NotFound

pytestmark = pytest.mark.engine

IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")


def _has_tag(info: dict, ref: str) -> bool:
    # Podman qualifies short names (docker.io/local/...); Docker does not.
    return any(t == ref or t.endswith("/" + ref) for t in info.get("RepoTags") or [])


async def test_inspect_image_shape(engine, test_image):
    info = await engine.inspect_image(test_image)
    assert IMAGE_ID.fullmatch(info["Id"]), info["Id"]
    assert _has_tag(info, test_image)
    assert isinstance(info["Size"], int) and info["Size"] > 0
    config = info["Config"]
    for key in ("Cmd", "Env", "Labels"):
        assert key in config, key
    assert not config.get("Entrypoint")


async def test_inspect_image_by_id_and_short_id(engine, test_image):
    full = await engine.inspect_image(test_image)
    by_id = await engine.inspect_image(full["Id"])
    short = await engine.inspect_image(full["Id"].split(":", 1)[1][:12])
    assert by_id["Id"] == short["Id"] == full["Id"]


async def test_inspect_missing_image_is_not_found(engine, unique_name):
    ref = f"local/{unique_name('absent')}:nope"
    with pytest.raises(NotFound) as info:
        await engine.inspect_image(ref)
    assert info.value.status == 404
    assert "no such image" in str(info.value).lower()


async def test_tag_then_inspect_by_new_name(engine, test_image, unique_name):
    repo = f"local/{unique_name('tag')}"
    original = await engine.inspect_image(test_image)
    await engine.tag_image(test_image, repo, "t1")
    try:
        tagged = await engine.inspect_image(f"{repo}:t1")
        assert tagged["Id"] == original["Id"]
        assert _has_tag(tagged, f"{repo}:t1")
        assert _has_tag(tagged, test_image)
    finally:
        await engine.remove_image(f"{repo}:t1")


async def test_tag_without_tag_means_latest(engine, test_image, unique_name):
    repo = f"local/{unique_name('latest')}"
    await engine.tag_image(test_image, repo)
    try:
        assert (await engine.inspect_image(f"{repo}:latest"))["Id"] == (
            await engine.inspect_image(test_image)
        )["Id"]
        assert (await engine.inspect_image(repo))["Id"] == (await engine.inspect_image(f"{repo}:latest"))["Id"]
    finally:
        await engine.remove_image(f"{repo}:latest")


async def test_tag_missing_image_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.tag_image(f"local/{unique_name('absent')}:x", f"local/{unique_name('to')}", "t")


async def test_remove_tag_keeps_the_image(engine, test_image, unique_name):
    repo = f"local/{unique_name('rm')}"
    await engine.tag_image(test_image, repo, "t1")
    await engine.remove_image(f"{repo}:t1")
    with pytest.raises(NotFound):
        await engine.inspect_image(f"{repo}:t1")
    assert _has_tag(await engine.inspect_image(test_image), test_image)


async def test_remove_missing_image_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.remove_image(f"local/{unique_name('absent')}:x")


async def test_remove_image_in_use_needs_force(engine, registry_image, make_container):
    async for _ in engine.pull_image(registry_image.ref):
        pass
    image_id = (await engine.inspect_image(registry_image.ref))["Id"]
    await make_container(image=registry_image.ref, command=["true"])
    with pytest.raises(Conflict) as info:
        await engine.remove_image(registry_image.ref)
    assert info.value.status == 409
    assert (await engine.inspect_image(registry_image.ref))["Id"] == image_id
