"""Process mode: host executables run as real local processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time

import pytest
from fk_helpers import BUSYBOX, HTTPD_PAGE, http_get

from fakedocker.processes import rewrite_singleuser

PY = os.path.basename(sys.executable)


@pytest.fixture
def pfake(fake_docker_factory):
    fake = fake_docker_factory(processes={PY, "jupyterhub-singleuser"})
    fake.add_image(BUSYBOX)
    return fake


async def _start(fake, argv: list[str], **spec) -> str:
    spec.setdefault("name", f"proc-{time.monotonic_ns()}")
    cid = await fake.create_container({"image": BUSYBOX, "command": argv, **spec})
    await fake.start_container(cid)
    return cid


async def _logs_contain(fake, cid: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in await fake.container_logs(cid):
        assert time.monotonic() < deadline, await fake.container_logs(cid)
        await asyncio.sleep(0.02)


async def test_process_output_becomes_logs_and_exit_code_the_containers(pfake):
    code = "import os, sys; print('hello', os.environ['FOO']); print('oops', file=sys.stderr); sys.exit(3)"
    cid = await _start(pfake, [PY, "-c", code], environment={"FOO": "bar"})
    assert await pfake.wait_container(cid, timeout=20) == 3
    assert await pfake.container_logs(cid, stderr=False) == "hello bar\n"
    assert await pfake.container_logs(cid, stdout=False) == "oops\n"
    state = (await pfake.inspect_container(cid))["State"]
    assert (state["Status"], state["ExitCode"], state["Pid"]) == ("exited", 3, 0)


async def test_stop_sends_sigterm_to_the_process(pfake):
    code = textwrap.dedent(
        """
        import signal, sys, time
        def bye(*_):
            print("got term", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    cid = await _start(pfake, [PY, "-c", code])
    await _logs_contain(pfake, cid, "ready")
    pid = (await pfake.inspect_container(cid))["State"]["Pid"]
    assert pid > 0
    os.kill(pid, 0)
    t0 = time.monotonic()
    await pfake.stop_container(cid, timeout=10)
    assert time.monotonic() - t0 < 5
    assert (await pfake.inspect_container(cid))["State"]["ExitCode"] == 7
    assert "got term" in await pfake.container_logs(cid)


async def test_stop_kills_a_process_that_ignores_sigterm(pfake):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    cid = await _start(pfake, [PY, "-c", code])
    await _logs_contain(pfake, cid, "ready")
    t0 = time.monotonic()
    await pfake.stop_container(cid, timeout=0.3)
    assert time.monotonic() - t0 >= 0.3
    assert (await pfake.inspect_container(cid))["State"]["ExitCode"] == 137


async def test_close_ends_every_process(fake_docker_factory):
    fake = fake_docker_factory(processes=True)
    fake.add_image(BUSYBOX)
    cid = await _start(fake, [PY, "-c", "import time; print('up', flush=True); time.sleep(60)"])
    await _logs_contain(fake, cid, "up")
    pid = (await fake.inspect_container(cid))["State"]["Pid"]
    await asyncio.wait_for(fake.close(), 10)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert fake.live_tasks == []


async def test_applets_stay_simulated_with_processes_true(fake_docker_factory):
    fake = fake_docker_factory(processes=True)
    fake.add_image(BUSYBOX)
    cid = await _start(fake, ["cat", "/var/www/index.html"])
    assert await fake.wait_container(cid, timeout=5) == 0
    assert await fake.container_logs(cid) == HTTPD_PAGE.decode()


def test_rewrite_singleuser_points_it_at_the_host_port():
    argv, env = rewrite_singleuser(
        ["jupyterhub-singleuser", "--ip=0.0.0.0", "--port", "8888", "--debug"],
        {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/a/", "A": "1"},
        43210,
    )
    assert argv == ["jupyterhub-singleuser", "--debug", "--ip=127.0.0.1", "--port=43210"]
    assert env == {"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:43210/user/a/", "A": "1"}


STAND_IN = """#!{python}
# A stand-in for jupyterhub-singleuser: serves its argv and env on --ip/--port.
import http.server, json, os, sys
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"argv": sys.argv[1:], "url": os.environ.get("JUPYTERHUB_SERVICE_URL")}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer((opts["ip"], int(opts["port"])), H)
print("listening", flush=True)
server.serve_forever()
"""


async def test_singleuser_process_is_reached_through_the_published_port(pfake, tmp_path, monkeypatch):
    script = tmp_path / "jupyterhub-singleuser"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    cid = await _start(
        pfake,
        ["jupyterhub-singleuser", "--ip=0.0.0.0"],
        environment={"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/a/"},
        ports=[8888],
        host_config={"port_bindings": {8888: ("127.0.0.1", None)}},
    )
    await _logs_contain(pfake, cid, "listening")
    host_port = (await pfake.port(cid, 8888))[0]["HostPort"]
    status, _, body = await http_get(f"http://127.0.0.1:{host_port}/user/a/")
    seen = json.loads(body)
    assert status == 200
    assert seen["argv"] == ["--ip=127.0.0.1", f"--port={host_port}"]
    assert seen["url"] == f"http://127.0.0.1:{host_port}/user/a/"
    await pfake.stop_container(cid, timeout=5)
    assert not (await pfake.inspect_container(cid))["State"]["Running"]
