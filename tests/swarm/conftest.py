"""Fixtures for tests on a real multi-node swarm (``.ci/multi-node-swarm``).

The swarm is two extra dockerds (a manager and a worker), each in its own
network namespace; the system engine and its swarm are never touched. When
one is already up (``.ci/multi-node-swarm up`` was run), the tests use it and
leave it up; otherwise the session brings one up itself and takes it down at
the end. Servers are reached only
through host-mode published ports on the node addresses, never by task IP
(overlay addresses are not routed here: that traffic would leave the machine).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from unavailable import require_root, unavailable

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "multi-node-swarm"
TEST_IMAGE = "local/busybox:test"
SWARM_LABELS = {"org.jupyterhub.test": "multi-node"}


@dataclass(frozen=True)
class SwarmRig:
    """Where the multi-node swarm answers, as ``.ci/multi-node-swarm env`` says."""

    manager_host: str
    manager_addr: str
    manager_node_id: str
    worker_host: str
    worker_addr: str
    worker_node_id: str
    worker_hostname: str
    worker_pid: int
    #: the address the hub listens on: tasks on every node reach it
    hub_addr: str
    #: seconds `up` took (0 when it was already up)
    up_seconds: float
    owned: bool

    @classmethod
    def from_exports(cls, text: str, up_seconds: float, owned: bool) -> SwarmRig:
        env = {}
        for line in text.splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                env[key] = shlex.split(value)[0] if value else ""
        return cls(
            manager_host=env["SWARM_MANAGER_HOST"],
            manager_addr=env["SWARM_MANAGER_ADDR"],
            manager_node_id=env["SWARM_MANAGER_NODE_ID"],
            worker_host=env["SWARM_WORKER_HOST"],
            worker_addr=env["SWARM_WORKER_ADDR"],
            worker_node_id=env["SWARM_WORKER_NODE_ID"],
            worker_hostname=env["SWARM_WORKER_HOSTNAME"],
            worker_pid=int(env["SWARM_WORKER_PID"]),
            hub_addr=env["SWARM_HOST_ADDR"],
            up_seconds=up_seconds,
            owned=owned,
        )


def run_script(command: str, timeout: float = 180) -> str:
    """Run ``.ci/multi-node-swarm COMMAND``; its stdout, or a failure with its log."""
    proc = subprocess.run(
        ["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f".ci/multi-node-swarm {command} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def _unavailable(reason: str) -> None:
    unavailable("the multi-node swarm", reason)


@pytest.fixture(scope="session")
def swarm_rig() -> Iterator[SwarmRig]:
    """The multi-node swarm; brought up (and down afterwards) unless already up."""
    require_root("the multi-node swarm", "network namespaces, dockerd")
    try:  # already up (someone ran `up`): use it, leave it up
        existing: SwarmRig | None = SwarmRig.from_exports(run_script("env", timeout=60), 0.0, owned=False)
    except RuntimeError:
        if os.environ.get("SWARM_MANAGER_HOST"):
            raise
        existing = None
    if existing is not None:
        yield existing
        return
    t0 = time.monotonic()
    try:
        exports = run_script("up")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        _unavailable(str(e))
    rig = SwarmRig.from_exports(exports, time.monotonic() - t0, owned=True)
    try:
        yield rig
    finally:
        t0 = time.monotonic()
        run_script("down")
        print(f"\nmulti-node swarm: up {rig.up_seconds:.2f}s, down {time.monotonic() - t0:.2f}s")


@pytest.fixture
async def manager(swarm_rig: SwarmRig) -> AsyncIterator[Any]:
    """The project's protocol engine for the manager; this test's services are
    removed afterwards."""
    from dockerspawner.engine import NotFound
    from dockerspawner.engine.dockerpy import DockerPyEngine

    eng = DockerPyEngine(client_kwargs={"base_url": swarm_rig.manager_host}, use_env=False, timeout=30)
    try:
        yield eng
    finally:
        try:
            for svc in await eng.list_services(filters={"label": [f"{k}={v}" for k, v in SWARM_LABELS.items()]}):
                try:
                    await eng.remove_service(svc["ID"])
                except NotFound:
                    pass
        finally:
            await eng.close()


@pytest.fixture
def manager_api(swarm_rig: SwarmRig) -> Iterator[Any]:
    """docker-py's client for the manager, for what the protocol has no call
    for (nodes)."""
    import docker

    api = docker.APIClient(base_url=swarm_rig.manager_host, version="auto", timeout=30)
    try:
        yield api
    finally:
        api.close()
