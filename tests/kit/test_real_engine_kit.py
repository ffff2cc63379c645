"""The real-engine side of the kit: what a test makes is labelled with the run
and removed afterwards; the hub stub lets a hubless real server start."""

from __future__ import annotations

import pytest
from tornado.httpclient import AsyncHTTPClient

from dockerspawner.engine import NotFound
from fakedocker.kit import ensure_image
from fakedocker.kit.engines import RUN_ID, RUN_LABEL, HubStub, LabelledEngine, bridge_gateway

pytestmark = pytest.mark.real_engine


@pytest.mark.parametrize("real_engine", ["docker"], indirect=True)
async def test_created_objects_carry_the_run_label_and_are_cleaned_up(real_engine, real_test_image, test_labels):
    eng = LabelledEngine(real_engine)
    cid = await eng.create_container({"image": real_test_image, "name": f"kit-{RUN_ID}", "command": ["sleep", "30"],
                                      "labels": test_labels})
    net = await eng.create_network(f"kit-{RUN_ID}-net", labels=test_labels)
    info = await real_engine.inspect_container(cid)
    assert info["Config"]["Labels"][RUN_LABEL] == RUN_ID and info["Config"]["Labels"].items() >= test_labels.items()
    assert (await real_engine.inspect_network(net))["Labels"][RUN_LABEL] == RUN_ID
    await eng.cleanup()
    with pytest.raises(NotFound):
        await real_engine.inspect_container(cid)
    with pytest.raises(NotFound):
        await real_engine.inspect_network(net)


async def test_ensure_image_refuses_a_missing_image_on_a_real_engine(real_engine):
    with pytest.raises(RuntimeError, match="nothing is pulled"):
        await ensure_image(real_engine, "example.org/kit-never-built:1")


@pytest.mark.parametrize("real_engine", ["docker"], indirect=True)
async def test_hub_stub_answers_like_a_hub_on_the_bridge_gateway(real_engine):
    stub = HubStub(await bridge_gateway(real_engine))
    await stub.start()
    try:
        resp = await AsyncHTTPClient().fetch(f"http://{stub.ip}:{stub.port}/hub/api/", request_timeout=5)
        assert resp.headers["X-JupyterHub-Version"] and b"version" in resp.body
    finally:
        await stub.close()
