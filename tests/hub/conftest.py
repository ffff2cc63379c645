"""A real JupyterHub (its MockHub, in this process) spawning with DockerSpawner.

The hub, the proxy (configurable-http-proxy) and the engine client all run for
real; the engine is fakedocker unless a test asks for a real one.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import shutil
from pathlib import Path

import jupyterhub
import pytest
from traitlets.config import Config

from dockerspawner import DockerSpawner
from fakedocker.kit.hub import free_ports

REPO = Path(__file__).resolve().parents[2]
#: The installed hub's (major, minor): tests differ by version only where the hub does.
JUPYTERHUB_VERSION = tuple(int(part) for part in jupyterhub.__version__.split(".")[:2])
#: The image `.ci/setup` builds locally for the installed JupyterHub (the spawner's default).
SINGLEUSER_IMAGE = "quay.io/jupyterhub/singleuser:" + ".".join(jupyterhub.__version__.split(".")[:2])
CHP_BIN = REPO / ".ci" / "node" / "node_modules" / ".bin"


def _ensure_proxy_on_path() -> None:
    if shutil.which("configurable-http-proxy"):
        return
    if (CHP_BIN / "configurable-http-proxy").exists():
        os.environ["PATH"] = f"{CHP_BIN}{os.pathsep}{os.environ['PATH']}"
        return
    pytest.fail(
        "configurable-http-proxy is not installed: run `bash .ci/setup` "
        "(or `npm install --prefix .ci/node configurable-http-proxy`)"
    )


async def _no_cancel(sig=None) -> None:
    return None


async def stop_hub(app) -> None:
    """Stop a MockHub: a coroutine on JupyterHub 6, a blocking call on 4 and 5
    (it runs its cleanup on a loop of its own there)."""
    result = app.stop()
    if inspect.isawaitable(result):
        await result


@pytest.fixture
async def hub_factory(tmp_path, monkeypatch):
    """Make (and finally stop) MockHubs sharing one database file, so a test can
    restart the hub and see what survives."""
    from jupyterhub.tests.mocking import MockHub

    _ensure_proxy_on_path()
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    apps = []
    # not the fixed 8081 and 8001: hubs of other runs (the hub matrix runs two
    # at once) listen beside ours; kept across restarts, which servers outlive
    hub_port, proxy_api_port = free_ports(2)

    async def make(
        engine, *, clean_db: bool = True, start: bool = True, hub_config: dict | None = None, **spawner_config
    ) -> MockHub:
        """A hub on ``engine``. With ``start=False`` it is only initialized (no
        proxy, no HTTP server), which is what a restart test needs: stopping a
        started MockHub cancels every task of the loop."""
        cfg = Config()
        cfg.JupyterHub.spawner_class = DockerSpawner
        cfg.JupyterHub.cleanup_servers = False
        cfg.JupyterHub.allow_named_servers = True
        # JupyterHub kills the proxy named in an existing pid file: keep ours private
        cfg.ConfigurableHTTPProxy.pid_file = str(tmp_path / f"proxy-{len(apps)}.pid")
        # else the hub writes its generated secret into the current directory
        cfg.JupyterHub.cookie_secret_file = str(tmp_path / "jupyterhub_cookie_secret")
        cfg.JupyterHub.hub_port = hub_port
        cfg.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
        cfg.DockerSpawner.engine = engine
        cfg.DockerSpawner.start_timeout = 30
        cfg.DockerSpawner.http_timeout = 30
        for key, value in spawner_config.items():
            setattr(cfg.DockerSpawner, key, value)
        for key, value in (hub_config or {}).items():
            setattr(cfg.JupyterHub, key, value)
        if not start:
            cfg.ConfigurableHTTPProxy.should_start = False
            cfg.ConfigurableHTTPProxy.auth_token = "unused"
            app = MockHub(config=cfg, test_clean_db=clean_db)
            apps.append(app)
            await app.initialize([])
            return app
        MockHub.clear_instance()
        app = MockHub.instance(config=cfg, test_clean_db=clean_db)
        apps.append(app)
        await app.initialize([])
        await app.start()
        return app

    yield make
    for app in reversed(apps):
        app.log.handlers = []
        # JupyterHub.stop() schedules a task that cancels every task of the loop,
        # which would kill the teardown of fixtures set up before this one
        app.shutdown_cancel_tasks = _no_cancel
        try:
            await stop_hub(app)
        except Exception as e:  # noqa: BLE001 - teardown must go on
            print(f"error stopping hub: {e}")
    MockHub.clear_instance()


async def _keep_default_bridge(engine, labels: dict, name: str) -> None:
    """Podman (netavark) makes its default bridge with the first container on
    it and deletes it with the last: a hub listening on the gateway needs one
    container there before it starts, and until it stopped (this one carries
    the test labels, so the engine fixture removes it after the hub)."""
    cid = await engine.create_container(
        {"image": "local/busybox:test", "name": name, "command": ["sleep", "3600"], "labels": labels,
         "host_config": {"init": True}}
    )
    await engine.start_container(cid)


@pytest.fixture
async def real_hub(real_engine, hub_factory, test_labels, unique_name):
    """``await real_hub(**spawner_config)``: a started hub on the real engine.

    Its containers carry the test labels, so the engine fixture removes them
    whatever happens (after the hub stopped: ``real_engine`` is set up first,
    so it is torn down last). Containers reach the hub through the default
    bridge's gateway.
    """
    try:
        await real_engine.inspect_image(SINGLEUSER_IMAGE)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the single-user image {SINGLEUSER_IMAGE} is not on the engine ({e}): run `bash .ci/setup`")
    if real_engine.engine_kind == "podman":
        await _keep_default_bridge(real_engine, test_labels, unique_name("bridge-keeper"))
    ipam = (await real_engine.inspect_network("bridge"))["IPAM"]["Config"][0]
    # Docker leaves the default bridge's Gateway unset: docker0 holds the first address
    gateway = ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))

    # runs sharing the engine (the hub matrix runs two at once) spawn the same
    # users: container names of their own (one per test, kept across restarts)
    prefix = unique_name("hub")

    async def make(**spawner_config):
        spawner_config.setdefault("extra_create_kwargs", {"labels": test_labels})
        spawner_config.setdefault("prefix", prefix)
        spawner_config.setdefault("image", SINGLEUSER_IMAGE)
        spawner_config.setdefault("start_timeout", 90)
        spawner_config.setdefault("http_timeout", 60)
        return await hub_factory(real_engine, hub_config={"hub_ip": gateway}, **spawner_config)

    return make
