"""Contract: what a ``Mounts`` entry's ``VolumeOptions`` do to the volume it creates."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.engine


def _volume_mount(name: str, target: str, **options):
    return {"Type": "volume", "Source": name, "Target": target, "VolumeOptions": options}


async def test_volume_options_labels_land_on_the_created_volume(engine, make_container, unique_name, test_labels):
    name = unique_name("labelled")
    await make_container(host_config={"mounts": [_volume_mount(name, "/data", Labels={**test_labels, "ct.kind": "home"})]})
    info = await engine.inspect_volume(name)
    if engine.engine_kind == "podman":
        # Podman difference (docs/compatibility.md): VolumeOptions.Labels are dropped
        assert not info["Labels"]
        return
    assert info["Labels"] == {**test_labels, "ct.kind": "home"}
    listed = await engine.list_volumes({"label": ["ct.kind=home", f"org.jupyterhub.test.run={test_labels['org.jupyterhub.test.run']}"]})
    assert [v["Name"] for v in listed] == [name]


@pytest.mark.parametrize("nocopy", [False, True], ids=["copy", "nocopy"])
async def test_nocopy_keeps_the_image_content_out_of_a_new_volume(engine, make_container, unique_name, test_labels, nocopy):
    name = unique_name("www")
    await engine.create_volume(name, labels=test_labels)
    cid = await make_container(
        ["ls", "/var/www"], start=True, host_config={"mounts": [_volume_mount(name, "/var/www", NoCopy=nocopy)]}
    )
    assert await engine.wait_container(cid, timeout=10) == 0
    # Podman difference (docs/compatibility.md): VolumeOptions.NoCopy is ignored
    copied = not nocopy or engine.engine_kind == "podman"
    assert (await engine.container_logs(cid)) == ("index.html\n" if copied else "")


async def test_nocopy_bind_mode(engine, make_container, unique_name, test_labels):
    name = unique_name("www")
    await engine.create_volume(name, labels=test_labels)
    cid = await make_container(["ls", "/var/www"], start=True, host_config={"binds": [f"{name}:/var/www:nocopy"]})
    assert await engine.wait_container(cid, timeout=10) == 0
    assert await engine.container_logs(cid) == ""
    (mount,) = (await engine.inspect_container(cid))["Mounts"]
    # Podman difference (docs/compatibility.md): it honours the option but reports Mode ""
    assert mount["Mode"] == ("" if engine.engine_kind == "podman" else "nocopy")
