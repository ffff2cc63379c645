"""The README's commands: `make demo-fake` gives a hub whose users get a working
server, installs nothing engine-related, and says where to open it; the
real-engine demo changes no engine it did not start.

The demo runs `.ci/hub` (what `make demo-fake` runs) in fake mode, with
`docker`, `dockerd`, `apt-get`, ... on PATH as shims that record any call (the
servers are local `jupyterhub-singleuser` processes behind fakedocker); the
real-engine mode's hub is what tests/hub/test_hub_real.py covers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from fakedocker.kit.hub import free_ports

from .conftest import REPO, _ensure_proxy_on_path

CI = REPO / ".ci"
# what the fake demo must never run: engines, package managers, image tools
ENGINE_TOOLS = ("docker", "dockerd", "docker-registry", "apt-get", "apt", "dpkg", "dpkg-query",
                "debootstrap", "chromium", "podman", "systemctl", "unshare")


def _shim_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH starts with shims of ENGINE_TOOLS that log
    their name to the returned file and fail."""
    bin_dir, calls = tmp_path / "shims", tmp_path / "shim-calls"
    bin_dir.mkdir()
    for tool in ENGINE_TOOLS:
        shim = bin_dir / tool
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >>"{calls}"\nexit 127\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env, calls


def _bash(snippet: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f'. "{CI}/lib.sh"; {snippet}', "bash", *args],
        capture_output=True, text=True, timeout=30,
    )


# the demo never needs a swarm; on an engine set-up did not start it builds
# nothing unless asked; the tests get everything (swarm never on DOCKER_HOST)
@pytest.mark.parametrize(
    ("purpose", "origin", "allow", "changes"),
    [
        ("demo", "ours", "0", {"singleuser-image"}),
        ("demo", "ours", "1", {"singleuser-image"}),
        ("demo", "theirs", "0", set()),
        ("demo", "theirs", "1", {"singleuser-image"}),
        ("demo", "custom", "0", set()),
        ("demo", "custom", "1", {"singleuser-image"}),
        ("demo", "none", "1", set()),
        ("test", "ours", "0", {"swarm", "singleuser-image", "busybox-image"}),
        ("test", "theirs", "0", {"swarm", "singleuser-image", "busybox-image"}),
        ("test", "custom", "1", {"singleuser-image", "busybox-image"}),
        ("test", "none", "0", set()),
    ],
)
def test_engine_changes_by_purpose_and_origin(purpose, origin, allow, changes):
    r = _bash('ci_engine_changes "$@"', purpose, origin, allow)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) == changes


def test_engine_changes_refuses_an_unknown_origin():
    r = _bash('ci_engine_changes "$@"', "demo", "somebody")
    assert r.returncode == 2 and "bad purpose" in r.stderr


@pytest.mark.parametrize(
    ("needs", "absent", "present"),
    [
        ("", {"docker.io", "chromium", "docker-registry", "debootstrap"}, set()),
        ("image-build", {"docker.io", "chromium"}, {"debootstrap"}),
        ("dockerd", {"chromium", "docker-registry"}, {"docker.io", "iptables"}),
        ("test-extras", {"docker.io"}, {"chromium", "docker-registry", "busybox-static", "curl"}),
    ],
)
def test_apt_packages_follow_what_is_needed(needs, absent, present):
    r = _bash('ci_apt_packages $1', needs)
    got = set(r.stdout.split())
    assert present <= got and not (absent & got), got


def test_fake_demo_plan_touches_no_engine(tmp_path):
    env, calls = _shim_path(tmp_path)
    r = subprocess.run(["bash", str(CI / "setup"), "--plan", "python", "proxy"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    plan = r.stdout
    assert "phases: python proxy\n" in plan and "engine: not used" in plan, plan
    assert "pip install -e '.[demo]'" in plan, plan
    for word in ("docker.io", "chromium", "swarm", "registry", "busybox", "dockerd"):
        assert word not in plan, (word, plan)
    assert not calls.exists(), calls.read_text()


def test_real_demo_plan_changes_nothing_on_an_engine_it_did_not_start(tmp_path):
    env, _ = _shim_path(tmp_path)
    r = subprocess.run(["bash", str(CI / "setup"), "--plan", "python", "proxy", "engine"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "on an engine that is theirs: nothing" in r.stdout, r.stdout
    assert "swarm" not in r.stdout and "registry" not in r.stdout, r.stdout


def test_a_logged_step_that_fails_shows_its_log(tmp_path):
    log = tmp_path / "step.log"
    r = _bash('CI_PROGRESS_S=1 ci_run_logged t "$1" sh -c "echo unpacking; sleep 1.5; echo broken >&2; exit 3"', str(log))
    assert r.returncode == 3
    assert "... 1s: unpacking" in r.stderr and "broken" in r.stderr, r.stderr
    assert "FAILED (exit 3)" in r.stderr and f"full log: {log}" in r.stderr, r.stderr
    assert "broken" in log.read_text() and "broken" not in r.stdout


def test_demo_banner_says_where_to_open_it():
    r = _bash('ci_demo_banner "$1"', "http://127.0.0.1:8123")
    assert "open http://127.0.0.1:8123 " in r.stdout, r.stdout
    assert re.search(r"ssh -L 8123:127\.0\.0\.1:8123 \S+", r.stdout), r.stdout


@pytest.fixture
def demo_hub(tmp_path):
    """`.ci/hub` in fake mode (what `make demo-fake` runs), state in tmp_path.
    Set-up runs its python and proxy phases for real; the venv is the one
    running these tests (its pip install is covered by the plan test when it
    is not the project's own .venv)."""
    _ensure_proxy_on_path()
    env, calls = _shim_path(tmp_path)
    port, hub_port, proxy_api = free_ports(3)
    venv = Path(sys.prefix)
    skip = "" if venv == REPO / ".venv" else "venv"
    if not (CI / "node" / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        skip += " node"  # the proxy on PATH is used (_ensure_proxy_on_path)
    env.update(
        DEMO_ENGINE="fake", DEMO_URL=f"http://127.0.0.1:{port}", DOCKERSPAWNER_VENV=str(venv),
        DOCKERSPAWNER_CI_SKIP=skip, DOCKERSPAWNER_CI_ENV=str(tmp_path / "env.sh"),
        DOCKERSPAWNER_CI_STATE=str(tmp_path / "state"), DOCKERSPAWNER_DEMO_DIR=str(tmp_path / "run"),
    )
    env.pop("CI", None)  # a laptop: a missing prerequisite is reported, not fatal
    log = open(tmp_path / "hub.log", "w")
    proc = subprocess.Popen(
        ["bash", str(CI / "hub"), f"--JupyterHub.hub_port={hub_port}",
         f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{proxy_api}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc, tmp_path / "hub.log", calls
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_demo_user_logs_in_and_gets_jupyterlab(demo_hub):
    base, proc, log, calls = demo_hub
    s = requests.Session()
    # .ci/hub runs its set-up first (a few seconds; more on a loaded machine)
    deadline = time.monotonic() + 120
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
    assert not calls.exists(), "the fake demo ran: " + calls.read_text()
    out = log.read_text()
    assert f"open {base} in a browser" in out and "ssh -L" in out, out[:3000]
    assert re.search(r"\[setup +[\d.]+s\] done in [\d.]+s \(phases: python proxy\)", out), out[:3000]
