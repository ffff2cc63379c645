"""The fake's settings for host-dependent behaviour, and the pure rules
behind restarts, health checks and the shell (the contract suite holds the
same behaviour to the engine)."""

from __future__ import annotations

import asyncio

import pytest
from fk_helpers import BUSYBOX

from fakedocker.restart import FIRST_DELAY, MAX_DELAY, next_delay, should_restart
from fakedocker.shell import arithmetic, parse
from fakedocker.validation import NVIDIA, create_error, device_error

GPU = {"device_requests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}], "init": True}


async def test_gpu_request_starts_when_the_fake_has_a_driver(fake_docker_factory):
    fake = fake_docker_factory(device_drivers=NVIDIA)
    fake.add_image(BUSYBOX)
    cid = await fake.create_container({"image": BUSYBOX, "command": ["sleep", "30"], "host_config": GPU})
    await fake.start_container(cid)
    assert (await fake.inspect_container(cid))["State"]["Running"] is True


def test_device_error_picks_a_driver_by_capabilities():
    drivers = {"nvidia": frozenset({"gpu", "utility"})}
    assert device_error([{"Capabilities": [["gpu", "utility"]]}], drivers) is None
    assert device_error([{"Capabilities": [["tpu"]]}], drivers) == (
        'could not select device driver "" with capabilities: [[tpu]]'
    )
    assert device_error([{"Driver": "amd", "Capabilities": [["gpu"]]}], drivers).startswith(
        'could not select device driver "amd"'
    )


@pytest.mark.parametrize(
    "hc, refused",
    [
        ({"Memory": 6 * 1024 * 1024}, None),
        ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}, None),
        ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}, "maximum retry count cannot be negative"),
        ({"CpuPeriod": 500}, "CPU cfs period can not be less than 1ms"),
        ({"AutoRemove": True, "RestartPolicy": {"Name": "no"}}, None),
    ],
)
def test_create_error_table(hc, refused):
    got = create_error(hc)
    assert (got is None) if refused is None else got.startswith(refused)


@pytest.mark.parametrize(
    "policy, code, count, stopped, restarts",
    [
        ({"Name": "always"}, 0, 5, False, True),
        ({"Name": "unless-stopped"}, 0, 0, False, True),
        ({"Name": "always"}, 1, 0, True, False),
        ({"Name": "on-failure"}, 0, 0, False, False),
        ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 1, False, True),
        ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 2, False, False),
        ({"Name": ""}, 1, 0, False, False),
        (None, 1, 0, False, False),
    ],
)
def test_should_restart(policy, code, count, stopped, restarts):
    assert should_restart(policy, code, count, stopped) is restarts


def test_restart_delay_doubles_caps_and_resets():
    delays = [FIRST_DELAY]
    for _ in range(12):
        delays.append(next_delay(delays[-1], 0.01))
    assert delays[:3] == [0.1, 0.2, 0.4]
    assert delays[-1] == MAX_DELAY
    assert next_delay(MAX_DELAY, 10.0) == FIRST_DELAY


async def test_health_probe_that_outlives_its_timeout_counts_as_failure(fake, run):
    check = {"test": ["CMD", "sleep", "5"], "interval": 50_000_000, "timeout": 50_000_000, "retries": 1}
    cid = await run(healthcheck=check, host_config={"init": True})
    for _ in range(100):
        health = (await fake.inspect_container(cid))["State"]["Health"]
        if health["Status"] == "unhealthy":
            break
        await asyncio.sleep(0.02)
    assert health["Status"] == "unhealthy"
    assert health["Log"][-1]["ExitCode"] == -1
    assert health["Log"][-1]["Output"] == "Health check exceeded timeout (0.05s)"


async def test_health_checks_stop_with_the_container(fake, run):
    check = {"test": ["CMD", "true"], "interval": 20_000_000}
    cid = await run(healthcheck=check, host_config={"init": True})
    await fake.stop_container(cid, timeout=1)
    await asyncio.sleep(0.1)
    assert fake.live_tasks == []


@pytest.mark.parametrize(
    "expr, value", [("1+2*3", 7), ("i+1", 5), ("$i / 3", 1), ("i % 3 == 1", 1), ("-i", -4), ("bogus(", 0)]
)
def test_arithmetic(expr, value):
    assert arithmetic(expr, {"i": "4"}) == value


@pytest.mark.parametrize("script", ["while true; do echo", "if true; then echo; ", "for 1 in a; do :; done"])
async def test_shell_syntax_errors_exit_2(fake, run, script):
    cid = await run(["sh", "-c", script])
    assert await fake.wait_container(cid, timeout=5) == 2
    assert (await fake.container_logs(cid)).startswith("sh: syntax error: ")


def test_parse_keeps_keywords_as_arguments():
    (node, background), = parse("echo done fi then").items
    assert background is False


async def test_trap_reset_restores_default_disposition(fake, run):
    cid = await run(["sh", "-c", "trap 'exit 0' TERM; trap - TERM; sleep 300 & wait"], host_config={"init": True})
    await asyncio.sleep(0.05)
    await fake.stop_container(cid, timeout=1)
    assert (await fake.inspect_container(cid))["State"]["ExitCode"] == 143


async def test_trap_ignoring_term_makes_stop_wait_for_the_kill(fake, run):
    cid = await run(["sh", "-c", "trap '' TERM; sleep 300 & wait"], host_config={"init": True})
    await asyncio.sleep(0.05)
    await fake.stop_container(cid, timeout=0)
    assert (await fake.inspect_container(cid))["State"]["ExitCode"] == 137


async def test_put_archive_keeps_owner_and_mode(fake, run):
    from fk_helpers import make_tar

    cid = await run(host_config={"init": True})
    await fake.exec_run(cid, ["mkdir", "/srv"])
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("mine.txt")
        info.size, info.uid, info.gid, info.mode = 2, 1000, 100, 0o600
        tar.addfile(info, io.BytesIO(b"hi"))
    await fake.put_archive(cid, "/srv", buf.getvalue())
    await fake.put_archive(cid, "/srv", make_tar({"roots.txt": b"r"}))
    ok = await fake.exec_run(cid, ["sh", "-c", "echo more >> /srv/mine.txt"], user="1000")
    denied = await fake.exec_run(cid, ["sh", "-c", "echo more >> /srv/roots.txt"], user="1000")
    assert (ok.exit_code, denied.exit_code) == (0, 1)
    assert denied.stderr == b"sh: can't create /srv/roots.txt: Permission denied\n"


async def test_missing_program_under_init_logs_tinis_message(fake, run):
    cid = await run(["no-such-program"], host_config={"init": True})
    assert await fake.wait_container(cid, timeout=5) == 127
    assert await fake.container_logs(cid) == "[FATAL tini (7)] exec no-such-program failed: No such file or directory\n"


async def test_spawner_poll_sees_a_restarting_server_as_running(make_spawner, fake_docker):
    fake_docker.add_image("quay.io/jupyterhub/singleuser:6.1", config={"Cmd": ["jupyterhub-singleuser"]})
    policy = {"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 1}}
    spawner = make_spawner("alice", image="quay.io/jupyterhub/singleuser:6.1", extra_host_config=policy)
    await spawner.start()
    fake_docker.exit_container(spawner.object_id, 3)
    state = (await fake_docker.inspect_container(spawner.object_id))["State"]
    assert state["Status"] == "restarting"
    assert await spawner.poll() is None
    for _ in range(100):
        if (await fake_docker.inspect_container(spawner.object_id))["State"]["Status"] == "running":
            break
        await asyncio.sleep(0.01)
    fake_docker.exit_container(spawner.object_id, 3)
    assert (await spawner.poll()).startswith("ExitCode=3, ")
    assert (await fake_docker.inspect_container(spawner.object_id))["RestartCount"] == 1
