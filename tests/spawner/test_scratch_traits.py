async def test_x(make_spawner, fake_docker):
    fake_docker.add_image("quay.io/jupyterhub/singleuser:6.1", config={"Cmd": ["jupyterhub-singleuser"]})
    sp = make_spawner("alice", mem_limit=lambda s: "1G")
    ip, port = await sp.start()
    info = await fake_docker.inspect_container(sp.object_id)
    print(ip, port, info["Name"], info["Config"]["Cmd"], info["HostConfig"]["PortBindings"], info["NetworkSettings"]["Networks"].keys())
    print(info["Config"]["Env"])
    assert info["HostConfig"]["Memory"] == 1024**3
    await sp.stop()

async def test_y(make_spawner, fake_docker):
    fake_docker.add_image("quay.io/jupyterhub/singleuser:6.1", config={"Cmd": ["jupyterhub-singleuser"]})
    sp = make_spawner("alice")
    ip, port = await sp.start()
    await sp.stop()
