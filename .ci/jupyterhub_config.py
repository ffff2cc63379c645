"""The demo hub run by `bash .ci/hub`: DockerSpawner at http://127.0.0.1:8000.

On a machine where a Docker engine answers, servers run in real containers of
the locally built single-user image. Elsewhere they run on fakedocker, which
starts the same `jupyterhub-singleuser` as a local process per server.
Log in with any name and any password (dummy authenticator).
"""

import ipaddress
import os
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub

c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "docker"
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.Authenticator.allow_all = True
c.JupyterHub.allow_named_servers = True
c.DockerSpawner.remove = True
c.Spawner.start_timeout = 120


def _docker_gateway() -> str | None:
    """The default bridge's gateway if a Docker engine answers, else None.

    Says which engine the demo uses and what it changes there: containers
    only (the image is pulled by the first spawn when it is missing)."""
    try:
        import docker

        from dockerspawner.dockerspawner import DockerSpawner

        client = docker.APIClient(version="auto", timeout=3, **docker.utils.kwargs_from_env())
        ipam = client.inspect_network("bridge")["IPAM"]["Config"][0]
        version = client.version().get("Version", "?")
        image = DockerSpawner.image.default_value
        have = bool(client.images(name=image, quiet=True))
        client.close()
        print(
            f"[demo] engine: Docker {version} at {os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}; "
            f"the demo changes on it: containers jupyter-<name> (removed when they stop)"
            + ("" if have else f", and the first spawn pulls {image}"),
            file=sys.stderr,
        )
        # the default bridge's Gateway is often unset: docker0 holds the first address
        return ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))
    except Exception as e:  # noqa: BLE001 - any failure means "use the fake"
        print(f"[demo] no Docker engine answers ({e.__class__.__name__}): using fakedocker", file=sys.stderr)
        return None


gateway = None if os.environ.get("DEMO_ENGINE") == "fake" else _docker_gateway()
if gateway:
    print(f"[demo] Docker engine found: containers reach the hub at {gateway}", file=sys.stderr)
    # containers on the default bridge reach the hub through the bridge's gateway
    c.JupyterHub.hub_ip = gateway
else:
    from fakedocker import FakeDocker

    from dockerspawner.dockerspawner import DockerSpawner

    fake = FakeDocker(processes=True)
    fake.add_image(DockerSpawner.image.default_value, config={"Cmd": ["jupyterhub-singleuser"]})
    c.DockerSpawner.engine = fake
    c.DockerSpawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
    if os.geteuid() == 0:
        # a container's root is not the host's; a local process's is, and the
        # server refuses to run as root unless told
        c.DockerSpawner.args = ["--allow-root"]
