"""Many concurrent callers on one loop see the engine's atomicity."""

from __future__ import annotations

import asyncio

from dockerspawner.engine import Conflict


async def test_concurrent_creates_of_one_name_make_one_container(fake, run):
    results = await asyncio.gather(
        *(run(name="jupyter-alice", start=False) for _ in range(10)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if r not in winners)
    assert len(await fake.list_containers()) == 1


async def test_concurrent_starts_of_one_container_start_it_once(fake, run):
    cid = await run(
        ["httpd", "-f", "-p", "8888", "-h", "/var/www"],
        start=False,
        ports=[8888],
        host_config={"port_bindings": {8888: ("127.0.0.1", None)}, "init": True},
    )
    await asyncio.gather(*(fake.start_container(cid) for _ in range(10)))
    starts = [ev for ev in fake.bus.history if ev["Type"] == "container" and ev["Action"] == "start"]
    assert len(starts) == 1
    assert len(await fake.port(cid, 8888)) == 1


async def test_fifty_spawns_in_parallel(fake, run):
    async def spawn(i: int) -> str:
        cid = await run(
            ["jupyterhub-singleuser"],
            name=f"jupyter-u{i}",
            ports=[8888],
            host_config={"port_bindings": {8888: ("127.0.0.1", None)}, "init": True},
        )
        await fake.inspect_container(cid)
        return cid

    ids = await asyncio.gather(*(spawn(i) for i in range(50)))
    rows = await fake.list_containers(filters={"status": "running"})
    assert {r["Id"] for r in rows} == set(ids)
    ports = {r["Ports"][0]["PublicPort"] for r in rows}
    assert len(ports) == 50
    ips = {(await fake.inspect_container(cid))["NetworkSettings"]["IPAddress"] for cid in ids}
    assert len(ips) == 50
    await asyncio.gather(*(fake.stop_container(cid, timeout=1) for cid in ids))
    assert await fake.list_containers(filters={"status": "running"}) == []
