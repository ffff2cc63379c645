"""Spawn errors users can act on, on a real engine (issue 4, point 2).

A hub (MockHub, in process) spawns with DockerSpawner on the real Docker engine;
the failure must reach the user through the REST API as a short message naming
the cause, the hub's log must have the detail, and nothing may be left behind.

Nothing is pulled from the internet: the missing image is a name under the
loopback registry (127.0.0.1:5000) that does not exist there. Every container
carries the test labels, so the ``real_engine`` fixture removes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from jupyterhub.tests.utils import add_user, api_request

from dockerspawner import naming

from .test_hub_fake import start_server

pytestmark = pytest.mark.real_engine

MISSING = "127.0.0.1:5000/missing/image:nope"
RAW = ("Traceback", "500 Server Error", "404 Client Error", 'File "', "docker.errors", "requests.exceptions")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def joined(self) -> str:
        out = []
        for r in self.records:
            out.append(r.getMessage())
            if r.exc_info and r.exc_info[1] is not None:
                out.append(str(r.exc_info[1]))
        return "\n".join(out)


@pytest.fixture
async def hub_with_records(real_hub):
    """A started hub on the real engine whose log is recorded."""
    records = Records()

    async def make(**spawner_config):
        spawner_config.setdefault("start_timeout", 45)
        spawner_config.setdefault("http_timeout", 30)
        app = await real_hub(**spawner_config)
        app.log.addHandler(records)
        app.log.setLevel(logging.DEBUG)
        app.records = records
        return app

    return make


async def failed_spawn(app, name: str, timeout: float = 50) -> tuple[int, str]:
    """Start through the REST API; return the failure's status and user message."""
    r = await asyncio.wait_for(start_server(app, name), timeout)
    deadline = time.monotonic() + timeout
    while True:
        model = (await api_request(app, "users", name)).json()["servers"].get("")
        if not model or not model.get("pending"):
            break
        assert time.monotonic() < deadline, f"still pending: {model}"
        await asyncio.sleep(0.2)
    if r.status_code >= 400:
        return r.status_code, r.json()["message"]
    assert r.status_code == 202, f"the spawn did not fail: {r.status_code} {r.text}"
    r = await api_request(app, "users", name, "server", "progress", stream=True)
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    failed = [e for e in events if e.get("failed")]
    assert failed, f"the spawn did not fail: {events}"
    return 500, failed[-1]["message"]


def assert_clean_for_user(message: str) -> None:
    for raw in RAW:
        assert raw not in message, f"{raw!r} reaches the user: {message!r}"
    assert len(message) <= 800, f"not a short message: {message!r}"


async def owned_by(real_engine, name: str, label_filters: list[str]) -> list[dict]:
    """This run's containers of ``name``'s default server (the engine is shared
    with other runs, whose users may have the same names)."""
    return await real_engine.list_containers(
        all=True, filters={"label": [f"{naming.LABEL_USER}={name}", f"{naming.LABEL_SERVER}=", *label_filters]}
    )


async def test_real_image_not_found(hub_with_records, real_engine, label_filters):
    app = await hub_with_records(image=MISSING, pull_policy="always")
    add_user(app.db, app, name="alice")
    status, message = await failed_spawn(app, "alice")
    assert status >= 400
    assert MISSING in message, f"the user is not told which image: {message!r}"
    assert "not found" in message, f"the user is not told it does not exist: {message!r}"
    assert_clean_for_user(message)
    logs = app.records.joined()
    assert MISSING in logs and "DockerSpawner.image" in logs, "the admin log lacks the image and the fix"
    assert await owned_by(real_engine, "alice", label_filters) == []


async def test_real_image_missing_with_pull_never(hub_with_records, real_engine):
    app = await hub_with_records(image=MISSING, pull_policy="never")
    add_user(app.db, app, name="alice")
    status, message = await failed_spawn(app, "alice")
    assert MISSING in message
    assert_clean_for_user(message)
    assert "pull_policy" in app.records.joined()


@pytest.mark.parametrize("remove", [False, True], ids=["keep", "remove"])
async def test_real_container_exited_early(hub_with_records, real_engine, label_filters, remove):
    app = await hub_with_records(cmd=["sh", "-c", "echo starting; echo boom >&2; exit 3"], remove=remove)
    add_user(app.db, app, name="alice")
    status, message = await failed_spawn(app, "alice")
    assert status >= 400
    assert "exit code 3" in message, f"the user is not told the exit code: {message!r}"
    assert "boom" in message, f"the user does not see the last log lines: {message!r}"
    assert_clean_for_user(message)
    logs = app.records.joined()
    assert "boom" in logs and "exited with 3" in logs, "the admin log lacks the exit code and log tail"
    # the failed start removed the container it made
    assert await owned_by(real_engine, "alice", label_filters) == []
