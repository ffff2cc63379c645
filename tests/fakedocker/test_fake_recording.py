"""Call recording: what the code under test asked, in order, with its arguments."""

from __future__ import annotations

import pytest

from dockerspawner.engine import EngineUnavailable, NotFound


async def test_calls_are_recorded_in_order_with_arguments(fake, run):
    cid = await run(name="rec-1")
    await fake.stop_container(cid, timeout=1)
    methods = fake.calls.methods()
    assert methods == ["create_container", "start_container", "stop_container"]
    create = fake.calls[0]
    assert create.args["name"] == "rec-1"
    assert create.args["spec"]["command"] == ["sleep", "300"]
    method, args = fake.calls.last("stop_container")
    assert method == "stop_container" and args == {"ref": cid, "timeout": 1}


async def test_count_and_filter_with_globs(fake, run):
    await run(name="jupyter-alice")
    await run(name="jupyter-bob")
    await run(name="other")
    assert fake.calls.count("create_container") == 3
    assert fake.calls.count("*_container") == 6
    assert [c.args["name"] for c in fake.calls.filter("create_*", name="jupyter-*")] == [
        "jupyter-alice",
        "jupyter-bob",
    ]
    assert fake.calls.last("pull_image") is None


async def test_failed_and_refused_calls_are_recorded_too(fake):
    with pytest.raises(NotFound):
        await fake.inspect_container("missing")
    fake.down()
    with pytest.raises(EngineUnavailable):
        await fake.ping()
    fake.up()
    assert fake.calls.methods() == ["inspect_container", "ping"]


async def test_clear_forgets(fake):
    await fake.ping()
    fake.calls.clear()
    assert len(fake.calls) == 0
    await fake.version()
    assert fake.calls.methods() == ["version"]


async def test_recorded_spec_is_a_copy(fake, run):
    spec_labels = {"a": "1"}
    await run(name="copy-1", labels=spec_labels)
    spec_labels["a"] = "changed"
    assert fake.calls[0].args["spec"]["labels"] == {"a": "1"}
