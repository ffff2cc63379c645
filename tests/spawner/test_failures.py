"""Spawn failures say what happened (issue 4, point 2) and poll tells the truth (point 5).

Every failure of ``DockerSpawner.start`` reaches the user as a short message that
names the cause (``jupyterhub_message``, what JupyterHub shows), while ``e.detail``
(what the hub logs for the admin) has the detail and the fix. No traceback and no
raw HTTP error text reaches the user.

``poll`` says "stopped" only when the engine says the container is gone or exited;
an unreachable engine or a 5xx keeps the server running (None) and is logged.

Runs on fakedocker only (the real-engine variants live in tests/hub/test_hub_errors_real.py).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from tornado import web

from dockerspawner import naming
from dockerspawner.engine import EngineError, EngineUnavailable, NotFound

IMAGE = "quay.io/jupyterhub/singleuser:test"
SINGLEUSER = {"Cmd": ["jupyterhub-singleuser"]}
MISSING = "example.org/missing/image:nope"
BIG = "example.org/lab/big:2"

#: Text that must never reach a user: a Python traceback or a raw HTTP error line.
RAW = ("Traceback", "500 Server Error", "Internal Server Error", 'File "', "docker.errors", "requests.exceptions")


def user_message(exc: BaseException) -> str:
    """What JupyterHub shows the user for ``exc``: ``jupyterhub_message``, else an
    HTTPError's message (the REST API's ``message``)."""
    message = getattr(exc, "jupyterhub_message", None)
    if message is None and isinstance(exc, web.HTTPError):
        message = exc.log_message
    assert message, f"{type(exc).__name__} carries no message for the user: {exc!r}"
    return message


async def failed_start(sp) -> BaseException:
    """Run ``sp.start()`` (bounded) and return what it raised."""
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(sp.start(), 30)
    return info.value


def assert_clean_for_user(message: str, limit: int = 600) -> None:
    for raw in RAW:
        assert raw not in message, f"{raw!r} reaches the user: {message!r}"
    assert len(message) <= limit, f"the user message is not short ({len(message)} chars): {message!r}"


# -- the failure table ---------------------------------------------------------------------
# Each case sets up the engine and returns a spawner whose start must fail;
# ``user`` are substrings the user's message must contain (the cause), ``admin``
# substrings of the admin's detail (``e.detail``: what happened and what to do).


def case_image_not_found(fake, make_spawner):
    return make_spawner("alice", image=MISSING)


def case_image_not_found_pull_always(fake, make_spawner):
    return make_spawner("alice", image=MISSING, pull_policy="always")


def case_image_missing_pull_never(fake, make_spawner):
    return make_spawner("alice", image=MISSING, pull_policy="never")


def case_image_not_pullable(fake, make_spawner):
    fake.faults.fail(
        "pull_image",
        EngineError(
            "pull access denied for example.org/missing/image, repository does not exist or may require"
            " 'docker login': denied: requested access to the resource is denied",
            500,
        ),
    )
    return make_spawner("alice", image=MISSING)


def case_pull_failed_midway(fake, make_spawner):
    fake.registry.add(BIG, config=dict(SINGLEUSER), layers=[4_000_000, 2_000_000])
    fake.registry.fail_next("*big*", EngineError("read tcp 127.0.0.1:5000: unexpected EOF", 500))
    return make_spawner("alice", image=BIG)


def case_engine_unreachable(fake, make_spawner):
    fake.down()
    return make_spawner("alice", image=IMAGE)


def case_engine_unreachable_midway(fake, make_spawner):
    fake.faults.fail("start_container", EngineUnavailable(f"cannot reach the engine at {fake.base_url}: reset"))
    return make_spawner("alice", image=IMAGE)


def case_network_missing(fake, make_spawner):
    return make_spawner("alice", image=IMAGE, network_name="no-such-net")


async def case_name_taken(fake, make_spawner):
    established = "jupyter-alice"
    distinct = naming.distinct_name(established, naming.owner_key("alice", ""))
    for name in (established, distinct):
        await fake.create_container(
            {"image": IMAGE, "name": name, "command": ["sleep", "600"], "labels": naming.owner_labels("bob", "")}
        )
    return make_spawner("alice", image=IMAGE)


def case_exited_during_start(fake, make_spawner):
    fake.faults.exit_after_start(
        "jupyter-alice",
        exit_code=3,
        stderr=[f"noise line {i}" for i in range(30)] + ["ImportError: no module named jupyterhub", "boom"],
    )
    return make_spawner("alice", image=IMAGE)


def case_oom_killed(fake, make_spawner):
    fake.faults.exit_after_start("jupyter-alice", oom=True, stderr=["allocating"])
    return make_spawner("alice", image=IMAGE, mem_limit="64M")


def case_post_start_failed(fake, make_spawner):
    return make_spawner(
        "alice", image=IMAGE, post_start_cmd=["sh", "-c", "echo fine; echo 'chown: /home/jovyan: denied' >&2; exit 4"],
        post_start_cmd_must_succeed=True,
    )


def case_timeout_in_start(fake, make_spawner):
    fake.faults.delay("start_container", 30)
    return make_spawner("alice", image=IMAGE, start_timeout=3)


def case_timeout_in_pull(fake, make_spawner):
    fake.registry.add(BIG, config=dict(SINGLEUSER), layers=[50_000_000])
    fake.registry.speed = 1_000_000
    return make_spawner("alice", image=BIG, start_timeout=3)


def case_timeout_waiting_for_server(fake, make_spawner):
    # a command that runs but never answers HTTP
    return make_spawner("alice", image=IMAGE, cmd=["sleep", "600"], start_timeout=3, http_timeout=60)


FAILURES = [
    # id, case, user must contain, admin must contain
    ("image-not-found", case_image_not_found, [MISSING, "not found"], [MISSING, "DockerSpawner.image"]),
    ("image-not-found-always", case_image_not_found_pull_always, [MISSING, "not found"], [MISSING]),
    ("image-missing-pull-never", case_image_missing_pull_never, [MISSING], [MISSING, "pull_policy"]),
    ("image-not-pullable", case_image_not_pullable, [MISSING, "pull access denied"], [MISSING, "pull access denied"]),
    ("pull-failed-midway", case_pull_failed_midway, [BIG, "unexpected EOF"], [BIG, "unexpected EOF"]),
    ("engine-unreachable", case_engine_unreachable, ["engine", "not reachable"], ["fake://fakedocker"]),
    ("engine-unreachable-midway", case_engine_unreachable_midway, ["engine", "not reachable"], ["fake://fakedocker"]),
    ("network-missing", case_network_missing, ["no-such-net"], ["no-such-net", "docker network create"]),
    ("name-taken", case_name_taken, ["name", "taken"], ["jupyter-alice"]),
    ("exited-during-start", case_exited_during_start, ["exit code 3", "boom", "ImportError"], ["3", "boom"]),
    ("oom-killed", case_oom_killed, ["memory"], ["OOMKilled=True", "mem_limit"]),
    ("post-start-cmd-failed", case_post_start_failed, ["post-start", "exit code 4"], ["4", "chown: /home/jovyan: denied"]),
    ("timeout-in-start", case_timeout_in_start, ["3 seconds", "Starting container"], ["Starting container", "start_timeout"]),
    ("timeout-in-pull", case_timeout_in_pull, ["3 seconds", "Pulling image"], ["Pulling image", "start_timeout"]),
    ("timeout-waiting", case_timeout_waiting_for_server, ["3 seconds", "Waiting for the server"], ["start_timeout"]),
]


@pytest.mark.parametrize("case, user, admin", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
async def test_failure_names_its_cause(fake, make_spawner, case, user, admin):
    sp = case(fake, make_spawner)
    if asyncio.iscoroutine(sp):
        sp = await sp
    exc = await failed_start(sp)
    message = user_message(exc)
    for needle in user:
        assert needle in message, f"the user is not told {needle!r}: {message!r}"
    assert_clean_for_user(message)
    detail = exc.detail
    for needle in admin:
        assert needle in detail, f"the admin log lacks {needle!r}: {detail!r}"


async def test_name_taken_tells_the_admin_whose_it_is_and_what_to_do(fake, make_spawner):
    sp = await case_name_taken(fake, make_spawner)
    exc = await failed_start(sp)
    detail = exc.detail
    assert "bob" in detail, f"the admin is not told who holds the names: {detail!r}"
    assert any(fix in detail for fix in ("docker rm", "remove", "rename", "name_template")), (
        f"the admin is not told how to fix it: {detail!r}"
    )


async def test_exited_early_shows_only_the_last_log_lines(fake, make_spawner):
    case_exited_during_start(fake, make_spawner)
    exc = await failed_start(make_spawner("alice", image=IMAGE))
    message = user_message(exc)
    assert "boom" in message
    assert "noise line 0" not in message, "the user gets the whole log instead of its tail"
    assert "noise line 0" not in exc.detail, "the admin detail should be the log's tail, not all of it"


async def test_exited_during_readiness_wait_is_reported_at_once(fake, make_spawner):
    """A container that dies while the spawner waits for HTTP fails the spawn
    right away (not after http_timeout) with its exit code."""
    fake.faults.exit_after_start("jupyter-alice", after=0.5, exit_code=2, stderr=["late crash"])
    sp = make_spawner("alice", image=IMAGE, cmd=["sleep", "600"], http_timeout=60, start_timeout=60)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    exc = await failed_start(sp)
    assert loop.time() - t0 < 10
    message = user_message(exc)
    assert "exit code 2" in message and "late crash" in message


async def test_image_not_allowed_is_a_400_naming_the_image(fake, make_spawner):
    sp = make_spawner("alice", image=IMAGE, allowed_images=[IMAGE])
    sp.user_options = {"image": "evil/miner:latest"}
    exc = await failed_start(sp)
    assert isinstance(exc, web.HTTPError) and exc.status_code == 400
    message = user_message(exc)
    assert "evil/miner:latest" in message and "not allowed" in message
    assert_clean_for_user(message)
    assert fake.calls.count("pull_image") == 0
    assert fake.calls.count("create_container") == 0


async def test_engine_unreachable_names_the_socket(make_spawner, tmp_path, shared_engines):
    """With the docker-py backend, the admin learns which socket did not answer."""
    socket = tmp_path / "no-engine-here.sock"
    sp = make_spawner(
        "alice",
        engine="docker",
        image=IMAGE,
        client_kwargs={"base_url": f"unix://{socket}"},
        use_docker_client_env=False,
    )
    exc = await failed_start(sp)
    message = user_message(exc)
    assert "not reachable" in message
    assert_clean_for_user(message)
    assert str(socket) in exc.detail, f"the admin detail does not name the socket: {exc}"


async def test_an_unexpected_engine_error_is_short_for_the_user(fake, make_spawner):
    """A 500 with a long, raw engine message: the user gets one short line with the phase."""
    raw = "500 Server Error for http+docker://localhost/v1.41/containers/x/start: Internal Server Error (" + "x" * 2000 + ")"
    fake.faults.fail("start_container", EngineError(raw, 500))
    exc = await failed_start(make_spawner("alice", image=IMAGE))
    message = user_message(exc)
    assert "Starting container" in message
    assert len(message) <= 400, message
    assert "x" * 2000 in exc.detail or "xxxx" in exc.detail


# -- poll ------------------------------------------------------------------------------------


@pytest.fixture
async def running(fake, make_spawner):
    # these tests are about poll's inspect path (the event-driven index has its own tests)
    sp = make_spawner("alice", image=IMAGE, poll_from_events=False)
    await sp.start()
    yield sp
    fake.up()
    fake.faults.clear()


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_poll_running_is_none(running):
    assert await running.poll() is None


async def test_poll_engine_unreachable_keeps_running_and_logs(fake, running, caplog):
    caplog.set_level(logging.DEBUG)
    fake.down()
    assert await running.poll() is None
    assert any("alice" in m and "unreachable" in m.lower() for m in warnings(caplog)), warnings(caplog)
    fake.up()
    assert await running.poll() is None
    assert running.object_id, "an unreachable engine must not clear the saved container"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_poll_5xx_keeps_running_and_logs(fake, running, caplog, status):
    caplog.set_level(logging.DEBUG)
    fake.faults.fail("inspect_container", EngineError(f"engine trouble {status}", status), times=3)
    for _ in range(3):
        assert await running.poll() is None
    assert any(f"engine trouble {status}" in m for m in warnings(caplog)), warnings(caplog)
    assert running.object_id
    assert await running.poll() is None


async def test_poll_timeout_keeps_running(fake, running):
    fake.faults.fail("inspect_container", EngineUnavailable("no answer from the engine in time: read timed out"))
    assert await running.poll() is None


async def test_poll_gone_is_stopped(fake, running):
    await fake.remove_container(running.object_id, force=True)
    status = await running.poll()
    assert status is not None
    # state of a vanished container is forgotten, so the next start does not look for it
    assert not running.object_id


async def test_poll_exited_is_stopped_with_exit_code(fake, running):
    fake.exit_container(running.object_id, 7, stderr=["bye"])
    status = await running.poll()
    assert status is not None
    assert "7" in str(status)


async def test_poll_oom_killed_is_stopped(fake, running):
    fake.exit_container(running.object_id, oom=True)
    assert await running.poll() is not None


async def test_poll_without_state_is_stopped(make_spawner, fake):
    assert await make_spawner("alice", image=IMAGE).poll() == 0


async def test_poll_by_saved_name_when_id_was_lost(fake, running, make_spawner):
    """A state that has only the name (e.g. after a failed start cleared the id)
    still finds the running container instead of reporting it stopped."""
    state = {"object_name": running.object_name}
    other = make_spawner("alice", image=IMAGE)
    other.load_state(state)
    assert await other.poll() is None


async def test_poll_not_found_error_from_a_5xx_engine_is_stopped(fake, running):
    """Swarm-mode Docker and Podman answer 500 'no such container': the backend
    maps it to NotFound, which means gone."""
    fake.faults.fail("inspect_container", NotFound("No such container: x", 500), times=None)
    assert await running.poll() is not None



async def test_timeout_while_replacing_a_stale_container_names_that_phase(fake, make_spawner):
    """The old container's removal hangs: the timeout must say the spawn was
    replacing the container, not that it was still checking the image."""
    old = make_spawner("alice", image=IMAGE, environment={"V": "1"})
    await old.start()
    await old.stop()
    fake.faults.delay("remove_container", 30)
    sp = make_spawner("alice", image=IMAGE, environment={"V": "2"}, start_timeout=3)
    sp.load_state(old.get_state())
    exc = await failed_start(sp)
    message = user_message(exc)
    assert "3 seconds" in message
    assert "Checking image" not in message, f"the phase is wrong: {message!r}"
    assert "container" in message.lower(), message
