"""The README's main command: the demo config runs a hub whose users get a working server.

Runs the real `jupyterhub` command with `.ci/jupyterhub_config.py` in fake mode
(servers are local `jupyterhub-singleuser` processes behind fakedocker); the
real-engine mode is what tests/hub/test_hub_real.py covers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import REPO, _ensure_proxy_on_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_hub(tmp_path):
    _ensure_proxy_on_path()
    port, hub_port, proxy_api = _free_port(), _free_port(), _free_port()
    jupyterhub = Path(sys.executable).with_name("jupyterhub")
    env = {**os.environ, "DEMO_ENGINE": "fake"}
    log = open(tmp_path / "hub.log", "w")
    proc = subprocess.Popen(
        [
            str(jupyterhub), "-f", str(REPO / ".ci" / "jupyterhub_config.py"),
            f"--JupyterHub.bind_url=http://127.0.0.1:{port}",
            f"--JupyterHub.hub_port={hub_port}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{proxy_api}",
        ],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc, tmp_path / "hub.log"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_demo_user_logs_in_and_gets_jupyterlab(demo_hub):
    base, proc, log = demo_hub
    s = requests.Session()
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            s.get(f"{base}/hub/login", timeout=3).raise_for_status()
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise AssertionError("demo hub did not come up:\n" + log.read_text()[-3000:]) from None
            time.sleep(0.3)
    r = s.post(f"{base}/hub/login", data={"username": "demo", "password": "any", "_xsrf": s.cookies["_xsrf"]})
    r.raise_for_status()
    deadline = time.monotonic() + 90
    while True:
        r = s.get(f"{base}/user/demo/lab", timeout=30)
        if r.status_code == 200 and "JupyterLab" in r.text:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no JupyterLab for demo: {r.status_code} {r.url}\n" + log.read_text()[-3000:])
        time.sleep(0.5)
    # the hub adds ?redirects=N when it sent the browser round while the server
    # was not ready yet (its loop guard; timing-dependent under load)
    assert r.url.split("?", 1)[0] == f"{base}/user/demo/lab", r.url
    r = s.get(f"{base}/user/demo/api/status")
    assert r.status_code == 200 and "started" in r.json()
