"""Contract: named volumes."""

from __future__ import annotations

import pytest

from dockerspawner.engine import Conflict, NotFound

pytestmark = pytest.mark.engine


async def test_create_and_inspect_volume(engine, unique_name, test_labels):
    name = unique_name("vol")
    created = await engine.create_volume(name, labels=test_labels)
    assert created["Name"] == name
    assert created["Driver"] == "local"
    assert created["Labels"] == test_labels
    assert created["Mountpoint"]
    info = await engine.inspect_volume(name)
    assert info["Name"] == name
    assert info["Labels"] == test_labels
    assert info["Scope"] == "local"
    assert info["Mountpoint"] == created["Mountpoint"]


async def test_create_existing_volume_returns_it(engine, unique_name, test_labels):
    name = unique_name("again")
    first = await engine.create_volume(name, labels=test_labels)
    second = await engine.create_volume(name, labels=test_labels)
    assert second["Name"] == first["Name"]
    assert second["Mountpoint"] == first["Mountpoint"]
    assert second["CreatedAt"] == first["CreatedAt"]
    assert [v["Name"] for v in await engine.list_volumes({"name": [name]})].count(name) == 1


async def test_list_volumes_by_label(engine, unique_name, test_labels, label_filters):
    a = unique_name("a")
    b = unique_name("b")
    await engine.create_volume(a, labels={**test_labels, "ct.pick": "a"})
    await engine.create_volume(b, labels={**test_labels, "ct.pick": "b"})
    mine = {v["Name"] for v in await engine.list_volumes({"label": label_filters})}
    assert mine == {a, b}
    picked = await engine.list_volumes({"label": label_filters + ["ct.pick=a"]})
    assert [v["Name"] for v in picked] == [a]
    assert picked[0]["Labels"]["ct.pick"] == "a"


async def test_remove_volume(engine, unique_name, test_labels):
    name = unique_name("rm")
    await engine.create_volume(name, labels=test_labels)
    await engine.remove_volume(name)
    with pytest.raises(NotFound):
        await engine.inspect_volume(name)


async def test_missing_volume_is_not_found(engine, unique_name):
    with pytest.raises(NotFound):
        await engine.inspect_volume(unique_name("absent"))
    with pytest.raises(NotFound):
        await engine.remove_volume(unique_name("absent"))


async def test_remove_volume_in_use_is_conflict(engine, unique_name, test_labels, make_container):
    name = unique_name("busy")
    await engine.create_volume(name, labels=test_labels)
    cid = await make_container(host_config={"binds": {name: {"bind": "/data", "mode": "rw"}}})
    with pytest.raises(Conflict) as info:
        await engine.remove_volume(name)
    assert info.value.status == 409
    await engine.remove_container(cid)
    await engine.remove_volume(name)
    with pytest.raises(NotFound):
        await engine.inspect_volume(name)


async def test_volume_created_by_container_bind(engine, unique_name, make_container):
    name = unique_name("implicit")
    cid = await make_container(host_config={"binds": {name: {"bind": "/data", "mode": "rw"}}})
    try:
        assert (await engine.inspect_volume(name))["Name"] == name
    finally:
        await engine.remove_container(cid)
        await engine.remove_volume(name)
