"""The downstream example of fakedocker/README.md, verbatim: it must keep working."""

from dockerspawner.engine import EngineError


async def start_with_retry(engine, spec, attempts=3):
    """Code under test: create, then start with retries on engine errors."""
    cid = await engine.create_container(spec)
    for _ in range(attempts):
        try:
            await engine.start_container(cid)
            return cid
        except EngineError:
            continue
    raise RuntimeError("could not start")


async def test_start_survives_one_engine_error(fake_docker):
    fake_docker.add_image("busybox:latest")
    fake_docker.faults.fail("start_container", EngineError("boom", 500), times=1)
    cid = await start_with_retry(fake_docker, {"image": "busybox", "name": "web", "command": ["sleep", "60"]})
    assert (await fake_docker.inspect_container(cid))["State"]["Running"]
    assert fake_docker.calls.count("start_container") == 2
