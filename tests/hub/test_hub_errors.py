"""Spawns users can follow and trust, through a real JupyterHub (MockHub) on fakedocker.

Issue 4:
- point 2: each failure reaches the user where JupyterHub shows spawn errors (the
  REST API's error message, the progress stream / spawn-pending page) as a short
  message naming the cause; the hub's log has the detail and the fix; no
  traceback or raw HTTP error reaches the user; no "Task exception was never
  retrieved".
- point 3: failures, the hub's start timeout and a user's cancel leave nothing behind.
- point 5: an unreachable engine or a 5xx is not a stop: the hub keeps the server.
- point 6: user_options checked (400 + message) for the REST API, the form and an
  admin starting someone else's server; the hub's secrets and the server's token
  stay out of containers and logs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import time

import pytest
from jupyterhub.tests.utils import (
    add_user,
    api_request,
    async_requests,
    get_page,
    public_url,
)

from dockerspawner import naming
from dockerspawner.engine import EngineError

from .conftest import JUPYTERHUB_VERSION, stop_hub
from .test_hub_fake import labelled, start_server, stop_server, wait_for_server

IMAGE = "quay.io/jupyterhub/singleuser:test"
OTHER = "quay.io/jupyterhub/other:test"
MISSING = "example.org/missing/image:nope"
BIG = "example.org/lab/big:2"
SINGLEUSER = {"Cmd": ["jupyterhub-singleuser"]}
RAW = ("Traceback", "500 Server Error", 'File "', "docker.errors", "requests.exceptions")


@pytest.fixture
def fake(fake_docker):
    for ref in (IMAGE, OTHER):
        fake_docker.add_image(ref, config=dict(SINGLEUSER))
    return fake_docker


class Records(logging.Handler):
    """Every log record of the hub (its app logger does not propagate to root)
    and of asyncio, at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        out = []
        for r in self.records:
            try:
                text = r.getMessage()
            except Exception:  # noqa: BLE001
                text = str(r.msg)
            if r.exc_info and r.exc_info[1] is not None:
                text += f" [{type(r.exc_info[1]).__name__}: {r.exc_info[1]}]"
            out.append(text)
        return out

    def joined(self) -> str:
        return "\n".join(self.texts())


@pytest.fixture
def hub_logs():
    handler = Records()
    loggers = [logging.getLogger(), logging.getLogger("asyncio"), logging.getLogger("JupyterHub"),
               logging.getLogger("MockHub"), logging.getLogger("traitlets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg, level in zip(loggers, levels):
        lg.removeHandler(handler)
        lg.setLevel(level)


async def make_hub(hub_factory, fake, hub_logs, **config):
    config.setdefault("image", IMAGE)
    app = await hub_factory(fake, **config)
    if hub_logs not in app.log.handlers:
        app.log.addHandler(hub_logs)
    app.log.setLevel(logging.DEBUG)
    return app


def assert_no_unretrieved_task_errors(hub_logs: Records) -> None:
    gc.collect()
    bad = [t for t in hub_logs.texts() if "exception was never retrieved" in t or "Task was destroyed" in t]
    assert bad == [], bad


def assert_clean_for_user(message: str, limit: int = 600) -> None:
    for raw in RAW:
        assert raw not in message, f"{raw!r} reaches the user: {message!r}"
    assert len(message) <= limit, f"not a short message ({len(message)} chars): {message!r}"


async def wait_not_pending(app, name: str, server: str = "", timeout: float = 30) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        r = await api_request(app, "users", name)
        model = r.json()["servers"].get(server)
        if not model or not model.get("pending"):
            return model
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}/{server} still pending: {model}")
        await asyncio.sleep(0.1)


async def spawn_failure(app, name: str, options: dict | None = None, timeout: float = 40) -> tuple[int, str]:
    """POST a start; return (status, the user's message) of its failure, whether
    the POST itself failed or the spawn failed after a 202."""
    r = await asyncio.wait_for(start_server(app, name, options=options), timeout)
    if r.status_code >= 400:
        await wait_not_pending(app, name)
        return r.status_code, r.json()["message"]
    assert r.status_code == 202, r.text
    await wait_not_pending(app, name, timeout=timeout)
    r = await api_request(app, "users", name, "server", "progress", stream=True)
    text = r.text
    events = [json.loads(line[len("data:"):]) for line in text.splitlines() if line.startswith("data:")]
    failed = [e for e in events if e.get("failed")]
    assert failed, f"the spawn did not fail: {events}"
    return 500, failed[-1]["message"]


# -- point 2: every failure reaches the user, and the admin gets the detail ----------------------


def case_image_not_found(fake):
    return {"image": MISSING}


def case_pull_failed_midway(fake):
    fake.registry.add(BIG, config=dict(SINGLEUSER), layers=[3_000_000, 1_000_000])
    fake.registry.fail_next("*big*", EngineError("read tcp 127.0.0.1:5000: unexpected EOF", 500))
    return {"image": BIG}


def case_engine_unreachable(fake):
    fake.down()
    return {}


def case_network_missing(fake):
    return {"network_name": "no-such-net"}


async def case_name_taken(fake):
    distinct = naming.distinct_name("jupyter-alice", naming.owner_key("alice", ""))
    for name in ("jupyter-alice", distinct):
        await fake.create_container(
            {"image": IMAGE, "name": name, "command": ["sleep", "600"], "labels": naming.owner_labels("bob", "")}
        )
    return {}


def case_exited(fake):
    fake.faults.exit_after_start("jupyter-alice", after=0.2, exit_code=3, stderr=["ModuleNotFoundError: foo", "boom"])
    return {"cmd": ["sleep", "600"]}


def case_exited_at_once(fake):
    fake.faults.exit_after_start("jupyter-alice", exit_code=3, stderr=["boom"])
    return {}


def case_oom(fake):
    fake.faults.exit_after_start("jupyter-alice", after=0.2, oom=True)
    return {"cmd": ["sleep", "600"], "mem_limit": "64M"}


def case_post_start(fake):
    return {"post_start_cmd": ["sh", "-c", "echo 'chown: denied' >&2; exit 4"], "post_start_cmd_must_succeed": True}


def case_timeout(fake):
    fake.faults.delay("start_container", 30)
    return {"start_timeout": 4}


HUB_FAILURES = [
    ("image-not-found", case_image_not_found, [MISSING, "not found"], [MISSING, "DockerSpawner.image"]),
    ("pull-failed-midway", case_pull_failed_midway, [BIG, "unexpected EOF"], [BIG, "unexpected EOF"]),
    ("engine-unreachable", case_engine_unreachable, ["engine", "not reachable"], ["fake://fakedocker"]),
    ("network-missing", case_network_missing, ["no-such-net"], ["docker network create no-such-net"]),
    ("name-taken", case_name_taken, ["taken"], ["jupyter-alice"]),
    ("exited", case_exited, ["exit code 3", "boom"], ["exited with 3", "boom"]),
    ("exited-at-once", case_exited_at_once, ["exit code 3", "boom"], ["exited with 3", "boom"]),
    ("oom-killed", case_oom, ["memory"], ["OOMKilled=True", "mem_limit"]),
    ("post-start-cmd", case_post_start, ["post-start", "exit code 4"], ["exited 4", "chown: denied"]),
    ("start-timeout", case_timeout, ["4 seconds", "Starting container"], ["start_timeout"]),
]


@pytest.mark.parametrize("case, user, admin", [f[1:] for f in HUB_FAILURES], ids=[f[0] for f in HUB_FAILURES])
async def test_rest_api_failure_names_its_cause(hub_factory, fake, hub_logs, case, user, admin):
    config = case(fake)
    if asyncio.iscoroutine(config):
        config = await config
    app = await make_hub(hub_factory, fake, hub_logs, **config)
    add_user(app.db, app, name="alice")
    was_down = fake.is_down
    fake.up()
    before = {c["Id"] for c in await fake.list_containers(all=True)}
    if was_down:
        fake.down()
    status, message = await spawn_failure(app, "alice")
    assert status >= 400
    for needle in user:
        assert needle in message, f"the user is not told {needle!r}: {message!r}"
    assert_clean_for_user(message)
    logs = hub_logs.joined()
    for needle in admin:
        assert needle in logs, f"the hub's log lacks {needle!r}"
    # point 3: nothing new is left behind
    fake.up()
    fake.faults.clear()
    after = {c["Id"] for c in await fake.list_containers(all=True)}
    assert after <= before, f"left behind: {after - before}"
    model = (await api_request(app, "users", "alice")).json()["servers"].get("")
    assert not model, f"a failed server is still listed: {model}"
    assert_no_unretrieved_task_errors(hub_logs)


async def test_failure_shown_on_progress_and_spawn_pending_page(hub_factory, fake, hub_logs):
    """The spawn-pending page (and its progress stream) shows the same short message."""
    app = await make_hub(hub_factory, fake, hub_logs, image=MISSING)
    add_user(app.db, app, name="alice")
    cookies = await app.login_user("alice")
    r = await async_requests.post(
        public_url(app, path="hub/spawn/alice"), cookies=cookies, data={"_xsrf": cookies["_xsrf"]}
    )
    await wait_not_pending(app, "alice")
    r = await get_page("spawn-pending/alice", app, cookies=cookies)
    assert MISSING in r.text and "was not found" in r.text, r.text[-2000:]
    for raw in RAW:
        assert raw not in r.text
    r = await api_request(app, "users", "alice", "server", "progress", stream=True)
    failed = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert failed and failed[-1].get("failed"), failed
    assert MISSING in failed[-1]["message"]
    assert_no_unretrieved_task_errors(hub_logs)


@pytest.mark.parametrize("with_form", [False, True], ids=["no-form", "form"])
async def test_spawn_page_failure_has_the_user_message_only(hub_factory, fake, hub_logs, with_form):
    """A spawn from /hub/spawn that fails at once answers with a page (an error
    page; with an options form on JupyterHub 4, the form again with the error);
    it names the cause in the user's words and never shows what only the admin
    may read (the command's output, which can hold the server's environment)."""
    secret = "SECRET-" + secrets.token_hex(8)
    cmd = ["sh", "-c", f"echo {secret} >&2; exit 4"]
    config = {"allowed_images": {"default": IMAGE, "other": OTHER}} if with_form else {}
    app = await make_hub(hub_factory, fake, hub_logs, post_start_cmd=cmd, post_start_cmd_must_succeed=True, **config)
    add_user(app.db, app, name="alice")
    cookies = await app.login_user("alice")
    data = {"_xsrf": cookies["_xsrf"], **({"image": "default"} if with_form else {})}
    r = await async_requests.post(public_url(app, path="hub/spawn/alice"), cookies=cookies, data=data)
    await wait_not_pending(app, "alice")
    pages = [r.text]
    if r.status_code < 400 and "exit code 4" not in r.text:
        pages.append((await get_page("spawn-pending/alice", app, cookies=cookies)).text)
    page = pages[-1]
    assert "post-start" in page and "exit code 4" in page, page[-2000:]
    for text in pages:
        assert secret not in text, "the command's output reaches the user"
        for raw in RAW:
            assert raw not in text
    assert secret in hub_logs.joined(), "the admin log must keep the command's output"


async def test_engine_5xx_midway_is_short_for_the_user(hub_factory, fake, hub_logs):
    raw = "500 Server Error for http+docker://localhost/v1.41/containers/x/start: Internal Server Error (" + "y" * 3000 + ")"
    fake.faults.fail("start_container", EngineError(raw, 500))
    app = await make_hub(hub_factory, fake, hub_logs)
    add_user(app.db, app, name="alice")
    status, message = await spawn_failure(app, "alice")
    assert status == 500
    assert "Starting container" in message
    assert len(message) <= 400 and "y" * 500 not in message
    assert "y" * 500 in hub_logs.joined(), "the admin log must keep the engine's full message"
    assert await labelled(fake, "alice") == []
    assert_no_unretrieved_task_errors(hub_logs)


# -- point 3: timeouts and cancels through the hub leave nothing --------------------------------


@pytest.mark.parametrize("op", ["pull_image", "start_container", "exec_run"])
async def test_user_cancel_during_start_leaves_nothing(hub_factory, fake, hub_logs, op):
    """DELETE while the start is pending (the "cancel" on the spawn page) cancels
    the start task; nothing it made may stay.

    JupyterHub 4 has no cancel: it answers the DELETE with 400 "is pending
    spawn", and a pending start ends only at the hub's start timeout, which
    must leave nothing either."""
    can_cancel = JUPYTERHUB_VERSION >= (5, 0)
    fake.registry.add(BIG, config=dict(SINGLEUSER), layers=[1000])
    config = {"image": BIG} if op == "pull_image" else {}
    if op == "exec_run":
        config["post_start_cmd"] = ["true"]
    if not can_cancel:
        config["start_timeout"] = 3
    app = await make_hub(hub_factory, fake, hub_logs, **config)
    app.tornado_settings["slow_spawn_timeout"] = 0
    add_user(app.db, app, name="alice")
    fake.faults.delay(op, 30)
    r = await start_server(app, "alice")
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 10
    while fake.calls.count(op) == 0:
        assert time.monotonic() < deadline, f"{op} never called"
        await asyncio.sleep(0.05)
    r = await api_request(app, "users", "alice", "server", method="delete")
    if can_cancel:
        assert r.status_code in (202, 204), r.text
    else:
        assert (r.status_code, r.json()["message"]) == (400, "alice is pending spawn, please wait"), r.text
    await wait_not_pending(app, "alice")
    fake.faults.clear()
    for _ in range(40):
        if not await labelled(fake, "alice"):
            break
        await asyncio.sleep(0.05)
    assert await labelled(fake, "alice") == []
    assert [v["Name"] for v in await fake.list_volumes()] == []


async def test_failed_start_then_success(hub_factory, fake, hub_logs):
    """After a failure the user can start again and gets a working server."""
    fake.faults.fail("start_container", EngineError("transient", 500))
    app = await make_hub(hub_factory, fake, hub_logs)
    add_user(app.db, app, name="alice")
    status, _ = await spawn_failure(app, "alice")
    r = await start_server(app, "alice")
    assert r.status_code in (201, 202), r.text
    await wait_for_server(app, "alice")
    (c,) = await labelled(fake, "alice")
    assert c["State"] == "running"
    await stop_server(app, "alice")


# -- point 5: the engine being away is not a stop -------------------------------------------------


async def test_hub_keeps_server_while_engine_is_away(hub_factory, fake, hub_logs):
    """The engine is unreachable for a while, then answers 503: the hub's polls
    during both must not drop the server. (poll's inspect path: the event-driven
    index, which answers running servers without an inspect, is off here.)"""
    app = await make_hub(hub_factory, fake, hub_logs, poll_interval=1, poll_from_events=False)
    add_user(app.db, app, name="alice")
    r = await start_server(app, "alice")
    assert r.status_code in (201, 202), r.text
    await wait_for_server(app, "alice")
    spawner = app.users["alice"].spawner
    for trouble in ("down", "503"):
        polls = fake.calls.count("inspect_container")
        if trouble == "down":
            fake.down()
        else:
            fake.faults.fail("inspect_container", EngineError("engine trouble", 503), times=None)
        await asyncio.sleep(2.5)
        assert spawner.ready, f"the hub dropped a server because the engine was away ({trouble})"
        fake.up()
        fake.faults.clear()
        assert fake.calls.count("inspect_container") >= polls + 2, "the hub did not poll during the trouble"
    model = await wait_for_server(app, "alice")
    assert model["ready"]
    assert "assuming it still runs" in hub_logs.joined()
    (c,) = await labelled(fake, "alice")
    assert c["State"] == "running"
    await stop_server(app, "alice")


async def test_hub_notices_a_server_that_really_exited(hub_factory, fake, hub_logs):
    app = await make_hub(hub_factory, fake, hub_logs, poll_interval=1)
    add_user(app.db, app, name="alice")
    await start_server(app, "alice")
    await wait_for_server(app, "alice")
    (c,) = await labelled(fake, "alice")
    fake.exit_container(c["Id"], 1)
    await wait_for_server(app, "alice", ready=False, timeout=10)


async def test_restarted_hub_keeps_server_while_engine_is_down(hub_factory, fake):
    app = await hub_factory(fake, start=False, image=IMAGE)
    user = add_user(app.db, app, name="erin")
    await user.spawn()
    await stop_hub(app)
    fake.down()
    app2 = await hub_factory(fake, start=False, clean_db=False, image=IMAGE)
    fake.up()
    assert app2.users["erin"].running, "a hub started while the engine was away dropped the server"
    (c,) = await labelled(fake, "erin")
    assert c["State"] == "running"


# -- point 6: user_options, allowed_images, secrets, tokens ----------------------------------------


BAD_OPTIONS = [
    ({"imgae": OTHER}, "imgae"),
    ({"image": OTHER, "privileged": True}, "privileged"),
    ({"image": 42}, "string"),
    ({"image": [OTHER]}, "string"),
    ({"image": "evil/miner:latest"}, "not allowed"),
]


async def test_rest_api_bad_options_are_400(hub_factory, fake, hub_logs):
    app = await make_hub(hub_factory, fake, hub_logs, allowed_images=[IMAGE, OTHER])
    for i, (options, needle) in enumerate(BAD_OPTIONS):
        name = f"carol{i}"
        add_user(app.db, app, name=name)
        r = await start_server(app, name, options=options)
        assert r.status_code == 400, (options, r.text)
        message = r.json()["message"]
        assert needle in message, (options, message)
        assert_clean_for_user(message)
    add_user(app.db, app, name="carol-list")
    r = await api_request(app, "users", "carol-list", "server", method="post", data=json.dumps(["image", OTHER]))
    # JupyterHub 6 refuses a non-object body itself (400); 4 and 5 assign it to
    # Spawner.user_options (a Dict trait) before any spawner code runs: 500
    assert r.status_code == (400 if JUPYTERHUB_VERSION >= (6, 0) else 500), r.text
    assert fake.calls.count("create_container") == 0 and fake.calls.count("pull_image") == 0
    assert_no_unretrieved_task_errors(hub_logs)


async def test_form_disallowed_image_is_400_with_message(hub_factory, fake, hub_logs):
    """JupyterHub 4 answers a failed form submission with the form again (200)
    and the error above it; 5 and 6 answer with the error's status."""
    app = await make_hub(hub_factory, fake, hub_logs, allowed_images={"default": IMAGE, "other": OTHER})
    add_user(app.db, app, name="dave")
    cookies = await app.login_user("dave")
    r = await async_requests.post(
        public_url(app, path="hub/spawn/dave"),
        cookies=cookies,
        data={"image": "evil/miner:latest", "_xsrf": cookies["_xsrf"]},
    )
    assert r.status_code == (400 if JUPYTERHUB_VERSION >= (5, 0) else 200), r.status_code
    assert "not allowed" in r.text
    assert "Traceback" not in r.text
    assert fake.calls.count("create_container") == 0


async def test_form_and_api_share_the_allowed_images_check(hub_factory, fake, hub_logs):
    """The same rule decides for the form and the REST API: a display name of the
    dict is accepted by both; a raw image that is a value is accepted by both."""
    app = await make_hub(hub_factory, fake, hub_logs, allowed_images={"default": IMAGE, "other": OTHER})
    add_user(app.db, app, name="dave")
    r = await start_server(app, "dave", options={"image": "other"})
    assert r.status_code in (201, 202), r.text
    await wait_for_server(app, "dave")
    (c,) = await labelled(fake, "dave")
    assert c["Image"] == OTHER
    await stop_server(app, "dave")


@pytest.mark.parametrize("image, ok", [(OTHER, True), ("evil/miner:latest", False)])
async def test_admin_starting_someone_elses_server_is_checked(hub_factory, fake, hub_logs, image, ok):
    app = await make_hub(hub_factory, fake, hub_logs, allowed_images=[IMAGE, OTHER])
    add_user(app.db, app, name="admin", admin=True)
    add_user(app.db, app, name="erin")
    r = await api_request(
        app, "users", "erin", "server", method="post", data=json.dumps({"image": image}), name="admin"
    )
    if ok:
        assert r.status_code in (201, 202), r.text
        await wait_for_server(app, "erin")
        (c,) = await labelled(fake, "erin")
        assert c["Image"] == OTHER
        await stop_server(app, "erin")
    else:
        assert r.status_code == 400, r.text
        assert "not allowed" in r.json()["message"]
        assert await labelled(fake, "erin") == []


async def test_hub_secrets_stay_out_of_the_container(hub_factory, fake, hub_logs, monkeypatch):
    hub_secrets = {
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
        "CONFIGPROXY_AUTH_TOKEN": "proxy-" + secrets.token_hex(16),
        "JPY_COOKIE_SECRET": secrets.token_hex(32),
    }
    for key, value in hub_secrets.items():
        monkeypatch.setenv(key, value)
    app = await make_hub(hub_factory, fake, hub_logs)
    add_user(app.db, app, name="alice")
    r = await start_server(app, "alice")
    assert r.status_code in (201, 202), r.text
    await wait_for_server(app, "alice")
    (c,) = await labelled(fake, "alice")
    info = await fake.inspect_container(c["Id"])
    env = dict(line.split("=", 1) for line in info["Config"]["Env"])
    for key, value in hub_secrets.items():
        assert key not in env, f"{key} reached the container"
        assert value not in json.dumps(info), f"the value of {key} reached the container"
    assert env["JUPYTERHUB_API_TOKEN"] == app.users["alice"].spawner.api_token
    await stop_server(app, "alice")


async def test_server_token_not_in_hub_logs(hub_factory, fake, hub_logs):
    """Through a spawn, a stop, a reusing spawn and a failing post_start_cmd."""
    # the command dumps the env (a debugging admin) and fails once /tmp/fail exists
    cmd = ["sh", "-c", "env; env >&2; test -e /tmp/fail && exit 5; true"]
    app = await make_hub(
        hub_factory, fake, hub_logs, remove=False, post_start_cmd=cmd, post_start_cmd_must_succeed=True
    )
    add_user(app.db, app, name="alice")
    await start_server(app, "alice")
    await wait_for_server(app, "alice")
    (c,) = await labelled(fake, "alice")
    env = dict(line.split("=", 1) for line in (await fake.inspect_container(c["Id"]))["Config"]["Env"])
    token = env["JUPYTERHUB_API_TOKEN"]
    assert token
    await stop_server(app, "alice")
    await start_server(app, "alice")  # reuses the container, and its token
    await wait_for_server(app, "alice")
    assert [x["Id"] for x in await labelled(fake, "alice")] == [c["Id"]]
    await stop_server(app, "alice")
    fake.add_file(c["Id"], "/tmp/fail", "x")
    status, message = await spawn_failure(app, "alice")
    assert "exit code 5" in message and token not in message
    leaks = [t[:200] for t in hub_logs.texts() if token in t]
    assert leaks == [], leaks
